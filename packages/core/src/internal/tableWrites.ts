/**
 * The write paths of tables: inserts (with media checks and computed
 * columns), updates, deletes, backfills of new columns, and the maintenance
 * of views that follow a base table. `Table` calls them; they do not know the
 * `Table` handle class.
 */
import { Effect, Result, Schema, Stream } from "effect"
import * as Catalog from "../Catalog.ts"
import * as ColumnType from "../ColumnType.ts"
import * as Compute from "../Compute.ts"
import * as Evaluate from "../Evaluate.ts"
import * as Expr from "../Expr.ts"
import * as Fn from "../Fn.ts"
import * as Iterator from "../Iterator.ts"
import * as Media from "../Media.ts"
import type * as Query from "../Query.ts"
import * as ResultCache from "../ResultCache.ts"
import * as Stage from "../Stage.ts"
import type { Cell, Store, StoreError } from "../Store.ts"
import * as Supervisor from "../Supervisor.ts"

/** Invalid input rows: nothing from the operation was written. */
export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  table: Schema.String,
  operation: Schema.Literals(["insert", "update"]),
  /** The 0-based index of the offending row in the input (insert) or the row id (update). */
  row: Schema.Number,
  column: Schema.String,
  /** The media file (or URL) that failed its check, for a media value. */
  file: Schema.optional(Schema.String),
  message: Schema.String
}) {}

export interface InsertResult {
  readonly inserted: number
  /** Computed cells written. */
  readonly computed: number
  /** Cells in error (with `onError: "record"`): computed cells that failed, and media values that failed their check. */
  readonly errors: number
  readonly columnsWithErrors: ReadonlyArray<string>
  /** Computed cells left pending (`wait: false`) for the supervisor to compute. */
  readonly pending: number
  /** The table version the insert created. */
  readonly version: number
}

export interface UpdateResult {
  readonly updated: number
  readonly computed: number
  readonly errors: number
  readonly version: number
}

export type WriteFailure =
  | ValidationError
  | Compute.ComputeError
  | Compute.UnknownFunctionError
  | Catalog.CatalogError
  | StoreError
  | Query.QueryError

const BATCH = 5000

const pendingCell: Cell = { value: null, state: "pending", errorType: null, errorMessage: null, attempts: 0 }

const emptyCell = (value: unknown): Cell => ({
  value,
  state: "done",
  errorType: null,
  errorMessage: null,
  attempts: 0
})

/** A data column's stored value in a row: a media value that failed its check is stored as its error. */
const dataValue = (column: Catalog.ColumnMeta, row: Compute.WorkRow): unknown => {
  const error = row.errors.get(column.id)
  if (error === undefined) return row.values.get(column.id) ?? null
  return { value: null, state: "error", errorType: error.type, errorMessage: error.message, attempts: 0 } satisfies Cell
}

// ---------------------------------------------------------------------------
// Shared write paths
// ---------------------------------------------------------------------------

/** A media value given to a write, before it is checked: row (input index or row id), column, reference or bytes. */
export interface MediaValue {
  readonly row: number
  readonly column: Catalog.ColumnMeta
  readonly value: string | Uint8Array
}

/**
 * Checks the media values of a write (and stores image bytes), a bounded
 * number at once, and puts the references to store into the rows (`work`,
 * indexed like the values' `row` for an insert, by `indexOf` otherwise). A
 * value that fails fails the write with a `ValidationError` naming the row,
 * the column and the file (`abort`), or is recorded as that cell's error, its
 * value null (`record`).
 */
export const prepareMedia = Effect.fnUntraced(function* (
  meta: Catalog.TableMeta,
  operation: "insert" | "update",
  work: ReadonlyArray<Compute.WorkRow>,
  values: ReadonlyArray<MediaValue>,
  onError: Catalog.OnError,
  indexOf: (row: number) => number = (row) => row
) {
  const outcomes = yield* Effect.forEach(
    values,
    (v) => Effect.result(Media.prepare(v.column.type.kind as Media.Kind, v.value)),
    { concurrency: Media.PREPARE_CONCURRENCY }
  )
  for (const [i, outcome] of outcomes.entries()) {
    const { row, column } = values[i]!
    const target = work[indexOf(row)]!
    if (Result.isSuccess(outcome)) {
      target.values.set(column.id, outcome.success)
      target.errors.delete(column.id)
      continue
    }
    const error = outcome.failure
    if (onError === "abort") {
      return yield* new ValidationError({
        table: meta.path,
        operation,
        row,
        column: column.name,
        file: error.path,
        message: `row ${row}: column ${column.name} (${ColumnType.show(column.type)}) of ${meta.path}: ${error.message}`
      })
    }
    target.values.set(column.id, null)
    target.errors.set(column.id, Fn.describeError(error))
  }
})

/**
 * Writes validated rows: computes their cells (or leaves them pending), then
 * in one transaction records the version, writes the rows and brings the
 * views made from the table up to date.
 */
export const writeRows = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  work: ReadonlyArray<Compute.WorkRow>,
  options: {
    readonly wait: boolean
    readonly baseRowids?: ReadonlyArray<number> | undefined
    /** `"record"`: every error is kept in its cell, whatever the column's `onError`. */
    readonly onError?: Catalog.OnError | undefined
  }
): Effect.fn.Return<InsertResult, WriteFailure, Store> {
  const dataColumns = meta.columns.filter((c) => c.computed === undefined)
  const { inEngine: computedColumns, inStore } = splitComputed(store, meta)
  const wait = options.wait
  const cells = wait
    ? yield* Compute.computeColumns(meta, computedColumns, work)
    : new Map(computedColumns.map((c) => [c.id, work.map(() => pendingCell)] as const))
  const abort = options.onError === "record" ? undefined : Compute.firstAbort(meta, computedColumns, cells, (i) => i)
  if (abort !== undefined) return yield* abort

  const stored = [...dataColumns, ...computedColumns]
  const physical = work.map((row, i) =>
    stored.map((c) => (c.computed === undefined ? dataValue(c, row) : cells.get(c.id)![i]))
  )
  let invalidValues = 0
  let failedCells = 0
  const columnsWithErrors: Array<string> = []
  for (const column of dataColumns) {
    const n = work.filter((row) => row.errors.has(column.id)).length
    invalidValues += n
    if (n > 0) columnsWithErrors.push(column.name)
  }
  for (const column of computedColumns) {
    const n = cells.get(column.id)!.filter((cell) => cell.state === "error").length
    failedCells += n
    if (n > 0) columnsWithErrors.push(column.name)
  }
  const errors = invalidValues + failedCells
  const version = yield* store.transaction(
    Effect.gen(function* () {
      const version = yield* store.bumpVersion(meta, { inserted: work.length, errors })
      const rowids: Array<number> = []
      for (let i = 0; i < physical.length; i += BATCH) {
        rowids.push(
          ...(yield* store.insertRows(
            meta,
            version,
            stored,
            physical.slice(i, i + BATCH),
            inStore,
            options.baseRowids?.slice(i, i + BATCH)
          ))
        )
      }
      yield* maintainViews(store, meta, rowids, options.onError)
      return version
    })
  )
  if (!wait && computedColumns.length > 0) yield* store.notify({ kind: "rows", table: meta.id })
  return {
    inserted: work.length,
    computed: ((wait ? computedColumns.length : 0) + inStore.length) * work.length - failedCells,
    errors,
    columnsWithErrors,
    pending: wait ? 0 : computedColumns.length * work.length,
    version
  } satisfies InsertResult
})

/** Ends the given rows as a new version, and takes them out of the views made from the table. */
export const deleteRowids = (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  rowids: ReadonlyArray<number>
): Effect.Effect<number, WriteFailure, Store> =>
  rowids.length === 0
    ? Effect.succeed(0)
    : store.transaction(
        Effect.gen(function* () {
          const version = yield* store.bumpVersion(meta, { deleted: rowids.length })
          const deleted = yield* store.deleteRows(meta, version, rowids)
          yield* maintainViews(store, meta, rowids)
          return deleted
        })
      )

/**
 * Brings the views made from `base` up to date for the base rows `rowids`
 * (just inserted, updated or deleted): a view row appears for a base row that
 * now matches the view's filter, changes when its copied values changed (its
 * own computed columns that read them are recomputed), and goes when the base
 * row no longer matches or is gone. Views of views follow in turn.
 */
export const maintainViews = (
  store: Store["Service"],
  base: Catalog.TableMeta,
  rowids: ReadonlyArray<number>,
  /** The base write's: with `"record"`, the views record their cells' errors as the base did. */
  onError?: Catalog.OnError | undefined
): Effect.Effect<void, WriteFailure, Store> =>
  Effect.gen(function* () {
    if (rowids.length === 0) return
    for (const view of yield* store.dependentsOf(base)) {
      if (view.view === undefined || view.view.snapshot) continue
      yield* syncView(store, base, view, rowids, onError)
    }
  })

/** Makes the view's rows for the base rows `rowids` (all base rows when undefined) match the base. */
export const syncView = Effect.fnUntraced(function* (
  store: Store["Service"],
  base: Catalog.TableMeta,
  view: Catalog.TableMeta,
  rowids: ReadonlyArray<number> | undefined,
  /** The base write's: `"record"` records the errors of the view's computed cells too. */
  onError?: Catalog.OnError | undefined
): Effect.fn.Return<void, WriteFailure, Store> {
  const definition = view.view!
  const baseNow = yield* store.getTable(base.path)
  const wanted = yield* viewRowsOf(store, baseNow, definition, rowids)
  const names = [
    ...definition.outputs.map((o) => o.name),
    ...(definition.iterator === undefined ? [] : [Iterator.POSITION, ...definition.iterator.outputs])
  ]
  const outputs = names.map((name) => view.columns.find((c) => c.name === name)!)
  // Copies of media values are read with their cells: an error recorded in the base is recorded in the view.
  const all = yield* store.scanAll(view, {
    where: [],
    outputs: outputs.filter((c) => !Catalog.hasCell(c)).map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
    orderBy: [],
    withRowid: true,
    withBaseRowid: true,
    cells: outputs.filter(Catalog.hasCell).map((c) => c.id),
    ...(rowids === undefined ? {} : { baseRowids: rowids })
  })
  const current = new Map<number, Array<{ rowid: number; values: Compute.WorkRow }>>()
  for (const row of all) {
    const list = current.get(row.$baseRowid as number) ?? []
    list.push({ rowid: row.$rowid as number, values: Stage.workRow(view, row) })
    current.set(row.$baseRowid as number, list)
  }
  // A view column without a cell has nowhere to keep an error: its value (null) is copied alone.
  const wantedRow = (component: ViewRow): Compute.WorkRow => {
    const values = new Map<number, unknown>()
    const errors = new Map<number, CellError>()
    for (const [i, c] of outputs.entries()) {
      const error = Catalog.hasCell(c) ? component.errors[i] : undefined
      values.set(c.id, error === undefined ? (component.values[i] ?? null) : null)
      if (error !== undefined) errors.set(c.id, error)
    }
    return { values, errors }
  }
  const sameCell = (a: Compute.WorkRow, b: Compute.WorkRow, id: number) => {
    const ea = a.errors.get(id)
    const eb = b.errors.get(id)
    return sameValue(a.values.get(id), b.values.get(id)) && ea?.type === eb?.type && ea?.message === eb?.message
  }
  const differs = (a: Compute.WorkRow, b: Compute.WorkRow) => outputs.some((c) => !sameCell(a, b, c.id))
  const inserts: Array<{ baseRowid: number; row: Compute.WorkRow }> = []
  const updates = new Map<number, { before: Compute.WorkRow; after: Compute.WorkRow }>()
  const deletes: Array<number> = []
  for (const [baseRowid, components] of wanted) {
    const rows = current.get(baseRowid) ?? []
    const mapped = components.map(wantedRow)
    if (rows.length === 0) {
      for (const row of mapped) inserts.push({ baseRowid, row })
    } else if (definition.iterator === undefined) {
      if (differs(rows[0]!.values, mapped[0]!))
        updates.set(rows[0]!.rowid, { before: rows[0]!.values, after: mapped[0]! })
    } else if (rows.length !== mapped.length || rows.some((row, i) => differs(row.values, mapped[i]!))) {
      // A base row whose components changed gets new components.
      deletes.push(...rows.map((r) => r.rowid))
      for (const row of mapped) inserts.push({ baseRowid, row })
    }
  }
  for (const [baseRowid, rows] of current) {
    if (!wanted.has(baseRowid)) deletes.push(...rows.map((r) => r.rowid))
  }
  if (updates.size > 0) {
    const changed = new Set<number>()
    for (const { before, after } of updates.values()) {
      for (const c of outputs) if (!sameCell(before, after, c.id)) changed.add(c.id)
    }
    yield* rewrite(
      store,
      view,
      [...updates.keys()],
      (rowid) => {
        const { after } = updates.get(rowid)!
        return outputs.map((c) => ({
          column: c,
          node: Expr.lit(after.values.get(c.id) ?? null, c.type).node,
          error: after.errors.get(c.id)
        }))
      },
      Catalog.dependents(view, changed)
    )
  }
  if (deletes.length > 0) yield* deleteRowids(store, yield* store.getTable(view.path), deletes)
  if (inserts.length > 0) {
    yield* writeRows(
      store,
      yield* store.getTable(view.path),
      inserts.map((i) => i.row),
      { wait: true, baseRowids: inserts.map((i) => i.baseRowid), onError }
    )
  }
})

const sameValue = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (a === null || b === null || a === undefined || b === undefined) return (a ?? null) === (b ?? null)
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime()
  return JSON.stringify(ResultCache.encodeValue(a)) === JSON.stringify(ResultCache.encodeValue(b))
}

/** An error recorded in a cell: a failed computed cell, or a media value that failed its check. */
type CellError = { readonly type: string; readonly message: string }

/**
 * A view row as its base row gives it: the values of the view's columns
 * (outputs, then for an iterator view `pos` and the iterator's columns), and
 * the errors of the outputs whose cells failed in the base (their value null).
 */
interface ViewRow {
  readonly values: ReadonlyArray<unknown>
  readonly errors: ReadonlyArray<CellError | undefined>
}

const cellError = (cell: Cell | undefined): CellError | undefined =>
  cell?.state === "error" ? { type: cell.errorType ?? "Error", message: cell.errorMessage ?? "" } : undefined

/**
 * The view rows the base rows `rowids` (all live base rows when undefined)
 * should give: base row id -> one `ViewRow` per view row (several for an
 * iterator view).
 */
const viewRowsOf = Effect.fnUntraced(function* (
  store: Store["Service"],
  base: Catalog.TableMeta,
  definition: Catalog.ViewDefinition,
  rowids: ReadonlyArray<number> | undefined
) {
  const call = definition.iterator
  const nodes = [...definition.filter, ...definition.outputs.map((o) => o.node), ...(call?.args ?? [])].map((n) =>
    Catalog.inlineUnstored(base, n)
  )
  const reads = new Set<number>()
  for (const n of nodes) for (const id of Expr.columnIds(n)) reads.add(id)
  const inputs = base.columns.filter((c) => reads.has(c.id))
  const raws = yield* store.scanAll(base, {
    where: [],
    outputs: inputs
      .filter((c) => c.computed === undefined && !Catalog.hasCell(c))
      .map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
    orderBy: [],
    withRowid: true,
    // Cells carry their errors (a media value that failed its check too): the view's copies get them.
    cells: inputs.filter(Catalog.hasCell).map((c) => c.id),
    ...(rowids === undefined ? {} : { rowids })
  })
  const work = raws.map((r) => Stage.workRow(base, r))
  let keep = raws.map(() => true)
  for (const condition of definition.filter) {
    const cells = yield* Compute.evaluateRows(base, Catalog.inlineUnstored(base, condition), work)
    keep = keep.map((k, i) => k && cells[i]!.state === "done" && cells[i]!.value === true)
  }
  const values = yield* Effect.forEach(definition.outputs, (o) =>
    Compute.evaluateRows(base, Catalog.inlineUnstored(base, o.node), work)
  )
  const args =
    call === undefined
      ? []
      : yield* Effect.forEach(call.args, (arg) => Compute.evaluateRows(base, Catalog.inlineUnstored(base, arg), work))
  const iterator = call === undefined ? undefined : Iterator.lookup(call.fn, call.version)
  if (call !== undefined && iterator === undefined) {
    return yield* new Compute.UnknownFunctionError({
      table: base.path,
      column: "(iterator)",
      functions: [`${call.fn}@${call.version}`],
      message: `the iterator ${call.fn}@${call.version} of a view of ${base.path} is not defined in this process`
    })
  }
  const out = new Map<number, ReadonlyArray<ViewRow>>()
  for (const [i, raw] of raws.entries()) {
    if (!keep[i]) continue
    const projected = values.map((cells) => cells[i]!.value ?? null)
    const errors = values.map((cells) => cellError(cells[i]))
    if (iterator === undefined) {
      out.set(raw.$rowid as number, [{ values: projected, errors }])
      continue
    }
    const argValues = args.map((cells) => cells[i]!.value ?? null)
    // A required argument that is null gives no components, as a function is not called.
    if (iterator.params.some((p, j) => !p.nullable && argValues[j] === null)) {
      out.set(raw.$rowid as number, [])
      continue
    }
    const components = yield* Stream.runCollect(iterator.run(argValues)).pipe(
      Effect.mapError(
        (cause) =>
          new Compute.ComputeError({
            table: base.path,
            column: call!.fn,
            row: raw.$rowid as number,
            errorType: Fn.describeError(cause).type,
            message: `the iterator ${call!.fn} failed on row ${raw.$rowid} of ${base.path}: ${Fn.describeError(cause).message}`
          })
      )
    )
    out.set(
      raw.$rowid as number,
      components.map((component, pos) => ({
        values: [...projected, pos, ...iterator.outputs.map((o) => component[o.name] ?? null)],
        errors
      }))
    )
  }
  return out
})

/**
 * Splits a table's stored computed columns into those the store computes in
 * the insert statement itself (SQL-expressible, reading only data columns,
 * unable to fail, and not needed by an engine-computed column) and those the
 * engine computes before writing.
 */
const splitComputed = (store: Store["Service"], meta: Catalog.TableMeta) => {
  const stored = meta.columns.filter((c) => c.computed?.stored === true)
  // Media data columns may hold recorded errors, which SQL would not pass on to the columns computed from them.
  const data = new Set(meta.columns.filter((c) => c.computed === undefined && !Catalog.hasCell(c)).map((c) => c.id))
  const candidates = new Set(
    stored
      .filter((c) => {
        const node = Catalog.inlineUnstored(meta, c.computed!.expr)
        return (
          !Expr.canFail(node, Catalog.columnTypes(meta)) &&
          [...Expr.columnIds(node)].every((id) => data.has(id)) &&
          store.pushable(meta, node)
        )
      })
      .map((c) => c.id)
  )
  const neededByEngine = new Set<number>()
  for (const c of stored) {
    if (candidates.has(c.id)) continue
    for (const id of Expr.columnIds(Catalog.inlineUnstored(meta, c.computed!.expr))) neededByEngine.add(id)
  }
  return {
    inStore: stored.filter((c) => candidates.has(c.id) && !neededByEngine.has(c.id)),
    inEngine: stored.filter((c) => !candidates.has(c.id) || neededByEngine.has(c.id))
  }
}

export const columnNode = (c: Catalog.ColumnMeta): Expr.Node => ({ _tag: "Column", id: c.id, name: c.name })

/** The ids of the live rows matching a condition (evaluated in SQL where possible). */
export const matchingRowids = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  condition: Expr.Node | undefined
) {
  const node = condition === undefined ? undefined : Catalog.inlineUnstored(meta, condition)
  if (node === undefined || store.pushable(meta, node)) {
    const rows = yield* store.scanAll(meta, {
      where: node === undefined ? [] : [node],
      outputs: [],
      orderBy: [],
      withRowid: true
    })
    return rows.map((r) => r.$rowid as number)
  }
  const ids = Expr.columnIds(node)
  const columns = meta.columns.filter((c) => ids.has(c.id))
  const rows = yield* store.scanAll(meta, {
    where: [],
    outputs: columns.map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
    orderBy: [],
    withRowid: true,
    cells: columns.filter((c) => c.computed?.stored).map((c) => c.id)
  })
  const work = rows.map((r) => Stage.workRow(meta, r))
  const cells = yield* Compute.evaluateRows(meta, node, work)
  return rows.filter((_, i) => cells[i]!.state === "done" && cells[i]!.value === true).map((r) => r.$rowid as number)
})

/** Live row ids by key (the JSON of the key values), for the keys of `rows`. */
export const rowidsByKey = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  keyColumns: ReadonlyArray<Catalog.ColumnMeta>,
  rows: ReadonlyArray<Record<string, unknown> | ReadonlyMap<number, unknown>>
) {
  const valueOf = (row: Record<string, unknown> | ReadonlyMap<number, unknown>, c: Catalog.ColumnMeta) =>
    row instanceof Map ? row.get(c.id) : (row as Record<string, unknown>)[c.name]
  const out = new Map<string, number>()
  const CHUNK = 500
  for (let start = 0; start < rows.length; start += CHUNK) {
    const chunk = rows.slice(start, start + CHUNK)
    const condition = Expr.or(
      ...chunk.map((row) =>
        Expr.and(
          ...keyColumns.map(
            (c) =>
              new Expr.Expr<boolean | null>(
                { _tag: "Binary", op: "=", left: columnNode(c), right: Expr.lit(valueOf(row, c) ?? null, c.type).node },
                ColumnType.Bool
              )
          )
        )
      )
    )
    const found = yield* store.scanAll(meta, {
      where: [condition.node],
      outputs: keyColumns.map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
      orderBy: [],
      withRowid: true
    })
    for (const r of found) out.set(JSON.stringify(keyColumns.map((c) => r[`$c${c.id}`] ?? null)), r.$rowid as number)
  }
  return out
})

/** Refuses an insert whose primary keys repeat within it or match a live row. */
export const checkNewKeys = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  work: ReadonlyArray<Compute.WorkRow>
) {
  const keyColumns = meta.primaryKey!.map((id) => meta.columns.find((c) => c.id === id)!)
  const names = keyColumns.map((c) => c.name).join(",")
  const keyOf = (row: Compute.WorkRow) => JSON.stringify(keyColumns.map((c) => row.values.get(c.id) ?? null))
  const seen = new Map<string, number>()
  for (const [index, row] of work.entries()) {
    const key = keyOf(row)
    const first = seen.get(key)
    if (first !== undefined) {
      return yield* new ValidationError({
        table: meta.path,
        operation: "insert",
        row: index,
        column: names,
        message: `row ${index}: duplicate primary key ${key} (also in row ${first}); nothing was inserted`
      })
    }
    seen.set(key, index)
  }
  const existing = yield* rowidsByKey(
    store,
    meta,
    keyColumns,
    work.map((w) => w.values)
  )
  if (existing.size > 0) {
    const index = work.findIndex((w) => existing.has(keyOf(w)))
    return yield* new ValidationError({
      table: meta.path,
      operation: "insert",
      row: index,
      column: names,
      message: `row ${index}: a row with primary key ${keyOf(work[index]!)} already exists in ${meta.path}; nothing was inserted (use upsert to update it)`
    })
  }
})

/**
 * Works through a new column's pending cells with this process's worker (the
 * supervisor's, or one registered for the call), then waits for cells other
 * workers hold. Returns the error count and the first error, in row order.
 */
export const backfill = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  column: Catalog.ColumnMeta,
  onProgress: ((progress: Stage.Progress) => Effect.Effect<void>) | undefined
) {
  const supervisor = yield* Effect.serviceOption(Supervisor.Supervisor)
  const run = (worker: number) =>
    Stage.drain(meta, column, {
      worker,
      onProgress,
      afterWrite: (rowids) => maintainViews(store, meta, rowids)
    })
  // Until no cell is pending: cells other workers hold are waited for, and cells that
  // became pending after a pass (rows an insert with the older schema wrote meanwhile,
  // cells a stopped worker released) are drained by the next pass.
  const untilDone = (worker: number) =>
    Effect.gen(function* () {
      while (true) {
        yield* run(worker)
        const counts = (yield* store.cellCounts(meta)).find((c) => c.column === column.id)
        if (counts === undefined || counts.pending === 0) return
        yield* Effect.sleep("50 millis")
      }
    })
  yield* supervisor._tag === "Some"
    ? untilDone(supervisor.value.worker)
    : Effect.scoped(Effect.flatMap(store.registerWorker, untilDone))
  const failed = yield* store.scanAll(meta, {
    where: [
      {
        _tag: "Not",
        expr: { _tag: "IsNull", expr: { _tag: "ErrorProp", id: column.id, name: column.name, prop: "errorType" } }
      }
    ],
    outputs: [],
    orderBy: [],
    withRowid: true,
    cells: [column.id]
  })
  const first = failed[0]
  const cell = first?.[`$cell${column.id}`] as Cell | undefined
  return {
    errors: failed.length,
    firstError:
      first === undefined || cell === undefined
        ? undefined
        : { rowid: first.$rowid as number, type: cell.errorType ?? "Error", message: cell.errorMessage ?? "" }
  }
})

/**
 * Rewrites the live rows matching `condition` as a new version: applies the
 * assignments, recomputes `recompute`, keeps every other cell as it was.
 */
type Assignments = ReadonlyArray<{
  readonly column: Catalog.ColumnMeta
  readonly node: Expr.Node
  /** A view's copy of a base cell that failed: stored as null with this error (`node` is not used). */
  readonly error?: CellError | undefined
}>

export const rewrite = Effect.fnUntraced(function* (
  store: Store["Service"],
  meta: Catalog.TableMeta,
  target: ReadonlyArray<number>,
  assignmentsOf: (rowid: number) => Assignments,
  recompute: ReadonlyArray<Catalog.ColumnMeta>
) {
  const rowids = new Set(target)
  const stored = meta.columns.filter((c) => c.computed === undefined || c.computed.stored)
  const withCells = stored.filter(Catalog.hasCell).map((c) => c.id)
  const types = Catalog.columnTypes(meta)
  let total = { updated: 0, computed: 0, errors: 0 }
  if (rowids.size === 0) return { ...total, version: meta.version } satisfies UpdateResult
  const ids = [...rowids].sort((a, b) => a - b)
  const rows: Array<{ rowid: number; values: Array<unknown> }> = []
  for (let start = 0; start < ids.length; start += BATCH) {
    const chunk = ids.slice(start, start + BATCH)
    const raws = yield* store.scanAll(meta, {
      where: [],
      rowids: chunk,
      outputs: stored
        .filter((c) => c.computed === undefined && !Catalog.hasCell(c))
        .map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
      orderBy: [],
      withRowid: true,
      cells: withCells
    })
    const work = raws.map((r) => Stage.workRow(meta, r))
    const media: Array<MediaValue> = []
    for (const [i, row] of work.entries()) {
      const before = new Map(row.values)
      for (const a of assignmentsOf(raws[i]!.$rowid as number)) {
        if (a.error !== undefined) {
          row.values.set(a.column.id, null)
          row.errors.set(a.column.id, a.error)
          continue
        }
        const env: Evaluate.Env = {
          column: (id) => before.get(id) ?? null,
          error: () => null,
          call: () => null
        }
        let value: unknown
        try {
          value = Evaluate.evaluate(a.node, env, types)
        } catch (error) {
          return yield* new ValidationError({
            table: meta.path,
            operation: "update",
            row: raws[i]!.$rowid as number,
            column: a.column.name,
            message: `updating ${a.column.name} of row ${raws[i]!.$rowid}: ${error instanceof Error ? error.message : String(error)}`
          })
        }
        if (value === null || value === undefined) {
          if (!a.column.nullable) {
            return yield* new ValidationError({
              table: meta.path,
              operation: "update",
              row: raws[i]!.$rowid as number,
              column: a.column.name,
              message: `row ${raws[i]!.$rowid}: column ${a.column.name} of ${meta.path} is not nullable`
            })
          }
          row.values.set(a.column.id, null)
          row.errors.delete(a.column.id)
          continue
        }
        const reference = Media.isKind(a.column.type.kind) ? Media.referenceOf(value) : undefined
        if (reference !== undefined) {
          media.push({ row: raws[i]!.$rowid as number, column: a.column, value: reference })
          continue
        }
        const checked = ColumnType.validate(a.column.type, value)
        if (checked._tag === "Failure") {
          return yield* new ValidationError({
            table: meta.path,
            operation: "update",
            row: raws[i]!.$rowid as number,
            column: a.column.name,
            message: `row ${raws[i]!.$rowid}: column ${a.column.name} (${ColumnType.show(a.column.type)}) of ${meta.path}: ${checked.failure}`
          })
        }
        row.values.set(a.column.id, checked.success)
        row.errors.delete(a.column.id)
      }
    }
    const indexOf = new Map(raws.map((raw, i) => [raw.$rowid as number, i]))
    yield* prepareMedia(meta, "update", work, media, "abort", (rowid) => indexOf.get(rowid)!)
    const cells = yield* Compute.computeColumns(meta, recompute, work)
    const abort = Compute.firstAbort(meta, recompute, cells, (i) => raws[i]!.$rowid as number)
    if (abort !== undefined) return yield* abort
    for (const [i, raw] of raws.entries()) {
      rows.push({
        rowid: raw.$rowid as number,
        values: stored.map((c) => {
          if (c.computed === undefined) return dataValue(c, work[i]!)
          const recomputed = cells.get(c.id)
          if (recomputed !== undefined) return recomputed[i]!
          return (raw[`$cell${c.id}`] as Cell | undefined) ?? emptyCell(null)
        })
      })
    }
    for (const column of recompute) {
      const failed = cells.get(column.id)!.filter((c) => c.state === "error").length
      total = {
        ...total,
        computed: total.computed + raws.length - failed,
        errors: total.errors + failed
      }
    }
  }
  total = { ...total, updated: rows.length }
  const version = yield* store.transaction(
    Effect.gen(function* () {
      const version = yield* store.bumpVersion(meta, { updated: rows.length, errors: total.errors })
      for (let i = 0; i < rows.length; i += BATCH) {
        yield* store.replaceRows(meta, version, stored, rows.slice(i, i + BATCH))
      }
      yield* maintainViews(
        store,
        meta,
        rows.map((r) => r.rowid)
      )
      return version
    })
  )
  return { ...total, version } satisfies UpdateResult
})
