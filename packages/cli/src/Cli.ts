/**
 * Cli: the `tessera` command.
 *
 * - `tessera serve`: daemon mode: runs the supervisor until interrupted,
 *   computing every pending cell of every table (including rows other
 *   processes wrote without waiting) and following catalog changes live.
 *   `--import` loads the modules that define the functions computed columns
 *   call (a column whose function is not loaded stays paused).
 * - `tessera status`: every stage with its pending / in-flight / done / error
 *   counts, the last error, and why a stage is paused.
 * - `tessera ls`: the tables.
 */
import { Pool, ResultCache, Stage, Supervisor, Table } from "@tessera/core"
import { Tessera } from "@tessera/sql"
import { Console, Duration, Effect, Layer, Schedule } from "effect"
import { Command, Flag } from "effect/cli"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"

const imports = Flag.String("import").pipe(
  Flag.withAlias("i"),
  Flag.withDescription("A module defining functions that computed columns call (repeatable)"),
  Flag.atLeast(0)
)

const loadModules = (modules: ReadonlyArray<string>) =>
  Effect.forEach(
    modules,
    (module) =>
      Effect.tryPromise({
        try: () => import(NodeUrl.pathToFileURL(NodePath.resolve(module)).href),
        catch: (cause) => new Error(`could not import ${module}: ${String(cause)}`)
      }),
    { discard: true }
  )

const formatStatus = (rows: ReadonlyArray<Stage.Status>): string => {
  if (rows.length === 0) return "no computed columns"
  const lines = rows.map((s) => {
    const base = `${s.table}.${s.column}  ${s.state.padEnd(7)} pending=${s.pending} in-flight=${s.inFlight} done=${s.done} error=${s.error}`
    const error = s.lastError === undefined ? "" : `  last error: ${s.lastError.type}: ${s.lastError.message}`
    const reason = s.reason === undefined ? "" : `  (${s.reason})`
    return base + error + reason
  })
  return lines.join("\n")
}

const serve = Command.make(
  "serve",
  {
    imports,
    poll: Flag.Int("poll").pipe(
      Flag.withDescription("Milliseconds between looks for work nobody announced"),
      Flag.withDefault(1000)
    ),
    report: Flag.Int("report").pipe(
      Flag.withDescription("Seconds between status reports (0: none)"),
      Flag.withDefault(30)
    )
  },
  Effect.fn(function* ({ imports, poll, report }) {
    yield* loadModules(imports)
    const program = Effect.gen(function* () {
      const supervisor = yield* Supervisor.Supervisor
      yield* Console.log(`tessera serve: worker ${supervisor.worker} computing pending cells (Ctrl-C to stop)`)
      if (report > 0) {
        const cache = yield* ResultCache.ResultCache
        yield* Effect.gen(function* () {
          const rows = yield* supervisor.status
          const hits = yield* cache.stats
          const pools = yield* Pool.stats
          yield* Console.log(formatStatus(rows))
          yield* Console.log(`result cache: ${hits.hits} hits, ${hits.misses} misses, ${hits.writes} writes`)
          for (const p of pools) {
            yield* Console.log(
              `pool ${p.name}: ${p.requests} requests, ${p.inFlight} in flight (max ${p.maxInFlight}), ${p.backoffs} backoffs${p.limitRequests === undefined ? "" : `, limit ${p.limitRequests} requests/min`}`
            )
          }
        }).pipe(Effect.repeat({ schedule: Schedule.spaced(Duration.seconds(report)) }), Effect.forkScoped)
      }
      return yield* Effect.never
    })
    yield* Effect.scoped(program).pipe(
      Effect.provide(
        Supervisor.layer({ pollInterval: Duration.millis(poll) }).pipe(Layer.provideMerge(Tessera.layerStore))
      )
    )
  })
).pipe(Command.withDescription("Compute pending cells until stopped (daemon mode)"))

const status = Command.make(
  "status",
  { imports, json: Flag.Boolean("json").pipe(Flag.withDefault(false)) },
  Effect.fn(function* ({ imports, json }) {
    yield* loadModules(imports)
    const rows = yield* Stage.status.pipe(Effect.provide(Tessera.layerStore))
    yield* Console.log(json ? JSON.stringify(rows, null, 2) : formatStatus(rows))
  })
).pipe(Command.withDescription("Show every computed column's cell counts and state"))

const ls = Command.make(
  "ls",
  {},
  Effect.fn(function* () {
    const tables = yield* Table.list().pipe(Effect.provide(Tessera.layerStore))
    yield* Console.log(tables.length === 0 ? "no tables" : tables.join("\n"))
  })
).pipe(Command.withDescription("List the tables"))

export const tessera = Command.make("tessera").pipe(
  Command.withDescription("Tessera: a declarative, incremental, multimodal AI data engine"),
  Command.withSubcommands([serve, status, ls])
)
