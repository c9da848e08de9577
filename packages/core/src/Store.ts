/**
 * Store: the contract between the engine and the storage that keeps the
 * catalog and the rows (implemented on PostgreSQL by `@tessera/sql`).
 *
 * The engine decides what to compute; the store persists it. Every stored
 * computed cell has, beside its value, a state (pending / done / error) and
 * its error's type, message and attempt count, so that pending work is data.
 */
import type { Effect, Scope, Stream } from "effect"
import { Context, Schema } from "effect"
import type * as Catalog from "./Catalog.ts"
import type * as ColumnType from "./ColumnType.ts"
import type * as Expr from "./Expr.ts"

export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

export type CellState = "pending" | "done" | "error"

/** A stored computed cell. */
export interface Cell {
  readonly value: unknown
  readonly state: CellState
  readonly errorType: string | null
  readonly errorMessage: string | null
  readonly attempts: number
}

/** A column definition before the catalog gives it an id. */
export interface NewColumn {
  readonly name: string
  readonly type: ColumnType.ColumnType
  readonly nullable: boolean
  readonly computed?: Catalog.Computed | undefined
  /** A data column that keeps cells whatever its type (see `Catalog.ColumnMeta.cells`). */
  readonly cells?: boolean | undefined
}

export interface ScanSpec {
  /** Conditions, all of which the store can evaluate (see `pushable`). */
  readonly where: ReadonlyArray<Expr.Node>
  /** Values to return under each key. */
  readonly outputs: ReadonlyArray<{ readonly key: string; readonly node: Expr.Node }>
  readonly orderBy: ReadonlyArray<{ readonly node: Expr.Node; readonly desc: boolean }>
  readonly limit?: number | undefined
  readonly offset?: number | undefined
  /** Also return each row's id under the key `"$rowid"`. */
  readonly withRowid?: boolean | undefined
  /** The direction of the row-id order that follows `orderBy` (ascending by default). */
  readonly rowidOrder?: "asc" | "desc" | undefined
  /** Only these rows. */
  readonly rowids?: ReadonlyArray<number> | undefined
  /** Only the view rows made from these base rows. */
  readonly baseRowids?: ReadonlyArray<number> | undefined
  /** Also return each view row's base row id under `"$baseRowid"`. */
  readonly withBaseRowid?: boolean | undefined
  /** Also return the full `Cell` of these columns with cells (`Catalog.hasCell`), under `"$cell<id>"`. */
  readonly cells?: ReadonlyArray<number> | undefined
}

/** A change's counts, recorded in the table's history. */
export interface Change {
  readonly inserted?: number
  readonly updated?: number
  readonly deleted?: number
  readonly errors?: number
}

/** `replace` refuses while views depend on the table; `replace_force` drops them too. */
export type IfExists = "error" | "ignore" | "replace" | "replace_force"

export interface VersionInfo {
  readonly version: number
  readonly schemaVersion: number
  readonly createdAt: Date
  readonly changeType: "data" | "schema"
  readonly inserted: number
  readonly updated: number
  readonly deleted: number
  readonly errors: number
  /** "Initial Version", "Added: c6", "Dropped: c4", "Renamed: c2 -> balloon"; null for data changes. */
  readonly schemaChange: string | null
}

export interface CellCounts {
  readonly column: number
  readonly pending: number
  /** Pending cells a live worker holds right now. */
  readonly claimed: number
  readonly done: number
  readonly error: number
  /** The error of the most recently failed cell, if any. */
  readonly lastError: { readonly type: string; readonly message: string } | undefined
}

/** Something changed: a table's catalog entry (`schema`) or its rows (`rows`). */
export interface ChangeEvent {
  readonly kind: "schema" | "rows"
  readonly table: number
}

export class Store extends Context.Service<
  Store,
  {
    // directories -------------------------------------------------------------
    readonly createDir: (
      path: string,
      options: { readonly ifExists: "error" | "ignore"; readonly parents: boolean }
    ) => Effect.Effect<void, Catalog.CatalogError | StoreError>
    readonly dropDir: (
      path: string,
      options: { readonly force: boolean; readonly ifNotExists: "error" | "ignore" }
    ) => Effect.Effect<void, Catalog.CatalogError | StoreError>
    readonly listDirs: (
      path: string,
      recursive: boolean
    ) => Effect.Effect<ReadonlyArray<string>, Catalog.CatalogError | StoreError>
    readonly listTables: (
      path: string,
      recursive: boolean
    ) => Effect.Effect<ReadonlyArray<string>, Catalog.CatalogError | StoreError>

    // tables ------------------------------------------------------------------
    readonly createTable: (
      path: string,
      columns: ReadonlyArray<NewColumn>,
      options: {
        readonly ifExists: IfExists
        /** Names of the primary key's columns: unique among live rows. */
        readonly primaryKey?: ReadonlyArray<string> | undefined
        /** Makes a view or a snapshot of another table. */
        readonly view?: Catalog.ViewDefinition | undefined
      }
    ) => Effect.Effect<
      { readonly table: Catalog.TableMeta; readonly created: boolean },
      Catalog.CatalogError | StoreError
    >
    /** A table's catalog entry: current, or as of `version` (a read-only view of then). */
    readonly getTable: (
      path: string,
      version?: number,
      options?: {
        /**
         * Reads may use this process's cached entry, kept current by the change
         * feed (its data `version` may lag; the schema does not).
         */
        readonly cached?: boolean | undefined
      }
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    readonly dropTable: (
      path: string,
      options: {
        readonly ifNotExists: "error" | "ignore"
        /** Also drop the views and snapshots made from it (else they make the drop fail). */
        readonly force?: boolean | undefined
      }
    ) => Effect.Effect<void, Catalog.CatalogError | StoreError>
    readonly moveTable: (from: string, to: string) => Effect.Effect<void, Catalog.CatalogError | StoreError>
    /** Adds a column (physically and in the catalog) as a new schema version. */
    readonly addColumn: (
      table: Catalog.TableMeta,
      column: NewColumn
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /**
     * Drops a column as a new schema version. The physical column stays, so
     * that older versions remain readable.
     */
    readonly dropColumn: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /** Adds an embedding index (catalog entry and HNSW index) as a new schema version. */
    readonly addIndex: (
      table: Catalog.TableMeta,
      index: Omit<Catalog.IndexMeta, "id">
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /** Drops an embedding index as a new schema version. */
    readonly dropIndex: (
      table: Catalog.TableMeta,
      index: Catalog.IndexMeta
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /** The views and snapshots made from a table (directly). */
    readonly dependentsOf: (table: Catalog.TableMeta) => Effect.Effect<ReadonlyArray<Catalog.TableMeta>, StoreError>
    /** Makes a data column nullable (metadata only) as a new schema version. */
    readonly setNullable: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /** Renames a column (metadata only) as a new schema version. */
    readonly renameColumn: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta,
      name: string
    ) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /** The table's versions, newest first (at most `limit`). */
    readonly history: (
      table: Catalog.TableMeta,
      limit?: number
    ) => Effect.Effect<ReadonlyArray<VersionInfo>, StoreError>
    /** Undoes the latest version (data or schema). Fails at version 0. */
    readonly revert: (table: Catalog.TableMeta) => Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError>
    /**
     * Undoes `addColumn` of a column nothing else depends on yet: removes it
     * physically and from the catalog, with its version when that is still
     * the table's latest (an aborted backfill leaves nothing behind).
     */
    readonly removeColumn: (table: Catalog.TableMeta, column: Catalog.ColumnMeta) => Effect.Effect<void, StoreError>
    /** Records a data change as a new table version; returns the new version. */
    readonly bumpVersion: (table: Catalog.TableMeta, change: Change) => Effect.Effect<number, StoreError>
    /** Adds to the counts of the table's current version (e.g. a backfill's errors). */
    readonly recordErrors: (table: Catalog.TableMeta, errors: number) => Effect.Effect<void, StoreError>

    // rows --------------------------------------------------------------------
    /** Whether the store can evaluate an expression itself. */
    readonly pushable: (table: Catalog.TableMeta, node: Expr.Node) => boolean
    readonly scan: (table: Catalog.TableMeta, spec: ScanSpec) => Stream.Stream<Record<string, unknown>, StoreError>
    /** The same as `scan`, read at once (usable inside a transaction). */
    readonly scanAll: (
      table: Catalog.TableMeta,
      spec: ScanSpec
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, StoreError>
    /** Live rows in id order after `after`, at most `limit` (for batch processing). */
    readonly scanPage: (
      table: Catalog.TableMeta,
      spec: ScanSpec,
      after: number,
      limit: number
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, StoreError>
    readonly count: (table: Catalog.TableMeta, where: ReadonlyArray<Expr.Node>) => Effect.Effect<number, StoreError>
    /**
     * Inserts rows at `version`. `rows[i][j]` is the value of `columns[j]`; for
     * stored computed columns it is a `Cell`, for media data columns a value or
     * a `Cell` (an error: see `Catalog.hasCell`). Returns the new rows' ids, in order.
     */
    readonly insertRows: (
      table: Catalog.TableMeta,
      version: number,
      columns: ReadonlyArray<Catalog.ColumnMeta>,
      rows: ReadonlyArray<ReadonlyArray<unknown>>,
      /**
       * Stored computed columns the store computes itself, in the same
       * statement, from the rows' data columns: their expressions are
       * `pushable`, read only data columns and cannot fail (`Expr.canFail`).
       */
      computed?: ReadonlyArray<Catalog.ColumnMeta>,
      /** For a view's rows: the base row each one comes from. */
      baseRowids?: ReadonlyArray<number>
    ) => Effect.Effect<ReadonlyArray<number>, StoreError>
    /** Writes computed cells of live rows in place (materialisation, not a new version). */
    readonly writeCells: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta,
      cells: ReadonlyArray<{ readonly rowid: number; readonly cell: Cell }>
    ) => Effect.Effect<void, StoreError>
    /**
     * Replaces live rows by new versions of themselves (same row ids) at
     * `version`: the old versions stop being live, the new ones start.
     */
    readonly replaceRows: (
      table: Catalog.TableMeta,
      version: number,
      columns: ReadonlyArray<Catalog.ColumnMeta>,
      rows: ReadonlyArray<{ readonly rowid: number; readonly values: ReadonlyArray<unknown> }>
    ) => Effect.Effect<void, StoreError>
    /** Ends the given live rows at `version`; returns how many there were. */
    readonly deleteRows: (
      table: Catalog.TableMeta,
      version: number,
      rowids: ReadonlyArray<number>
    ) => Effect.Effect<number, StoreError>

    // durable execution ----------------------------------------------------------
    /**
     * Registers this process as a worker for the scope's lifetime. Its claims
     * stay its own while it lives; when it dies (even by SIGKILL) they are
     * free for other workers at once.
     */
    readonly registerWorker: Effect.Effect<number, StoreError, Scope.Scope>
    /**
     * Claims up to `limit` pending cells of a stored computed column whose
     * inputs are ready (computed inputs done or failed), skipping cells other
     * live workers hold, in row-id order, optionally only among `rowids`.
     * Returns the rows' inputs as `scan` would for `inputs`.
     */
    readonly claim: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta,
      inputs: ScanSpec,
      options: { readonly worker: number; readonly limit: number; readonly rowids?: ReadonlyArray<number> | undefined }
    ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, StoreError>
    /** Writes claimed cells and releases their claims (rows no longer live are skipped). */
    readonly complete: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta,
      worker: number,
      cells: ReadonlyArray<{ readonly rowid: number; readonly cell: Cell }>
    ) => Effect.Effect<void, StoreError>
    /** Releases claims without writing: the cells stay pending. */
    readonly release: (
      table: Catalog.TableMeta,
      column: Catalog.ColumnMeta,
      worker: number,
      rowids: ReadonlyArray<number>
    ) => Effect.Effect<void, StoreError>
    /** Cell states of the table's stored computed columns, over its live rows. */
    readonly cellCounts: (table: Catalog.TableMeta) => Effect.Effect<ReadonlyArray<CellCounts>, StoreError>
    /** Catalog and row changes, from this process and (on a server) from others. */
    readonly changes: Stream.Stream<ChangeEvent>
    /** Announces a change (after its transaction committed). */
    readonly notify: (event: ChangeEvent) => Effect.Effect<void>

    // media -------------------------------------------------------------------
    /**
     * The references among `refs` that a media column (data or stored
     * computed) of any table still holds, in a live row or an older version's.
     */
    readonly mediaInUse: (refs: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, StoreError>
    /**
     * The media references version `version` of the table brought in: the
     * media values of the rows it wrote and of the columns it added.
     */
    readonly versionMedia: (
      table: Catalog.TableMeta,
      version: number
    ) => Effect.Effect<ReadonlyArray<string>, StoreError>

    /** Runs `effect` in one transaction: all of its writes land, or none. */
    readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StoreError, R>
  }
>()("@tessera/core/Store") {}
