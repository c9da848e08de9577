/**
 * Table: the user-facing handle on a table, and the catalog operations that
 * create, open, list, move and drop tables.
 *
 * A handle is typed by its schema: `insert` takes the data columns (nullable
 * ones optional, computed ones absent), queries return every column with its
 * TypeScript type, and `addComputedColumn` returns a handle whose type has the
 * new column. Every operation is an Effect that needs the `Store`.
 */
import { Effect, type Stream } from "effect"
import * as Catalog from "./Catalog.ts"
import type * as Column from "./Column.ts"
import * as ColumnType from "./ColumnType.ts"
import * as Compute from "./Compute.ts"
import * as Expr from "./Expr.ts"
import * as Fn from "./Fn.ts"
import * as Iterator from "./Iterator.ts"
import * as Media from "./Media.ts"
import * as Query from "./Query.ts"
import type * as Stage from "./Stage.ts"
import { type NewColumn, Store, type StoreError, type VersionInfo } from "./Store.ts"
import {
  backfill,
  checkNewKeys,
  columnNode,
  deleteRowids,
  type MediaValue,
  matchingRowids,
  prepareMedia,
  rewrite,
  rowidsByKey,
  syncView,
  ValidationError,
  type InsertResult,
  type UpdateResult,
  type WriteFailure,
  writeRows
} from "./internal/tableWrites.ts"

export { maintainViews, ValidationError } from "./internal/tableWrites.ts"
export type { InsertResult, UpdateResult, WriteFailure } from "./internal/tableWrites.ts"

export interface ColumnInfo {
  readonly name: string
  readonly type: string
  readonly nullable: boolean
  readonly computed: string | undefined
  readonly stored: boolean
  readonly onError: Catalog.OnError | undefined
  readonly state: Catalog.ColumnState
}

/** A table with an unknown schema (opened by path): every column is accepted and returned untyped. */
export type Dynamic = Record<string, Column.Column<any, any, true>>

type Condition<S extends Column.Specs> =
  | Expr.Expr<boolean | null>
  | Expr.Expr<boolean>
  | ((c: Query.Columns<S>) => Expr.Expr<boolean | null> | Expr.Expr<boolean>)

type UpdateValues<S extends Column.Specs> = {
  readonly [K in keyof S]?: S[K] extends Column.Column<infer T, infer I, infer N>
    ? Expr.Input<N extends true ? T | I | null : T | I>
    : never
}

const columnsOf = <S extends Column.Specs>(meta: Catalog.TableMeta): Query.Columns<S> => {
  const out: Record<string, Expr.ColumnRef<unknown>> = {}
  for (const column of meta.columns) {
    out[column.name] = new Expr.ColumnRef(column.id, column.name, column.type, column.computed !== undefined)
  }
  return out as unknown as Query.Columns<S>
}

export class Table<S extends Column.Specs> {
  readonly path: string
  readonly id: number
  /** Typed references to the columns, for expressions: `t.c.title`. */
  readonly c: Query.Columns<S>
  /** The catalog entry this handle was made from. */
  readonly meta: Catalog.TableMeta

  /** Set while a snapshot's own computed columns are being added at its creation. */
  private readonly settingUp: boolean

  constructor(meta: Catalog.TableMeta, options?: { readonly settingUp?: boolean }) {
    this.path = meta.path
    this.id = meta.id
    this.meta = meta
    this.c = columnsOf<S>(meta)
    this.settingUp = options?.settingUp === true
  }

  /** The table's current catalog entry (it may have changed since this handle was made). */
  /** The version this handle reads, when it is a read-only view of the past. */
  get asOf(): number | undefined {
    return this.meta.asOf
  }

  get load(): Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError, Store> {
    return this.loadWith(false)
  }

  /** The catalog entry, checked to still be this handle's table; `cached` allows this process's read cache. */
  private loadWith(cached: boolean): Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError, Store> {
    const { path, id } = this
    const asOf = this.meta.asOf
    // Every query runs this: flatMaps rather than a generator.
    return Effect.flatMap(Effect.service(Store), (store) =>
      Effect.flatMap(store.getTable(path, asOf, { cached }), (meta) =>
        meta.id === id
          ? Effect.succeed(meta)
          : Effect.fail(
              new Catalog.CatalogError({
                reason: "NotFound",
                path,
                message: `the table ${path} this handle refers to was dropped (another table has that path now)`
              })
            )
      )
    )
  }

  /** The current catalog entry, for an operation that changes the table (refused on a view of the past). */
  private loadForWrite(operation: string): Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError, Store> {
    if (this.meta.view?.snapshot && !(this.settingUp && operation === "addComputedColumn")) {
      return Effect.fail(
        new Catalog.CatalogError({
          reason: "ReadOnly",
          path: this.path,
          message: `cannot ${operation} ${this.path}: it is a snapshot, frozen at version ${this.meta.view.baseVersion} of its base`
        })
      )
    }
    if (this.meta.asOf !== undefined) {
      return Effect.fail(
        new Catalog.CatalogError({
          reason: "ReadOnly",
          path: this.path,
          message: `cannot ${operation} ${this.path}:${this.meta.asOf}: a handle on version ${this.meta.asOf} is a read-only view of the past (open ${this.path} without a version to change it)`
        })
      )
    }
    return this.load
  }

  /** The table's versions, newest first: time, change type, counts and schema change. */
  history(limit?: number): Effect.Effect<ReadonlyArray<VersionInfo>, Catalog.CatalogError | StoreError, Store> {
    const load = this.load
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      const all = yield* store.history(meta, meta.asOf === undefined ? limit : undefined)
      const visible = meta.asOf === undefined ? all : all.filter((v) => v.version <= meta.asOf!)
      return limit === undefined ? visible : visible.slice(0, limit)
    })
  }

  /**
   * Undoes the latest version, data or schema; returns the handle at the
   * version before. Media-store files the version brought in (its rows'
   * media values, its added columns') are removed when no other row, of any
   * table or version, references them.
   */
  revert(): Effect.Effect<Table<Dynamic>, WriteFailure, Store> {
    const load = this.loadForWrite("revert")
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      const dependents = yield* store.dependentsOf(meta)
      const pinned = dependents.filter((d) => d.view?.snapshot && d.view.baseVersion === meta.version)
      if (pinned.length > 0) {
        return yield* new Catalog.CatalogError({
          reason: "HasDependents",
          path: meta.path,
          message: `cannot revert ${meta.path}: the snapshot ${pinned.map((d) => d.path).join(", ")} needs version ${meta.version}`
        })
      }
      const media = yield* store.versionMedia(meta, meta.version)
      const reverted = yield* store.revert(meta)
      // Views follow their base back.
      for (const view of dependents) {
        if (view.view !== undefined && !view.view.snapshot) yield* syncView(store, reverted, view, undefined)
      }
      yield* Media.collectGarbage(media)
      return new Table<Dynamic>(reverted)
    }).pipe(Media.track)
  }

  /**
   * Adds a data column. A non-nullable column can only be added to an empty
   * table; existing rows get null in a nullable one.
   */
  addColumn<N extends string, C extends Column.Any>(
    name: N,
    column: C
  ): Effect.Effect<Table<S & { readonly [K in N]: C }>, Catalog.CatalogError | StoreError, Store> {
    const load = this.loadForWrite("addColumn")
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      yield* checkNewColumn(meta, name)
      if (column?._tag !== "Column") {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `${name} is not a column definition (use Column.String, Column.Int, ...)`
        })
      }
      if (!column.nullable) {
        const rows = yield* store.count(meta, [])
        if (rows > 0) {
          return yield* new Catalog.CatalogError({
            reason: "InvalidDefinition",
            path: meta.path,
            message: `cannot add the non-nullable column ${name} to ${meta.path}: it has ${rows} rows, which would have no value (make it Column.nullable, or add it to an empty table)`
          })
        }
      }
      const next = yield* store.addColumn(meta, { name, type: column.type, nullable: column.nullable })
      return new Table<S & { readonly [K in N]: C }>(next)
    })
  }

  /**
   * Adds an embedding index on a String, Image or Vector column. For String
   * and Image columns the function for the column's modality (`embed`, or
   * `textEmbed` / `imageEmbed`) computes the vectors, stored like a computed
   * column: durable, rate-limited, kept up to date. Query values are embedded
   * by the function for their modality, so an image index with a `textEmbed`
   * of the same vector space (CLIP-like) answers text queries. A Vector column
   * is indexed as it is. HNSW with the metric's operator class, `halfvec`
   * precision by default.
   */
  addEmbeddingIndex<K extends keyof S & string>(
    column: K,
    options?: {
      /** Embeds the column's values (a String column: texts; an Image column: images). */
      readonly embed?: Fn.Fn<any, Float32Array> | undefined
      /** Embeds texts: String column values, and text queries of any index. */
      readonly textEmbed?: Fn.Fn<any, Float32Array> | undefined
      /** Embeds images: Image column values, and image queries of any index. */
      readonly imageEmbed?: Fn.Fn<any, Float32Array> | undefined
      readonly metric?: "cosine" | "ip" | "l2"
      readonly precision?: "vector" | "halfvec"
      readonly m?: number
      readonly efConstruction?: number
      readonly name?: string
    }
  ): Effect.Effect<Table<S>, WriteFailure, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("addEmbeddingIndex")
      const target = yield* findColumn(meta, column)
      const name = options?.name ?? `${column}_idx`
      const invalid = Catalog.parsePath(name)
      if (invalid instanceof Catalog.CatalogError) return yield* invalid
      let vectors = target
      let embed: Catalog.IndexMeta["embed"]
      const embeds = yield* embedFunctions(meta, column, target.type, options ?? {})
      if (target.type.kind !== "Vector") {
        const fn = target.type.kind === "String" ? embeds.text : target.type.kind === "Image" ? embeds.image : undefined
        if (fn === undefined) {
          return yield* new Catalog.CatalogError({
            reason: "InvalidDefinition",
            path: meta.path,
            message: `an embedding index on ${column} (${ColumnType.show(target.type)}) needs an embed function for its values (a function of one ${ColumnType.show(target.type)} returning a Vector)`
          })
        }
        const param = fn.definition.params[0]!.name
        const table = new Table<any>(meta)
        const next = yield* table.addComputedColumn(`_emb_${name}`, fn({ [param]: table.c[column] } as never), {
          onError: "record",
          hidden: true
        } as never)
        vectors = next.meta.columns.find((c) => c.name === `_emb_${name}`)!
        embed = functionRef(fn)
      }
      if (vectors.type.kind !== "Vector") return yield* Effect.die(new Error("unreachable: vectors are typed Vector"))
      const current = yield* store.getTable(meta.path)
      const next = yield* store.addIndex(current, {
        name,
        column: target.id,
        vectors: vectors.id,
        embed,
        embeds: {
          ...(embeds.text === undefined ? {} : { text: functionRef(embeds.text) }),
          ...(embeds.image === undefined ? {} : { image: functionRef(embeds.image) })
        },
        metric: options?.metric ?? "cosine",
        precision: options?.precision ?? "halfvec",
        dimension: vectors.type.dim,
        m: options?.m ?? 16,
        efConstruction: options?.efConstruction ?? 64
      })
      return new Table<S>(next)
    })
  }

  /**
   * Adds a full-text index on a String column (PostgreSQL `tsvector` + GIN)
   * for `c.col.matches(query)` and `c.col.textRank(query)` in that language.
   */
  addTextIndex<K extends keyof S & string>(
    column: K,
    options?: { readonly language?: string; readonly name?: string }
  ): Effect.Effect<Table<S>, Catalog.CatalogError | StoreError, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("addTextIndex")
      const target = meta.columns.find((c) => c.name === column)
      if (target === undefined || target.type.kind !== "String") {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `a text index needs a String column; ${meta.path} has no String column ${JSON.stringify(column)}`
        })
      }
      const language = options?.language ?? "english"
      if (!/^[a-z_]+$/.test(language)) {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `invalid text search language ${JSON.stringify(language)}`
        })
      }
      const next = yield* store.addIndex(meta, {
        name: options?.name ?? `${column}_text`,
        kind: "text",
        language,
        column: target.id,
        vectors: target.id,
        metric: "cosine",
        precision: "vector",
        dimension: 0,
        m: 0,
        efConstruction: 0
      })
      return new Table<S>(next)
    })
  }

  /** Drops an embedding index (and the vectors it computed). */
  dropEmbeddingIndex(name: string): Effect.Effect<Table<S>, Catalog.CatalogError | StoreError, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("dropEmbeddingIndex")
      const index = meta.indexes?.find((i) => i.name === name)
      if (index === undefined) {
        return yield* new Catalog.CatalogError({
          reason: "NotFound",
          path: meta.path,
          message: `${meta.path} has no index named ${JSON.stringify(name)}`
        })
      }
      let next = yield* store.dropIndex(meta, index)
      if (index.vectors !== index.column) {
        next = yield* store.dropColumn(next, next.columns.find((c) => c.id === index.vectors)!)
      }
      return new Table<S>(next)
    })
  }

  /** Widens a data column to nullable (metadata only) as a new schema version. */
  setNullable<K extends keyof S & string>(
    name: K
  ): Effect.Effect<Table<Dynamic>, Catalog.CatalogError | StoreError, Store> {
    const load = this.loadForWrite("setNullable")
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      const column = meta.columns.find((c) => c.name === name)
      if (column === undefined || column.computed !== undefined) {
        return yield* new Catalog.CatalogError({
          reason: "NotFound",
          path: meta.path,
          message: `${meta.path} has no data column ${JSON.stringify(name)}`
        })
      }
      if (meta.primaryKey?.includes(column.id)) {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `${name} is part of the primary key of ${meta.path} and cannot be nullable`
        })
      }
      if (column.nullable) return new Table<Dynamic>(meta)
      return new Table<Dynamic>(yield* store.setNullable(meta, column))
    })
  }

  /** Renames a column (metadata only: computed columns that read it keep working). */
  renameColumn<K extends keyof S & string, N extends string>(
    from: K,
    to: N
  ): Effect.Effect<Table<Omit<S, K> & { readonly [P in N]: S[K] }>, Catalog.CatalogError | StoreError, Store> {
    const load = this.loadForWrite("renameColumn")
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      const column = yield* findColumn(meta, from)
      yield* checkNewColumn(meta, to)
      return new Table<Omit<S, K> & { readonly [P in N]: S[K] }>(yield* store.renameColumn(meta, column, to))
    })
  }

  private get query(): Query.Query<S, Column.Row<S>> {
    return new Query.Query<S, Column.Row<S>>({ path: this.path, id: this.id, load: this.loadWith(true) }, this.c)
  }

  // queries ----------------------------------------------------------------------
  where(condition: Condition<S>): Query.Query<S, Column.Row<S>> {
    return this.query.where(condition)
  }
  select<O extends Record<string, Expr.Expr<any>>>(
    outputs: O | ((c: Query.Columns<S>) => O)
  ): Query.Query<S, { readonly [K in keyof O]: Query.TypeOfExpr<O[K]> }> {
    return this.query.select(outputs)
  }
  orderBy(
    key: (keyof S & string) | Expr.Expr<any> | ((c: Query.Columns<S>) => Expr.Expr<any>),
    direction: "asc" | "desc" = "asc"
  ): Query.Query<S, Column.Row<S>> {
    return this.query.orderBy(key as any, direction)
  }
  limit(n: number): Query.Query<S, Column.Row<S>> {
    return this.query.limit(n)
  }
  collect(): Effect.Effect<ReadonlyArray<Column.Row<S>>, Query.QueryFailure, Store> {
    return this.query.collect()
  }
  stream(): Stream.Stream<Column.Row<S>, Query.QueryFailure, Store> {
    return this.query.stream()
  }
  count(): Effect.Effect<number, Query.QueryFailure, Store> {
    return this.query.count()
  }
  head(n = 10): Effect.Effect<ReadonlyArray<Column.Row<S>>, Query.QueryFailure, Store> {
    return this.query.head(n)
  }
  tail(n = 10): Effect.Effect<ReadonlyArray<Column.Row<S>>, Query.QueryFailure, Store> {
    return this.query.tail(n)
  }

  /** The columns with their types, expressions and states. */
  describe(): Effect.Effect<ReadonlyArray<ColumnInfo>, Catalog.CatalogError | StoreError, Store> {
    return Effect.map(this.load, (meta) =>
      meta.columns
        .filter((c) => !c.name.startsWith("_"))
        .map((c) => ({
          name: c.name,
          type: ColumnType.show(c.type),
          nullable: c.nullable,
          computed: c.computed === undefined ? undefined : Expr.show(c.computed.expr),
          stored: c.computed === undefined ? true : c.computed.stored,
          onError: c.computed?.onError,
          state: Catalog.columnState(c)
        }))
    )
  }

  // writes -------------------------------------------------------------------------

  /**
   * Inserts rows, computing every stored computed column for them. Invalid
   * input, or a failing cell of an `onError: "abort"` column, fails the call
   * and writes nothing.
   *
   * Media values are checked first (local files: a header read; `http(s)`
   * URLs are not fetched) and image bytes are written to the media store.
   * With `onError: "abort"` (the default) a missing, corrupt or wrong-format
   * file fails the insert with a `ValidationError` naming the row, the column
   * and the file, and nothing is written. With `"record"` (Pixeltable's
   * `on_error='ignore'`) every error of the insert is recorded instead: such a
   * value is stored as null with its error (`c.img.errorType` /
   * `errorMessage`), the cells computed from it get the same error, failing
   * computed cells are recorded whatever their column's `onError`, and the
   * other rows are written as usual.
   */
  insert(
    rows: ReadonlyArray<Column.InsertRow<S>>,
    options?: {
      /**
       * `false`: write the rows with their computed cells pending and return at
       * once; the supervisor (here or in a daemon) computes them durably.
       */
      readonly wait?: boolean
      /** `"abort"` (default): the first error fails the insert. `"record"`: errors are kept in their cells. */
      readonly onError?: Catalog.OnError
    }
  ): Effect.Effect<InsertResult, WriteFailure, Store> {
    const load = this.loadForWrite("insert")
    const onError = options?.onError ?? "abort"
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      if (meta.view !== undefined) {
        return yield* new Catalog.CatalogError({
          reason: "ReadOnly",
          path: meta.path,
          message: `cannot insert into ${meta.path}: it is a ${meta.view.snapshot ? "snapshot" : "view"}, whose rows come from its base`
        })
      }
      const dataColumns = meta.columns.filter((c) => c.computed === undefined)
      const byName = new Map(meta.columns.map((c) => [c.name, c]))
      const checks = dataColumns.map((c) => ColumnType.checker(c.type))
      const invalidRow = (index: number, column: string, message: string) =>
        new ValidationError({ table: meta.path, operation: "insert", row: index, column, message })
      const work: Array<Compute.WorkRow> = []
      const media: Array<MediaValue> = []
      for (let index = 0; index < rows.length; index++) {
        const row = rows[index] as unknown
        if (typeof row !== "object" || row === null) {
          return yield* invalidRow(index, "", `row ${index} of the insert into ${meta.path} is not an object`)
        }
        let present = 0
        const values = new Map<number, unknown>()
        for (let j = 0; j < dataColumns.length; j++) {
          const column = dataColumns[j]!
          const raw = (row as Record<string, unknown>)[column.name]
          if (raw !== undefined) present++
          if (raw === undefined || raw === null) {
            if (!column.nullable) {
              return yield* invalidRow(
                index,
                column.name,
                `row ${index}: column ${column.name} (${ColumnType.show(column.type)}) of ${meta.path} is required, got ${raw === null ? "null" : "nothing"}`
              )
            }
            values.set(column.id, null)
            continue
          }
          const reference = Media.isKind(column.type.kind) ? Media.referenceOf(raw) : undefined
          if (reference !== undefined) {
            media.push({ row: index, column, value: reference })
            continue
          }
          const checked = checks[j]!(raw)
          if (checked instanceof ColumnType.Invalid) {
            return yield* invalidRow(
              index,
              column.name,
              `row ${index}: column ${column.name} (${ColumnType.show(column.type)}) of ${meta.path}: ${checked.message}`
            )
          }
          values.set(column.id, checked)
        }
        // Keys that are not data columns (unknown or computed) are errors.
        if (Object.keys(row).length !== present) {
          for (const name of Object.keys(row)) {
            const column = byName.get(name)
            if (column === undefined || column.computed !== undefined) {
              return yield* invalidRow(
                index,
                name,
                column === undefined
                  ? `row ${index}: ${meta.path} has no column ${JSON.stringify(name)}`
                  : `row ${index}: ${name} is a computed column of ${meta.path} and cannot be inserted`
              )
            }
          }
        }
        work.push({ values, errors: new Map() })
      }

      yield* prepareMedia(meta, "insert", work, media, onError)
      if (meta.primaryKey !== undefined) yield* checkNewKeys(store, meta, work)
      return yield* writeRows(store, meta, work, { wait: options?.wait !== false, onError })
    }).pipe(Media.track)
  }

  /**
   * Adds a column computed from others. A stored column is backfilled now for
   * every row and kept up to date on insert and update; an unstored one is
   * evaluated when read. With `onError: "abort"` (the default) a failing cell
   * fails the call and the column is not added; with `"record"` the cell keeps
   * its error (queryable as `errorType` / `errorMessage`).
   */
  addComputedColumn<N extends string, T>(
    name: N,
    expr: Expr.Expr<T>,
    options?: {
      readonly onError?: Catalog.OnError
      readonly stored?: boolean
      /** Reuse and store results in the result cache (default: for deterministic functions). */
      readonly cache?: boolean
      /** Return once the column exists, leaving the backfill to the supervisor (default: wait). */
      readonly wait?: boolean
      /** Called as the backfill progresses. */
      readonly onProgress?: (progress: Stage.Progress) => Effect.Effect<void>
    }
  ): Effect.Effect<Table<S & { readonly [K in N]: Column.Computed<T> }>, WriteFailure, Store> {
    const load = this.loadForWrite("addComputedColumn")
    const hidden = (options as { readonly hidden?: boolean } | undefined)?.hidden === true
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      // Hidden columns (an index's vectors) have reserved names starting with "_".
      if (!hidden) yield* checkNewColumn(meta, name)
      const ids = new Set(meta.columns.map((c) => c.id))
      for (const id of Expr.columnIds(expr.node)) {
        if (!ids.has(id)) {
          return yield* new Catalog.CatalogError({
            reason: "InvalidDefinition",
            path: meta.path,
            message: `the expression for ${name} refers to a column that ${meta.path} does not have (columns of another table?)`
          })
        }
      }
      if (Expr.readsErrors(expr.node)) {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `${name}: computed columns may not depend on another column's errorType or errorMessage`
        })
      }
      const column: NewColumn = {
        name,
        type: expr.type,
        nullable: true,
        computed: {
          expr: expr.node,
          onError: options?.onError ?? "abort",
          stored: options?.stored ?? true,
          ...(options?.cache === undefined ? {} : { cache: options.cache })
        }
      }
      yield* Compute.checkFunctions(meta, [{ ...column, id: -1, addedIn: meta.version }])
      // The column is committed with every cell pending; the backfill is the
      // column's stage working through them, durably (a crash resumes it).
      const next = yield* store.addColumn(meta, column)
      const added = next.columns.find((c) => c.name === name)!
      if (column.computed!.stored && options?.wait !== false) {
        const outcome = yield* backfill(store, next, added, options?.onProgress).pipe(
          Effect.onInterrupt(() => Effect.void)
        )
        if (column.computed!.onError === "abort" && outcome.firstError !== undefined) {
          yield* store.removeColumn(next, added)
          return yield* new Compute.ComputeError({
            table: next.path,
            column: name,
            row: outcome.firstError.rowid,
            errorType: outcome.firstError.type,
            message: `Computing ${name} of ${next.path} failed for row ${outcome.firstError.rowid}: ${outcome.firstError.type}: ${outcome.firstError.message}`
          })
        }
        if (outcome.errors > 0) yield* store.recordErrors(next, outcome.errors)
      }
      return new Table<S & { readonly [K in N]: Column.Computed<T> }>(next)
    }).pipe(Media.track)
  }

  /**
   * Drops a column as a new schema version. Fails when computed columns read
   * it (naming them). A dropped computed column's stage stops at once.
   */
  dropColumn<K extends keyof S & string>(
    name: K,
    options?: {
      /** Also drop the views made from this table that use the column (else they make the drop fail). */
      readonly force?: boolean
    }
  ): Effect.Effect<Table<Omit<S, K>>, Catalog.CatalogError | StoreError, Store> {
    const load = this.loadForWrite("dropColumn")
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* load
      const column = yield* findColumn(meta, name)
      if (meta.primaryKey?.includes(column.id)) {
        return yield* new Catalog.CatalogError({
          reason: "HasDependents",
          path: meta.path,
          message: `cannot drop ${name} of ${meta.path}: it is part of the primary key`
        })
      }
      const views = (yield* store.dependentsOf(meta)).filter((v) =>
        [...(v.view?.filter ?? []), ...(v.view?.outputs.map((o) => o.node) ?? [])].some((n) =>
          Expr.columnIds(n).has(column.id)
        )
      )
      if (views.length > 0) {
        if (options?.force !== true) {
          return yield* new Catalog.CatalogError({
            reason: "HasDependents",
            path: meta.path,
            message: `cannot drop ${name} of ${meta.path}: the view${views.length === 1 ? "" : "s"} ${views.map((v) => v.path).join(", ")} use${views.length === 1 ? "s" : ""} it (drop ${views.length === 1 ? "it" : "them"} first, or use force: true)`
          })
        }
        for (const view of views) yield* store.dropTable(view.path, { ifNotExists: "ignore", force: true })
      }
      const dependents = meta.columns.filter((c) => c.id !== column.id && Catalog.dependencies(c).has(column.id))
      if (dependents.length > 0) {
        return yield* new Catalog.CatalogError({
          reason: "HasDependents",
          path: meta.path,
          message: `cannot drop ${name} of ${meta.path}: ${dependents.map((c) => c.name).join(", ")} ${dependents.length === 1 ? "is" : "are"} computed from it`
        })
      }
      return new Table<Omit<S, K>>(yield* store.dropColumn(meta, column))
    })
  }

  /**
   * Sets `values` (plain values or expressions over the row, e.g.
   * `{ n: t.c.n.plus(1) }`) on the rows matching `where` (all rows without
   * it), and recomputes exactly the computed columns that depend on them.
   */
  update(
    values: UpdateValues<S> | ((c: Query.Columns<S>) => UpdateValues<S>),
    where?: Condition<S>,
    options?: { readonly cascade?: boolean }
  ): Effect.Effect<UpdateResult, WriteFailure, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("update")
      const v = typeof values === "function" ? values(self.c) : values
      const byName = new Map(meta.columns.map((c) => [c.name, c]))
      const assignments: Array<{ column: Catalog.ColumnMeta; node: Expr.Node }> = []
      for (const [name, value] of Object.entries(v)) {
        if (value === undefined) continue
        const column = byName.get(name)
        if (column === undefined || column.computed !== undefined) {
          return yield* new ValidationError({
            table: meta.path,
            operation: "update",
            row: -1,
            column: name,
            message:
              column === undefined
                ? `${meta.path} has no column ${JSON.stringify(name)}`
                : `${name} is a computed column of ${meta.path} and cannot be updated (use recompute)`
          })
        }
        assignments.push({ column, node: Expr.toExpr(value, column.type).node })
      }
      const recompute =
        options?.cascade === false ? [] : Catalog.dependents(meta, new Set(assignments.map((a) => a.column.id)))
      const copied = assignments.find((a) => meta.view?.outputs.some((o) => o.name === a.column.name))
      if (copied !== undefined) {
        return yield* new ValidationError({
          table: meta.path,
          operation: "update",
          row: -1,
          column: copied.column.name,
          message: `${copied.column.name} of the view ${meta.path} is copied from its base: update the base instead`
        })
      }
      const keyColumn = assignments.find((a) => meta.primaryKey?.includes(a.column.id))
      if (keyColumn !== undefined) {
        return yield* new ValidationError({
          table: meta.path,
          operation: "update",
          row: -1,
          column: keyColumn.column.name,
          message: `${keyColumn.column.name} is part of the primary key of ${meta.path} and cannot be updated`
        })
      }
      const condition = where === undefined ? undefined : typeof where === "function" ? where(self.c) : where
      const rowids = yield* matchingRowids(store, meta, condition?.node)
      return yield* rewrite(store, meta, rowids, () => assignments, recompute)
    }).pipe(Media.track)
  }

  /**
   * Updates rows by primary key: each row gives the key and the values to set.
   * A key that has no live row is an error (`ifNotExists: "error"`, the
   * default), skipped (`"ignore"`) or inserted (`"insert"`, an upsert).
   * Dependent computed columns are recomputed.
   */
  batchUpdate(
    rows: ReadonlyArray<Partial<Column.InsertRow<S>>>,
    options?: { readonly ifNotExists?: "error" | "ignore" | "insert"; readonly cascade?: boolean }
  ): Effect.Effect<UpdateResult & { readonly inserted: number }, WriteFailure, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("batchUpdate")
      if (meta.primaryKey === undefined) {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path: meta.path,
          message: `${meta.path} has no primary key: batchUpdate and upsert need one`
        })
      }
      const keyColumns = meta.primaryKey.map((id) => meta.columns.find((c) => c.id === id)!)
      const byName = new Map(meta.columns.map((c) => [c.name, c]))
      const input = rows as ReadonlyArray<Record<string, unknown>>
      const keyOf = (row: Record<string, unknown>) => JSON.stringify(keyColumns.map((c) => row[c.name] ?? null))
      for (const [index, row] of input.entries()) {
        for (const c of keyColumns) {
          if (row[c.name] === undefined) {
            return yield* new ValidationError({
              table: meta.path,
              operation: "update",
              row: index,
              column: c.name,
              message: `row ${index}: the primary key column ${c.name} is required to update by key`
            })
          }
        }
        for (const name of Object.keys(row)) {
          const column = byName.get(name)
          if (column === undefined || column.computed !== undefined) {
            return yield* new ValidationError({
              table: meta.path,
              operation: "update",
              row: index,
              column: name,
              message: `row ${index}: ${name} is not a data column of ${meta.path}`
            })
          }
        }
      }
      const existing = yield* rowidsByKey(store, meta, keyColumns, input)
      const toUpdate = new Map<number, Record<string, unknown>>()
      const missing: Array<Record<string, unknown>> = []
      for (const [index, row] of input.entries()) {
        const rowid = existing.get(keyOf(row))
        if (rowid !== undefined) toUpdate.set(rowid, row)
        else if ((options?.ifNotExists ?? "error") === "error") {
          return yield* new ValidationError({
            table: meta.path,
            operation: "update",
            row: index,
            column: keyColumns.map((c) => c.name).join(","),
            message: `row ${index}: no row of ${meta.path} has the key ${keyOf(row)} (use ifNotExists: "insert" or "ignore")`
          })
        } else missing.push(row)
      }
      const isKey = (name: string) => keyColumns.some((c) => c.name === name)
      const changed = new Set<number>()
      for (const row of toUpdate.values()) {
        for (const name of Object.keys(row)) if (!isKey(name)) changed.add(byName.get(name)!.id)
      }
      const recompute = options?.cascade === false ? [] : Catalog.dependents(meta, changed)
      const updated = yield* rewrite(
        store,
        meta,
        [...toUpdate.keys()],
        (rowid) =>
          Object.entries(toUpdate.get(rowid)!)
            .filter(([name]) => !isKey(name))
            .map(([name, value]) => ({
              column: byName.get(name)!,
              node: Expr.lit(value ?? null, byName.get(name)!.type).node
            })),
        recompute
      )
      let inserted = 0
      let version = updated.version
      if (missing.length > 0 && options?.ifNotExists === "insert") {
        const result = yield* self.insert(missing as unknown as ReadonlyArray<Column.InsertRow<S>>)
        inserted = result.inserted
        version = result.version
      }
      return { ...updated, inserted, version }
    }).pipe(Media.track)
  }

  /** Inserts rows whose key is new and updates those whose key exists (`batchUpdate` with `ifNotExists: "insert"`). */
  upsert(
    rows: ReadonlyArray<Column.InsertRow<S>>
  ): Effect.Effect<UpdateResult & { readonly inserted: number }, WriteFailure, Store> {
    return this.batchUpdate(rows as unknown as ReadonlyArray<Partial<Column.InsertRow<S>>>, { ifNotExists: "insert" })
  }

  /** Deletes the rows matching `where` (every row without it); returns how many. */
  delete(where?: Condition<S>): Effect.Effect<number, WriteFailure, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("delete")
      if (meta.view !== undefined) {
        return yield* new Catalog.CatalogError({
          reason: "ReadOnly",
          path: meta.path,
          message: `cannot delete from ${meta.path}: it is a ${meta.view.snapshot ? "snapshot" : "view"}, whose rows come from its base`
        })
      }
      const condition = where === undefined ? undefined : typeof where === "function" ? where(self.c) : where
      const rowids = yield* matchingRowids(store, meta, condition?.node)
      return yield* deleteRowids(store, meta, rowids)
    })
  }

  /**
   * Recomputes stored computed columns for the rows matching `where`:
   * `errorsOnly` limits it to rows where one of them failed; `cascade` (on by
   * default) also recomputes the columns that depend on them.
   */
  recompute(
    columns: ReadonlyArray<keyof S & string>,
    options?: { readonly where?: Condition<S>; readonly errorsOnly?: boolean; readonly cascade?: boolean }
  ): Effect.Effect<UpdateResult, WriteFailure, Store> {
    const self = this
    return Effect.gen(function* () {
      const store = yield* Store
      const meta = yield* self.loadForWrite("recompute")
      const targets: Array<Catalog.ColumnMeta> = []
      for (const name of columns) {
        const column = meta.columns.find((c) => c.name === name)
        if (column?.computed?.stored !== true) {
          return yield* new Catalog.CatalogError({
            reason: "InvalidDefinition",
            path: meta.path,
            message: `cannot recompute ${JSON.stringify(name)}: it is not a stored computed column of ${meta.path}`
          })
        }
        targets.push(column)
      }
      const ids = new Set(targets.map((c) => c.id))
      const all =
        options?.cascade === false
          ? targets
          : meta.columns.filter((c) => ids.has(c.id) || Catalog.dependents(meta, ids).some((d) => d.id === c.id))
      const where = options?.where
      let condition = where === undefined ? undefined : (typeof where === "function" ? where(self.c) : where).node
      if (options?.errorsOnly) {
        const failedAny = Expr.or(
          ...targets.map(
            (c) => new Expr.ColumnRef(c.id, c.name, c.type, true).errorType.isNotNull() as Expr.Expr<boolean | null>
          )
        ).node
        condition =
          condition === undefined ? failedAny : { _tag: "Binary", op: "and", left: condition, right: failedAny }
      }
      return yield* rewrite(store, meta, yield* matchingRowids(store, meta, condition), () => [], all)
    }).pipe(Media.track)
  }
}

const functionRef = (fn: Fn.Fn<any, unknown>): Catalog.FunctionRef => ({
  fn: fn.definition.name,
  version: fn.definition.version
})

type EmbedFn = Fn.Fn<any, Float32Array>

/**
 * An embedding index's functions by modality, checked: a text function takes
 * a String, an image function an Image, all return vectors of one dimension
 * (a Vector column's, when the index is on one). `embed` is the function for
 * the column's modality (for a Vector column, for its own parameter's).
 */
const embedFunctions = (
  meta: Catalog.TableMeta,
  column: string,
  type: ColumnType.ColumnType,
  options: {
    readonly embed?: EmbedFn | undefined
    readonly textEmbed?: EmbedFn | undefined
    readonly imageEmbed?: EmbedFn | undefined
  }
): Effect.Effect<
  { readonly text?: EmbedFn | undefined; readonly image?: EmbedFn | undefined },
  Catalog.CatalogError
> => {
  const invalid = (message: string) =>
    Effect.fail(
      new Catalog.CatalogError({
        reason: "InvalidDefinition",
        path: meta.path,
        message: `embedding index on ${column}: ${message}`
      })
    )
  const modalityOf = (fn: EmbedFn): "text" | "image" | undefined => {
    const kind = fn.definition.params[0]?.type.kind
    return kind === "String" ? "text" : kind === "Image" ? "image" : undefined
  }
  const byModality: { text?: EmbedFn; image?: EmbedFn } = {}
  const given: ReadonlyArray<readonly [string, EmbedFn | undefined, "text" | "image" | undefined]> = [
    ["textEmbed", options.textEmbed, "text"],
    ["imageEmbed", options.imageEmbed, "image"],
    ["embed", options.embed, type.kind === "String" ? "text" : type.kind === "Image" ? "image" : undefined]
  ]
  let dim = type.kind === "Vector" ? type.dim : undefined
  for (const [option, fn, expected] of given) {
    if (fn === undefined) continue
    const modality = modalityOf(fn)
    if (modality === undefined || (expected !== undefined && modality !== expected)) {
      return invalid(
        `${option} (${fn.definition.name}) must take ${expected === "image" ? "an Image" : expected === "text" ? "a String" : "a String or an Image"} as its first parameter`
      )
    }
    const returns = fn.definition.returns
    if (returns.kind !== "Vector") return invalid(`${option} (${fn.definition.name}) must return a Vector`)
    if (dim !== undefined && returns.dim !== dim) {
      return invalid(
        `${option} (${fn.definition.name}) returns Vector(${returns.dim}); the index's vectors have ${dim}`
      )
    }
    dim = returns.dim
    const other = byModality[modality]
    if (other !== undefined && other.definition !== fn.definition) {
      return invalid(`two different ${modality} functions (${other.definition.name}, ${fn.definition.name})`)
    }
    byModality[modality] = fn
  }
  return Effect.succeed(byModality)
}

/** The live column with this name, or a NotFound error naming the table. */
const findColumn = (meta: Catalog.TableMeta, name: string): Effect.Effect<Catalog.ColumnMeta, Catalog.CatalogError> => {
  const column = meta.columns.find((c) => c.name === name)
  return column !== undefined
    ? Effect.succeed(column)
    : Effect.fail(
        new Catalog.CatalogError({
          reason: "NotFound",
          path: meta.path,
          message: `${meta.path} has no column ${JSON.stringify(name)}`
        })
      )
}

/** A new column's name must be valid and not taken. */
const checkNewColumn = (meta: Catalog.TableMeta, name: string): Effect.Effect<void, Catalog.CatalogError> => {
  const invalid = Catalog.checkColumnName(meta.path, name)
  if (invalid !== undefined) return Effect.fail(invalid)
  if (meta.columns.some((c) => c.name === name)) {
    return Effect.fail(
      new Catalog.CatalogError({
        reason: "AlreadyExists",
        path: meta.path,
        message: `${meta.path} already has a column ${JSON.stringify(name)}`
      })
    )
  }
  return Effect.void
}

// ---------------------------------------------------------------------------
// Catalog operations
// ---------------------------------------------------------------------------

export interface CreateOptions<K extends string = string> {
  readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined
  /** The primary key: one column or several; unique among live rows, never null, not updatable. */
  readonly primaryKey?: K | ReadonlyArray<K> | undefined
}

/** Creates a table from a schema of data columns. */
export const create = <S extends Record<string, Column.Any>>(
  path: string,
  schema: S,
  options?: CreateOptions<keyof S & string>
): Effect.Effect<Table<S>, Catalog.CatalogError | StoreError, Store> =>
  Effect.gen(function* () {
    const store = yield* Store
    const columns: Array<NewColumn> = []
    for (const [name, spec] of Object.entries(schema)) {
      const error = Catalog.checkColumnName(path, name)
      if (error !== undefined) return yield* error
      if (spec?._tag !== "Column") {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path,
          message: `column ${name} of ${path} is not a column definition (use Column.String, Column.Int, ...)`
        })
      }
      columns.push({ name, type: spec.type, nullable: spec.nullable })
    }
    if (columns.length === 0) {
      return yield* new Catalog.CatalogError({
        reason: "InvalidDefinition",
        path,
        message: `a table needs at least one column (${path})`
      })
    }
    const key = options?.primaryKey
    const { table } = yield* store.createTable(path, columns, {
      ifExists: options?.ifExists ?? "error",
      primaryKey: key === undefined ? undefined : typeof key === "string" ? [key] : key
    })
    return new Table<S>(table)
  })

/**
 * Hybrid search: fuses a full-text ranking and a vector-similarity ranking of
 * the same table with reciprocal rank fusion (score = Σ weight / (rrfK +
 * rank)), so that rows matching only by keyword and rows matching only by
 * meaning both surface. Returns the top `k` rows with their fused `score`.
 */
export const hybridSearch = <S extends Column.Specs>(
  table: Table<S>,
  options: {
    readonly text: { readonly column: keyof S & string; readonly query: string; readonly language?: string }
    readonly vector: {
      readonly column: keyof S & string
      readonly query: string | Float32Array | ReadonlyArray<number>
      readonly index?: string
    }
    readonly k?: number
    readonly weights?: { readonly text?: number; readonly vector?: number }
    readonly rrfK?: number
    readonly where?: Condition<S>
  }
): Effect.Effect<ReadonlyArray<Column.Row<S> & { readonly score: number }>, Query.QueryFailure, Store> =>
  Effect.gen(function* () {
    const k = options.k ?? 10
    const depth = Math.max(k * 4, 20)
    const rrfK = options.rrfK ?? 60
    const c = table.c as Record<string, Expr.ColumnRef<any>>
    const base = options.where === undefined ? table.where(Expr.lit(true)) : table.where(options.where)
    const rowidOf = (row: Record<string, unknown>) => row.$id as number
    const text = c[options.text.column]!
    const byText = yield* base
      .where(text.matches(options.text.query, { language: options.text.language ?? "english" }))
      .orderBy(text.textRank(options.text.query, { language: options.text.language ?? "english" }), "desc")
      .limit(depth)
      .collectWithIds()
    const vectorColumn = c[options.vector.column]!
    const similarity = vectorColumn.similarity(
      options.vector.query,
      options.vector.index === undefined ? undefined : { index: options.vector.index }
    )
    const byVector = yield* base.orderBy(similarity, "desc").limit(depth).collectWithIds()
    const scores = new Map<number, { row: Record<string, unknown>; score: number }>()
    const add = (rows: ReadonlyArray<Record<string, unknown>>, weight: number) => {
      for (const [rank, row] of rows.entries()) {
        const id = rowidOf(row)
        const entry = scores.get(id) ?? { row, score: 0 }
        entry.score += weight / (rrfK + rank + 1)
        scores.set(id, entry)
      }
    }
    add(byText, options.weights?.text ?? 1)
    add(byVector, options.weights?.vector ?? 1)
    return [...scores.values()]
      .sort((a, b) => b.score - a.score)
      .slice(0, k)
      .map(({ row, score }) => {
        const { $id: _, ...rest } = row
        return { ...(rest as Column.Row<S>), score }
      })
  })

/** What a view or snapshot is made from: a table (all its rows and columns) or a query over one. */
export type Source<S extends Column.Specs, R> = Table<S> | Query.Query<S, R>

/** The row type a source gives. */
export type RowOf<Src> = Src extends Query.Query<any, infer R> ? R : Src extends Table<infer S> ? Column.Row<S> : never

/** The columns of a view: every output of its source, computed from the base (absent from inserts). */
export type ViewSpecs<R> = { readonly [K in keyof R]: Column.Computed<Media.Value<Exclude<R[K], null>>> }

const makeView = <S extends Column.Specs, R>(
  path: string,
  source: Source<S, R>,
  snapshot: boolean,
  options?: {
    readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined
    readonly iterator?: Iterator.Call<any> | undefined
  }
): Effect.Effect<Table<ViewSpecs<R>>, WriteFailure, Store> =>
  Effect.gen(function* () {
    const store = yield* Store
    const query: Query.Query<S, R> =
      source instanceof Table ? ((source as Table<S>).where(Expr.lit(true)) as unknown as Query.Query<S, R>) : source
    // The current entry, not a cached one: a snapshot records the base's exact version.
    const base = yield* store.getTable(query.source.path)
    if (base.id !== query.source.id) {
      return yield* new Catalog.CatalogError({
        reason: "NotFound",
        path: query.source.path,
        message: `the table ${query.source.path} this view would be made from was dropped`
      })
    }
    if ((yield* query.source.load).asOf !== undefined) {
      return yield* new Catalog.CatalogError({
        reason: "InvalidDefinition",
        path,
        message: `a view cannot be made from ${base.path}:${base.asOf}, a view of the past (use a snapshot of the current version)`
      })
    }
    const selected = query.state.select ?? base.columns.map((c) => ({ key: c.name, node: columnNode(c) }))
    const types = Catalog.columnTypes(base)
    const columns: Array<NewColumn> = []
    for (const output of selected) {
      const error = Catalog.checkColumnName(path, output.key)
      if (error !== undefined) return yield* error
      const node = output.node
      const column = node._tag === "Column" ? base.columns.find((c) => c.id === node.id) : undefined
      columns.push({
        name: output.key,
        type: Expr.typeOf(node, types),
        nullable: column === undefined || column.nullable || column.computed !== undefined,
        // A copy keeps the base's cell errors (a failed computed cell, a media value that failed its check,
        // an expression that fails on the row), so the view's own columns over it get the same error.
        cells: true
      })
    }
    const call = options?.iterator
    let iteratorOutputs: Array<string> = []
    if (call !== undefined) {
      const iterator = Iterator.lookup(call.fn, call.version)
      if (iterator === undefined) {
        return yield* new Catalog.CatalogError({
          reason: "InvalidDefinition",
          path,
          message: `the iterator ${call.fn}@${call.version} is not defined in this process`
        })
      }
      for (const output of [{ name: Iterator.POSITION, type: ColumnType.Int, nullable: false }, ...iterator.outputs]) {
        if (columns.some((c) => c.name === output.name)) {
          return yield* new Catalog.CatalogError({
            reason: "InvalidDefinition",
            path,
            message: `the iterator's column ${output.name} clashes with a column of ${base.path}: select the base columns to keep`
          })
        }
        columns.push({ name: output.name, type: output.type, nullable: output.nullable })
      }
      iteratorOutputs = iterator.outputs.map((o) => o.name)
      if (iterator.check !== undefined) {
        // The view's constant arguments (its options) are checked now, whether or not the base has rows.
        const constants = call.args.map((node) => (node._tag === "Literal" ? node.value : undefined))
        yield* Effect.mapError(
          iterator.check(constants),
          (error) =>
            new Catalog.CatalogError({
              reason: "InvalidDefinition",
              path,
              message: `${iterator.name}: ${Fn.describeError(error).message}`
            })
        )
      }
    }
    const definition: Catalog.ViewDefinition = {
      base: base.id,
      filter: query.state.where,
      outputs: selected.map((o) => ({ name: o.key, node: o.node })),
      snapshot,
      baseVersion: base.version,
      ...(call === undefined
        ? {}
        : { iterator: { fn: call.fn, version: call.version, args: call.args, outputs: iteratorOutputs } })
    }
    const { table, created } = yield* store.createTable(path, columns, {
      ifExists: options?.ifExists ?? "error",
      view: definition
    })
    if (created) {
      // A view that cannot be filled is not left behind half-made.
      yield* syncView(store, base, table, undefined).pipe(
        Effect.onError(() => Effect.ignore(store.dropTable(path, { ifNotExists: "ignore", force: true })))
      )
    }
    return new Table<ViewSpecs<R>>(yield* store.getTable(path))
  }).pipe(Media.track)

/**
 * Creates a view: the rows of `source` (a table, or a query with `where` and
 * `select`), kept up to date as the base changes: base inserts add matching
 * rows, updates move rows in or out and change the copied values (recomputing
 * the view's own computed columns that read them), deletes remove them. A view
 * has computed columns of its own; it cannot be inserted into or deleted from.
 */
export function createView<Src extends Source<any, any>>(
  path: string,
  source: Src,
  options?: { readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined }
): Effect.Effect<Table<ViewSpecs<RowOf<Src>>>, WriteFailure, Store>
/**
 * An iterator view: one row per component the iterator yields for each base
 * row (frames, chunks, segments...), with a `pos` column and the iterator's
 * outputs beside the base's columns.
 */
export function createView<Src extends Source<any, any>, O extends Record<string, Column.Any>>(
  path: string,
  source: Src,
  options: {
    readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined
    readonly iterator: Iterator.Call<O>
  }
): Effect.Effect<
  Table<
    ViewSpecs<RowOf<Src>> & { readonly pos: Column.Computed<number> } & {
      readonly [K in keyof O]: Column.Computed<Column.ValueOf<O[K]>>
    }
  >,
  WriteFailure,
  Store
>
export function createView(
  path: string,
  source: Source<any, any>,
  options?: {
    readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined
    readonly iterator?: Iterator.Call<any> | undefined
  }
): Effect.Effect<Table<any>, WriteFailure, Store> {
  return makeView(path, source, false, options)
}

/**
 * Creates a snapshot: a frozen, read-only copy of `source` (a table or a
 * query) at its current version. Later changes to the base do not reach it,
 * and every change to it fails.
 */
export const createSnapshot = <Src extends Source<any, any>, O extends Record<string, Expr.Expr<any>> = {}>(
  path: string,
  source: Src,
  options?: {
    readonly ifExists?: "error" | "ignore" | "replace" | "replace_force" | undefined
    /** The snapshot's own computed columns, computed once over its rows (it cannot change afterwards). */
    readonly computed?: ((c: Query.Columns<ViewSpecs<RowOf<Src>>>) => O) | undefined
  }
): Effect.Effect<
  Table<ViewSpecs<RowOf<Src>> & { readonly [K in keyof O]: Column.Computed<Query.ValueOfExpr<O[K]>> }>,
  WriteFailure,
  Store
> =>
  Effect.gen(function* () {
    type Result = ViewSpecs<RowOf<Src>> & { readonly [K in keyof O]: Column.Computed<Query.ValueOfExpr<O[K]>> }
    const snapshot = yield* makeView<any, RowOf<Src>>(path, source, true, options)
    if (options?.computed === undefined) return new Table<Result>(snapshot.meta)
    let current = new Table<Dynamic>(snapshot.meta, { settingUp: true })
    for (const [name, expr] of Object.entries(options.computed(snapshot.c))) {
      const next = yield* current.addComputedColumn(name, expr)
      current = new Table<Dynamic>(next.meta, { settingUp: true })
    }
    return new Table<Result>((yield* get(path)).meta)
  })

/**
 * Opens a table by path. With `{ version: N }`, or the path form `"dir/t:N"`,
 * the handle is a read-only view of the table as it was at version N: that
 * version's columns (with their names of then) and rows. Its schema is not
 * known statically: rows are untyped.
 */
export const get = (
  path: string,
  options?: { readonly version?: number | undefined }
): Effect.Effect<Table<Dynamic>, Catalog.CatalogError | StoreError, Store> =>
  Effect.gen(function* () {
    const store = yield* Store
    const match = /^(.*):(\d+)$/.exec(path)
    const base = match === null ? path : match[1]!
    const version = options?.version ?? (match === null ? undefined : Number(match[2]))
    return new Table<Dynamic>(yield* store.getTable(base, version))
  })

/** The paths of the tables in a directory (the root by default), recursively if asked. */
export const list = (
  dir = "",
  options?: { readonly recursive?: boolean }
): Effect.Effect<ReadonlyArray<string>, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) => store.listTables(dir, options?.recursive ?? true))

/** Drops a table and its data. */
export const drop = (
  path: string,
  options?: { readonly ifNotExists?: "error" | "ignore"; readonly force?: boolean }
): Effect.Effect<void, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) =>
    store.dropTable(path, { ifNotExists: options?.ifNotExists ?? "error", force: options?.force ?? false })
  )

/** Moves (or renames) a table. */
export const move = (from: string, to: string): Effect.Effect<void, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) => store.moveTable(from, to))
