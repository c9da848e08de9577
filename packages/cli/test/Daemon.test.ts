import { assert, describe } from "@effect/vitest"
import { Column, Store, Table } from "@tessera/core"
import { Database } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { Effect, Redacted } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodePath from "node:path"
import { label, tenfold } from "./fixtures/functions.ts"

const bin = NodePath.join(import.meta.dirname, "..", "src", "bin.ts")
const functions = NodePath.join(import.meta.dirname, "fixtures", "functions.ts")

/** Runs `tessera serve` against the test's database until the scope closes (then Ctrl-C). */
const daemon = (url: string, home: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = NodeChildProcess.spawn(
        process.execPath,
        [bin, "serve", "--import", functions, "--poll", "100", "--report", "0"],
        { env: { ...process.env, TESSERA_DATABASE_URL: url, TESSERA_HOME: home }, stdio: ["ignore", "pipe", "pipe"] }
      )
      const output: Array<string> = []
      child.stdout.on("data", (d) => output.push(String(d)))
      child.stderr.on("data", (d) => output.push(String(d)))
      return { child, output }
    }),
    ({ child }) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve()
            child.once("exit", () => resolve())
            child.kill("SIGINT")
          })
      )
  )

const counts = (t: Table.Table<any>, column: string) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    const meta = yield* t.load
    const id = meta.columns.find((c) => c.name === column)!.id
    return (yield* store.cellCounts(meta)).find((c) => c.column === id)!
  })

const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, what: string, timeoutMs = 60_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("100 millis")
    }
  })

describe("tessera serve", () => {
  Harness.forEachBackend(
    "daemon mode",
    (test) => {
      test(
        "computes rows other processes wrote without waiting, and backfills a column added while it runs",
        () =>
          Effect.gen(function* () {
            const db = yield* Database.Database
            const home = yield* Harness.tempDir()
            const t = yield* Table.create("inbox", { x: Column.Int })
            const t2 = yield* t.addComputedColumn("y", tenfold({ x: t.c.x }), { wait: false })
            yield* t2.insert(
              Array.from({ length: 50 }, (_, i) => ({ x: i })),
              { wait: false }
            )
            assert.strictEqual((yield* counts(t2, "y")).pending, 50)
            const { output } = yield* daemon(Redacted.value(db.url!), home)
            yield* eventually(
              Effect.map(counts(t2, "y"), (c) => c.done === 50),
              "the daemon to compute y"
            )
            // A row written now, while the daemon runs.
            yield* t2.insert([{ x: 1000 }], { wait: false })
            yield* eventually(
              Effect.map(counts(t2, "y"), (c) => c.done === 51),
              "the new row"
            )
            // A column added while the daemon runs is backfilled without a restart.
            const t3 = yield* t2.addComputedColumn("tag", label({ x: t2.c.x }), { wait: false })
            yield* eventually(
              Effect.map(counts(t3, "tag"), (c) => c.done === 51),
              "the daemon to backfill tag"
            )
            const rows = yield* t3.orderBy("x").collect()
            assert.deepStrictEqual(rows[3], { x: 3, y: 30, tag: "#3" })
            assert.deepStrictEqual(rows.at(-1), { x: 1000, y: 10000, tag: "#1000" })
            assert.include(output.join(""), "computing pending cells")
          }),
        120_000
      )
    },
    { only: "server" }
  )
})
