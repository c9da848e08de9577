/**
 * Supervisor: runs one stage fiber per stored computed column of every table,
 * and keeps that set equal to what the catalog says.
 *
 * Stages live in a `FiberMap` keyed by a hash of their definition. On every
 * catalog change (in-process, or from other processes through the store's
 * change feed; and on a slow poll as a safety net) the supervisor reconciles:
 * a new column starts its stage, which backfills it; a dropped one is
 * interrupted and writes nothing more; a redefined one restarts. Each stage
 * drains its pending cells, then waits for new rows or the next poll.
 *
 * The same layer is library mode (in an application's process) and daemon
 * mode (`tessera serve`): only the process around it differs.
 */
import { Clock, Context, Duration, Effect, FiberMap, Layer, Schedule, Stream } from "effect"
import type * as Catalog from "./Catalog.ts"
import type * as Compute from "./Compute.ts"
import * as Expr from "./Expr.ts"
import * as Stage from "./Stage.ts"
import { Store, type StoreError } from "./Store.ts"
import * as Table from "./Table.ts"

export interface Options {
  /** How often idle stages look for work nobody announced (default 1 s). */
  readonly pollInterval?: Duration.Input | undefined
  /** How often the catalog is re-read without a change event (default 5 s). */
  readonly reconcileInterval?: Duration.Input | undefined
}

export class Supervisor extends Context.Service<
  Supervisor,
  {
    /** This process's worker id. */
    readonly worker: number
    /** Every stage with its cell counts and state. */
    readonly status: Effect.Effect<ReadonlyArray<Stage.Status>, StoreError>
    /** Re-reads the catalog now and starts or stops stages to match it. */
    readonly reconcile: Effect.Effect<void>
  }
>()("@tessera/core/Supervisor") {}

interface Running {
  readonly tableId: number
  readonly path: string
  readonly columnId: number
  readonly column: string
  state: "running" | "idle" | "paused"
  reason: string | undefined
}

/** The key of a stage: a new definition of the same column is a new stage. */
const stageKey = (table: Catalog.TableMeta, column: Catalog.ColumnMeta): string => {
  const text = JSON.stringify([table.id, column.id, Expr.encode(column.computed!.expr), column.computed!.onError])
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return `${table.id}:${column.id}:${hash.toString(16)}`
}

export const make = (options?: Options) =>
  Effect.gen(function* () {
    const store = yield* Store
    const worker = yield* store.registerWorker
    const fibers = yield* FiberMap.make<string, void, never>()
    const stages = new Map<string, Running>()
    const pollMs = Duration.toMillis(Duration.fromInputUnsafe(options?.pollInterval ?? "1 second"))
    const reconcileEvery = options?.reconcileInterval ?? "5 seconds"
    // Bumped on every change event of a table, so idle stages notice new rows.
    const generations = new Map<number, number>()

    const stageLoop = (key: string, running: Running): Effect.Effect<void, never, Store> =>
      Effect.gen(function* () {
        while (true) {
          const generation = generations.get(running.tableId) ?? 0
          const meta = yield* store.getTable(running.path).pipe(Effect.option)
          const column =
            meta._tag === "Some" && meta.value.id === running.tableId
              ? meta.value.columns.find((c) => c.id === running.columnId)
              : undefined
          if (meta._tag === "None" || column === undefined) {
            // Dropped: the next reconcile removes this stage.
            running.state = "paused"
            running.reason = "dropped"
            yield* Effect.sleep(pollMs)
            continue
          }
          running.state = "running"
          const table = meta.value
          const result = yield* Stage.drain(table, column, {
            worker,
            afterWrite: (rowids) => Table.maintainViews(store, table, rowids)
          }).pipe(
            Effect.map((r) => r.done),
            Effect.catchTag("UnknownFunctionError", (error: Compute.UnknownFunctionError) =>
              Effect.sync(() => {
                running.state = "paused"
                running.reason = error.message
                return -1
              })
            ),
            Effect.catchTag("StoreError", (error) =>
              Effect.logWarning(`Tessera: stage ${running.path}.${running.column} failed, retrying`, error).pipe(
                Effect.as(0)
              )
            )
          )
          if (result > 0) continue
          if (result === 0) {
            running.state = "idle"
            running.reason = undefined
          }
          // Wait for a change to this table, or the poll interval.
          const deadline = (yield* Clock.currentTimeMillis) + (result < 0 ? pollMs * 5 : pollMs)
          while (
            (yield* Clock.currentTimeMillis) < deadline &&
            (generations.get(running.tableId) ?? 0) === generation
          ) {
            yield* Effect.sleep(Math.min(50, pollMs))
          }
        }
      }).pipe(Effect.ensuring(Effect.sync(() => stages.delete(key))))

    const desired = Effect.gen(function* () {
      const out = new Map<string, { readonly table: Catalog.TableMeta; readonly column: Catalog.ColumnMeta }>()
      const paths = yield* store.listTables("", true)
      for (const path of paths) {
        const table = yield* store.getTable(path).pipe(Effect.option)
        if (table._tag === "None") continue
        for (const column of table.value.columns) {
          if (column.computed?.stored) out.set(stageKey(table.value, column), { table: table.value, column })
        }
      }
      return out
    })

    const reconcile = Effect.gen(function* () {
      const want = yield* desired
      for (const key of [...stages.keys()]) {
        if (!want.has(key)) {
          stages.delete(key)
          yield* FiberMap.remove(fibers, key)
        }
      }
      for (const [key, { table, column }] of want) {
        if (stages.has(key)) continue
        const running: Running = {
          tableId: table.id,
          path: table.path,
          columnId: column.id,
          column: column.name,
          state: "running",
          reason: undefined
        }
        stages.set(key, running)
        yield* FiberMap.run(fibers, key, stageLoop(key, running).pipe(Effect.provideService(Store, store)))
      }
    }).pipe(
      Effect.catchCause((cause) => Effect.logWarning("Tessera: could not reconcile the stages", cause)),
      Effect.withSpan("Supervisor.reconcile")
    )

    // Change events wake stages (rows) and reconcile (schema).
    yield* store.changes.pipe(
      Stream.runForEach((event) =>
        Effect.gen(function* () {
          generations.set(event.table, (generations.get(event.table) ?? 0) + 1)
          if (event.kind === "schema") yield* reconcile
        })
      ),
      Effect.forkScoped
    )
    yield* reconcile.pipe(Effect.repeat({ schedule: Schedule.spaced(reconcileEvery) }), Effect.forkScoped)

    const status = Effect.gen(function* () {
      const out: Array<Stage.Status> = []
      const byTable = new Map<number, Array<Running>>()
      for (const running of stages.values()) {
        const list = byTable.get(running.tableId) ?? []
        list.push(running)
        byTable.set(running.tableId, list)
      }
      for (const [, list] of byTable) {
        const meta = yield* store.getTable(list[0]!.path).pipe(Effect.option)
        if (meta._tag === "None") continue
        const counts = yield* store.cellCounts(meta.value)
        for (const running of list) {
          const c = counts.find((x) => x.column === running.columnId)
          out.push({
            table: running.path,
            column: running.column,
            state: running.state,
            reason: running.reason,
            pending: c?.pending ?? 0,
            inFlight: c?.claimed ?? 0,
            done: c?.done ?? 0,
            error: c?.error ?? 0,
            lastError: c?.lastError
          })
        }
      }
      return out.sort((a, b) => (a.table + a.column < b.table + b.column ? -1 : 1))
    })

    return Supervisor.of({ worker, status, reconcile })
  })

/** Runs the supervisor for the layer's lifetime (library mode, or a daemon's whole life). */
export const layer = (options?: Options): Layer.Layer<Supervisor, StoreError, Store> =>
  Layer.effect(Supervisor, make(options))
