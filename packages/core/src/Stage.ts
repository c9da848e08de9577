/**
 * Stage: one stored computed column as a durable stream of work.
 *
 * A stage claims pending cells whose inputs are ready (in batches, through
 * the store's indexed claim, which skips cells another live worker holds),
 * evaluates them with the column's functions (their concurrency, pools and
 * retry schedules), and writes each invocation's results back before taking
 * more work. What is written is done; what is claimed but not written stays
 * pending: after a crash or an interruption nothing is half-written, and only
 * the calls that were in flight can be repeated.
 */
import { Clock, Deferred, Effect, Queue, Semaphore, Stream } from "effect"
import * as Catalog from "./Catalog.ts"
import * as Compute from "./Compute.ts"
import * as Expr from "./Expr.ts"
import * as Fn from "./Fn.ts"
import * as Media from "./Media.ts"
import { type Cell, type ScanSpec, Store, type StoreError } from "./Store.ts"

const columnNode = (c: Catalog.ColumnMeta): Expr.Node => ({ _tag: "Column", id: c.id, name: c.name })

/** What a stage reads for each row: the data columns and the stored cells its expression uses. */
export const inputsOf = (table: Catalog.TableMeta, columns: ReadonlyArray<Catalog.ColumnMeta>): ScanSpec => {
  const reads = new Set<number>()
  for (const column of columns) {
    for (const id of Expr.columnIds(Catalog.inlineUnstored(table, column.computed!.expr))) reads.add(id)
  }
  const inputs = table.columns.filter((c) => reads.has(c.id))
  return {
    where: [],
    outputs: inputs
      .filter((c) => c.computed === undefined && !Catalog.hasCell(c))
      .map((c) => ({ key: `$c${c.id}`, node: columnNode(c) })),
    orderBy: [],
    // Cells carry their errors (a media value that failed its check too): dependents fail alike.
    cells: inputs.filter(Catalog.hasCell).map((c) => c.id)
  }
}

/** A row as the store returned it, as the engine computes over it. */
export const workRow = (table: Catalog.TableMeta, raw: Record<string, unknown>): Compute.WorkRow => {
  const values = new Map<number, unknown>()
  const errors = new Map<number, { type: string; message: string }>()
  for (const column of table.columns) {
    const cell = raw[`$cell${column.id}`] as Cell | undefined
    if (cell !== undefined) {
      values.set(column.id, cell.value)
      if (cell.state === "error") {
        errors.set(column.id, { type: cell.errorType ?? "Error", message: cell.errorMessage ?? "" })
      }
    } else if (`$c${column.id}` in raw) values.set(column.id, raw[`$c${column.id}`])
  }
  return { values, errors }
}

/** How a column's work is cut: rows per invocation, invocations at once, rows per claim. */
export const shapeOf = (table: Catalog.TableMeta, column: Catalog.ColumnMeta) => {
  const calls = Expr.calls(Catalog.inlineUnstored(table, column.computed!.expr))
  const definitions = calls.map((c) => Fn.lookup(c.fn, c.version)).filter((d) => d !== undefined)
  // Calls with effects outside the process (model calls) are written one invocation at a
  // time, so a crash repeats at most the calls in flight; the rest are written in bulk.
  const external = definitions.filter((d) => d.kind !== "plain")
  if (external.length === 0) return { rows: 1000, parallel: 1, claim: 1000 }
  const rows = Math.max(...external.map((d) => d.batchSize))
  const parallel = Math.max(...external.map((d) => d.concurrency))
  return { rows, parallel, claim: Math.min(1000, Math.max(rows * parallel * 2, 8)) }
}

export interface Progress {
  readonly table: string
  readonly column: string
  /** Cells this drain computed so far. */
  readonly done: number
  /** Of which failed. */
  readonly errors: number
  readonly elapsedMs: number
  /** Cells per second so far. */
  readonly rate: number
}

export interface DrainOptions {
  readonly worker: number
  /** Only these rows (an insert's own). */
  readonly rowids?: ReadonlyArray<number> | undefined
  /** Called after each written batch. */
  readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
  /** Called with the rows whose cells were just written (views made from the table follow them). */
  readonly afterWrite?: ((rowids: ReadonlyArray<number>) => Effect.Effect<void, unknown, Store>) | undefined
}

/** A drain of a column's pending cells: how many cells it wrote, and how many of those failed. */
type Drain = (
  table: Catalog.TableMeta,
  column: Catalog.ColumnMeta,
  options: DrainOptions
) => Effect.Effect<{ readonly done: number; readonly errors: number }, StoreError | Compute.UnknownFunctionError, Store>

// One drain of a column at a time in this process (a library backfill and the
// supervisor's stage would otherwise both work it): the column's concurrency
// then bounds the calls a crash can repeat, those in flight or not yet written.
// Keyed by store too: two databases in one process have unrelated columns of the same ids.
const drains = new WeakMap<object, Map<string, Semaphore.Semaphore>>()
const drainLock = (store: object, table: Catalog.TableMeta, column: Catalog.ColumnMeta): Semaphore.Semaphore => {
  let locks = drains.get(store)
  if (locks === undefined) {
    locks = new Map()
    drains.set(store, locks)
  }
  const key = `${table.id}/${column.id}`
  let lock = locks.get(key)
  if (lock === undefined) {
    lock = Semaphore.makeUnsafe(1)
    locks.set(key, lock)
  }
  return lock
}

/**
 * Computes the column's pending cells until none can be claimed (cells held
 * by other workers, or whose inputs are not ready, are left). Claims run ahead
 * of the work in flight; results are written by one writer that commits
 * whatever has finished together, and an invocation counts as done only once
 * its results are written. A second drain of the same column in this process
 * waits for the first. Returns how many cells it wrote.
 */
export const drain: Drain = (table, column, options) =>
  Effect.flatMap(Effect.service(Store), (store) =>
    drainLock(store, table, column).withPermits(1)(drainAlone(table, column, options))
  )

const drainAlone: Drain = (table, column, options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const store = yield* Store
      yield* Compute.checkFunctions(table, [column])
      const inputs = inputsOf(table, [column])
      const shape = shapeOf(table, column)
      const started = yield* Clock.currentTimeMillis
      let done = 0
      let errors = 0
      // Claimed and not yet written: released (left pending) if the drain stops early.
      const held = new Set<number>()
      yield* Effect.addFinalizer(() =>
        held.size === 0 ? Effect.void : store.release(table, column, options.worker, [...held]).pipe(Effect.ignore)
      )

      // Group commit: one writer, each batch waits for its results to be written.
      type Write = {
        readonly cells: ReadonlyArray<{ readonly rowid: number; readonly cell: Cell }>
        readonly written: Deferred.Deferred<void, StoreError>
      }
      const writes = yield* Queue.unbounded<Write>()
      yield* Effect.gen(function* () {
        while (true) {
          const batch = yield* Queue.takeAll(writes)
          const exit = yield* Effect.exit(
            store.complete(
              table,
              column,
              options.worker,
              batch.flatMap((w) => w.cells)
            )
          )
          if (exit._tag === "Success" && options.afterWrite !== undefined) {
            yield* options
              .afterWrite(batch.flatMap((w) => w.cells.map((c) => c.rowid)))
              .pipe(
                Effect.catchCause((cause) =>
                  Effect.logWarning(`Tessera: views of ${table.path} did not follow written cells`, cause)
                )
              )
          }
          for (const w of batch) {
            if (exit._tag === "Success") for (const c of w.cells) held.delete(c.rowid)
            yield* Deferred.done(w.written, exit)
          }
        }
      }).pipe(Effect.forkScoped)

      const claims = Stream.fromEffectRepeat(
        store.claim(table, column, inputs, { worker: options.worker, limit: shape.claim, rowids: options.rowids })
      ).pipe(
        Stream.takeWhile((rows) => rows.length > 0),
        Stream.tap((rows) =>
          Effect.sync(() => {
            for (const r of rows) held.add(r.$rowid as number)
          })
        ),
        Stream.flatMap((rows) => {
          const batches: Array<ReadonlyArray<Record<string, unknown>>> = []
          for (let i = 0; i < rows.length; i += shape.rows) batches.push(rows.slice(i, i + shape.rows))
          return Stream.fromIterable(batches)
        })
      )

      yield* claims.pipe(
        Stream.mapEffect(
          (batch) =>
            // The media files a batch makes stay pinned until its cells are written.
            Effect.gen(function* () {
              const work = batch.map((raw) => workRow(table, raw))
              const cells = (yield* Compute.computeColumns(table, [column], work)).get(column.id)!
              const written = yield* Deferred.make<void, StoreError>()
              yield* Queue.offer(writes, {
                cells: cells.map((cell, i) => ({ rowid: batch[i]!.$rowid as number, cell })),
                written
              })
              yield* Deferred.await(written)
              done += cells.length
              errors += cells.filter((c) => c.state === "error").length
              if (options.onProgress !== undefined) {
                const elapsedMs = (yield* Clock.currentTimeMillis) - started
                yield* options.onProgress({
                  table: table.path,
                  column: column.name,
                  done,
                  errors,
                  elapsedMs,
                  rate: elapsedMs > 0 ? (done * 1000) / elapsedMs : 0
                })
              }
            }).pipe(Media.track),
          { concurrency: shape.parallel, unordered: true }
        ),
        Stream.runDrain
      )
      return { done, errors }
    })
  )

/** The state of one stage as `status` reports it. */
export interface Status {
  readonly table: string
  readonly column: string
  readonly state: "running" | "idle" | "paused"
  /** Why a paused stage does not run (e.g. an unknown function). */
  readonly reason: string | undefined
  readonly pending: number
  readonly inFlight: number
  readonly done: number
  readonly error: number
  readonly lastError: { readonly type: string; readonly message: string } | undefined
}

/**
 * The state of every stored computed column from the catalog and the store
 * (no supervisor needed): a column with cells held by a live worker is
 * running; one whose functions this process lacks is paused.
 */
export const status: Effect.Effect<ReadonlyArray<Status>, StoreError | Catalog.CatalogError, Store> = Effect.gen(
  function* () {
    const store = yield* Store
    const out: Array<Status> = []
    for (const path of yield* store.listTables("", true)) {
      const table = yield* store.getTable(path)
      const counts = yield* store.cellCounts(table)
      for (const column of table.columns) {
        if (!column.computed?.stored) continue
        const c = counts.find((x) => x.column === column.id)
        const missing = Catalog.missingFunctions(column)
        out.push({
          table: path,
          column: column.name,
          state: missing.length > 0 ? "paused" : (c?.claimed ?? 0) > 0 ? "running" : "idle",
          reason: missing.length > 0 ? `unknown function ${missing.join(", ")}` : undefined,
          pending: c?.pending ?? 0,
          inFlight: c?.claimed ?? 0,
          done: c?.done ?? 0,
          error: c?.error ?? 0,
          lastError: c?.lastError
        })
      }
    }
    return out
  }
)

/** Progress of a column's backlog as a stream: sampled every `everyMs` until nothing is pending. */
export const progress = (
  table: Catalog.TableMeta,
  column: Catalog.ColumnMeta,
  everyMs = 500
): Stream.Stream<
  { readonly done: number; readonly total: number; readonly errors: number; readonly rate: number },
  StoreError,
  Store
> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const store = yield* Store
      const started = yield* Clock.currentTimeMillis
      let first: number | undefined
      const sample = Effect.zipWith(store.cellCounts(table), Clock.currentTimeMillis, (counts, now) => {
        const c = counts.find((x) => x.column === column.id)
        const total = c === undefined ? 0 : c.pending + c.done + c.error
        const finished = c === undefined ? 0 : c.done + c.error
        first ??= finished
        const elapsed = (now - started) / 1000
        return {
          done: finished,
          total,
          errors: c?.error ?? 0,
          rate: elapsed > 0 ? (finished - first) / elapsed : 0
        }
      })
      return Stream.fromEffect(sample).pipe(
        Stream.concat(Stream.fromEffectRepeat(Effect.delay(sample, `${everyMs} millis`))),
        Stream.takeUntil((p) => p.done >= p.total)
      )
    })
  )
