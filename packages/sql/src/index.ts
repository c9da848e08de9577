/**
 * @tessera/sql: Tessera's PostgreSQL storage on `@effect/sql-pg`, embedded
 * (PGlite + pgvector) or on a server.
 */
export * as Database from "./Database.ts"
export * as Migrations from "./Migrations.ts"
export * as SqlResultCache from "./SqlResultCache.ts"
export * as SqlStore from "./SqlStore.ts"
export * as Tessera from "./Tessera.ts"
export * as Vector from "./Vector.ts"
