/**
 * @tessera/providers/testing: a fake provider server for tests and benchmarks.
 */
export * as FakeProvider from "./FakeProvider.ts"
