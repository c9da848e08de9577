/**
 * @tessera/core: Tessera's domain and engine: column types, expressions,
 * functions, the catalog model, queries and tables. No drivers: storage comes
 * from `@tessera/sql` through the `Store` contract.
 */
export * as Catalog from "./Catalog.ts"
export * as Column from "./Column.ts"
export * as ColumnType from "./ColumnType.ts"
export * as Compute from "./Compute.ts"
export * as Dir from "./Dir.ts"
export * as Evaluate from "./Evaluate.ts"
export * as Expr from "./Expr.ts"
export * as Fn from "./Fn.ts"
export * as Iterator from "./Iterator.ts"
export * as Media from "./Media.ts"
export * as Pool from "./Pool.ts"
export * as Query from "./Query.ts"
export * as ResultCache from "./ResultCache.ts"
export * as Stage from "./Stage.ts"
export * as Store from "./Store.ts"
export * as Supervisor from "./Supervisor.ts"
export * as Table from "./Table.ts"
export * as Tools from "./Tools.ts"
