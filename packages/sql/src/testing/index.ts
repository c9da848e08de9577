/**
 * @tessera/sql/testing: helpers for running suites against every backend.
 */
export * as Harness from "./Harness.ts"
