/**
 * Catalog: the persistent description of directories, tables and their
 * columns (with computed columns' expressions), as the engine sees it, and
 * the rules for names and paths. The rows themselves and the SQL live behind
 * the `Store` contract.
 */
import { Schema } from "effect"
import * as ColumnType from "./ColumnType.ts"
import * as Expr from "./Expr.ts"
import * as Fn from "./Fn.ts"

export class CatalogError extends Schema.TaggedError<CatalogError>()("CatalogError", {
  reason: Schema.Literals([
    "NotFound",
    "AlreadyExists",
    "InvalidName",
    "InvalidPath",
    "NotEmpty",
    "HasDependents",
    "InvalidDefinition",
    "ReadOnly"
  ]),
  path: Schema.String,
  message: Schema.String
}) {}

export type OnError = "abort" | "record"

export interface Computed {
  readonly expr: Expr.Node
  readonly onError: OnError
  readonly stored: boolean
  /** Use the result cache (default: for deterministic functions only). */
  readonly cache?: boolean | undefined
}

export interface ColumnMeta {
  readonly id: number
  readonly name: string
  readonly type: ColumnType.ColumnType
  readonly nullable: boolean
  readonly computed?: Computed | undefined
  /** A data column that keeps cells (state and error) whatever its type: a view's copy of a base value. */
  readonly cells?: boolean | undefined
  readonly addedIn: number
}

export type TableKind = "table" | "view" | "snapshot"

export interface TableMeta {
  readonly id: number
  readonly path: string
  readonly kind: TableKind
  readonly version: number
  readonly schemaVersion: number
  /** The live columns, in creation order (for a handle as of a version: that version's). */
  readonly columns: ReadonlyArray<ColumnMeta>
  /** Set on a handle that reads the table as of this version (read-only). */
  readonly asOf?: number | undefined
  /** The ids of the primary key's columns, if the table has one. */
  readonly primaryKey?: ReadonlyArray<number> | undefined
  /** What a view or snapshot is made from. */
  readonly view?: ViewDefinition | undefined
  /** The table's embedding indexes. */
  readonly indexes?: ReadonlyArray<IndexMeta> | undefined
}

/** A function by its registered name and version. */
export interface FunctionRef {
  readonly fn: string
  readonly version: number
}

/** An embedding index: vectors of a column, searchable by similarity with HNSW. */
export interface IndexMeta {
  readonly id: number
  readonly name: string
  /** An embedding index (the default) or a full-text index. */
  readonly kind?: "embedding" | "text" | undefined
  /** A text index's text search configuration (e.g. "english"). */
  readonly language?: string | undefined
  /** The indexed column (String, Image or Vector). */
  readonly column: number
  /** The column holding the vectors: the indexed column itself, or a hidden computed column. */
  readonly vectors: number
  /** The function that embeds values (and queries) of the column's modality; none for a Vector column. */
  readonly embed?: FunctionRef | undefined
  /**
   * The functions that embed query values, per modality (a text query of an
   * image index, say); they share the index's vector space. An index made
   * before these existed has only `embed`.
   */
  readonly embeds?: { readonly text?: FunctionRef | undefined; readonly image?: FunctionRef | undefined } | undefined
  readonly metric: "cosine" | "ip" | "l2"
  readonly precision: "vector" | "halfvec"
  readonly dimension: number
  readonly m: number
  readonly efConstruction: number
}

/**
 * A view: rows of a base table (or view) matching `filter`, with the columns
 * `outputs` computes from the base's, kept up to date as the base changes.
 * A snapshot is the same, taken once at `baseVersion` and never changed.
 */
export interface ViewDefinition {
  readonly base: number
  readonly filter: ReadonlyArray<Expr.Node>
  /** The view's own column names (in order) and the base expressions they copy. */
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly node: Expr.Node }>
  readonly snapshot: boolean
  /** The base's version the snapshot was taken at. */
  readonly baseVersion: number
  /** An iterator view's iterator: many view rows per base row. */
  readonly iterator?:
    | {
        readonly fn: string
        readonly version: number
        readonly args: ReadonlyArray<Expr.Node>
        /** The iterator's output columns (after the `pos` column). */
        readonly outputs: ReadonlyArray<string>
      }
    | undefined
}

/** The state of a column as `describe` reports it. */
export type ColumnState = "ok" | "UnknownFunction"

// ---------------------------------------------------------------------------
// Names and paths
// ---------------------------------------------------------------------------

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/
const COLUMN_RE = /^[A-Za-z][A-Za-z0-9_]*$/

/** Names that would collide with the API of a table handle or a row. */
export const reservedColumnNames: ReadonlySet<string> = new Set([
  "insert",
  "update",
  "delete",
  "select",
  "where",
  "orderBy",
  "limit",
  "offset",
  "collect",
  "count",
  "stream",
  "head",
  "tail",
  "describe",
  "recompute",
  "addColumn",
  "addComputedColumn",
  "dropColumn",
  "renameColumn",
  "history",
  "revert",
  "rowid",
  "constructor",
  "prototype",
  "toString",
  "toJSON",
  "valueOf",
  "then",
  "pipe"
])

const invalid = (path: string, message: string) => new CatalogError({ reason: "InvalidName", path, message })

/** Splits and checks a `dir/sub/table` path. An empty path is the root (only where allowed). */
export const parsePath = (
  path: string,
  options?: { readonly allowRoot?: boolean }
): ReadonlyArray<string> | CatalogError => {
  if (typeof path !== "string") return invalid(String(path), "a path must be a string")
  if (path === "" || path === "/") {
    return options?.allowRoot ? [] : invalid(path, "the path is empty")
  }
  const parts = path.split("/")
  for (const part of parts) {
    if (part === "") return invalid(path, `invalid path ${JSON.stringify(path)}: empty segment`)
    if (part.startsWith("_")) {
      return invalid(
        path,
        `invalid name ${JSON.stringify(part)} in ${JSON.stringify(path)}: names starting with "_" are reserved`
      )
    }
    if (!NAME_RE.test(part) || part.length > 63) {
      return invalid(
        path,
        `invalid name ${JSON.stringify(part)} in ${JSON.stringify(path)}: use letters, digits, "_" and "-" (at most 63 characters)`
      )
    }
  }
  return parts
}

/** Checks a column name; undefined when it is valid. */
export const checkColumnName = (table: string, name: string): CatalogError | undefined => {
  if (typeof name !== "string" || name === "") return invalid(table, "a column name is empty")
  if (name.startsWith("_"))
    return invalid(table, `invalid column name ${JSON.stringify(name)}: names starting with "_" are reserved`)
  if (!COLUMN_RE.test(name) || name.length > 63) {
    return invalid(
      table,
      `invalid column name ${JSON.stringify(name)}: use letters, digits and "_", starting with a letter (at most 63 characters)`
    )
  }
  if (reservedColumnNames.has(name))
    return invalid(table, `invalid column name ${JSON.stringify(name)}: it is reserved`)
  return undefined
}

// ---------------------------------------------------------------------------
// Column analysis
// ---------------------------------------------------------------------------

/** The functions a column's expression calls that this process does not have. */
export const missingFunctions = (column: ColumnMeta): ReadonlyArray<string> =>
  column.computed === undefined
    ? []
    : Expr.calls(column.computed.expr)
        .filter((call) => Fn.lookup(call.fn, call.version) === undefined)
        .map((call) => `${call.fn}@${call.version}`)

export const columnState = (column: ColumnMeta): ColumnState =>
  missingFunctions(column).length > 0 ? "UnknownFunction" : "ok"

/**
 * Whether a column is stored with a cell (a state and an error beside its
 * value): stored computed columns, and media data columns, where a value that
 * failed its check on write is recorded as an error (`insert`'s `onError`).
 */
export const hasCell = (column: {
  readonly type: ColumnType.ColumnType
  readonly computed?: Computed | undefined
  readonly cells?: boolean | undefined
}): boolean =>
  column.computed === undefined ? column.cells === true || ColumnType.isMedia(column.type) : column.computed.stored

/** The ids of the columns that `column` reads, directly. */
export const dependencies = (column: ColumnMeta): ReadonlySet<number> =>
  column.computed === undefined ? new Set() : Expr.columnIds(column.computed.expr)

/**
 * The stored computed columns that depend, transitively, on any of `ids`,
 * in an order where every column comes after the columns it reads.
 */
export const dependents = (table: TableMeta, ids: ReadonlySet<number>): ReadonlyArray<ColumnMeta> => {
  const affected = new Set(ids)
  const out: Array<ColumnMeta> = []
  for (const column of table.columns) {
    if (column.computed === undefined) continue
    const deps = dependencies(column)
    if ([...deps].some((d) => affected.has(d)) || [...deps].some((d) => unstoredReads(table, d, affected))) {
      affected.add(column.id)
      if (column.computed.stored) out.push(column)
    }
  }
  return out
}

const unstoredReads = (table: TableMeta, id: number, affected: ReadonlySet<number>): boolean => {
  const column = table.columns.find((c) => c.id === id)
  if (column?.computed === undefined || column.computed.stored) return false
  return [...dependencies(column)].some((d) => affected.has(d) || unstoredReads(table, d, affected))
}

/** Column types by id, for typing expressions over a table. */
export const columnTypes =
  (table: TableMeta): Expr.ColumnTypes =>
  (id) =>
    table.columns.find((c) => c.id === id)?.type

/** Replaces references to unstored computed columns by their expressions. */
export const inlineUnstored = (table: TableMeta, node: Expr.Node): Expr.Node => {
  if (!table.columns.some((c) => c.computed !== undefined && !c.computed.stored)) return node
  const byId = new Map(table.columns.map((c) => [c.id, c]))
  const go = (n: Expr.Node): Expr.Node => {
    if (n._tag === "Column") {
      const column = byId.get(n.id)
      if (column?.computed !== undefined && !column.computed.stored) return go(column.computed.expr)
      return n
    }
    return rebuild(n, go)
  }
  return go(node)
}

/** A node with each direct child replaced by `f(child)`. */
export const mapChildren = (node: Expr.Node, f: (n: Expr.Node) => Expr.Node): Expr.Node => rebuild(node, f)

const rebuild = (node: Expr.Node, f: (n: Expr.Node) => Expr.Node): Expr.Node => {
  switch (node._tag) {
    case "Column":
    case "Literal":
    case "ErrorProp":
    case "VectorScore":
    case "Embedding":
      return node
    case "Similarity":
    case "TextSearch":
      return { ...node, query: f(node.query) }
    case "Binary":
      return { ...node, left: f(node.left), right: f(node.right) }
    case "Not":
    case "Neg":
    case "IsNull":
    case "JsonPath":
    case "Cast":
      return { ...node, expr: f(node.expr) }
    case "IsIn":
      return { ...node, expr: f(node.expr), values: node.values.map(f) }
    case "String":
    case "Call":
      return { ...node, args: node.args.map(f) }
  }
}
