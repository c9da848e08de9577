import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Effect, Redacted } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodePath from "node:path"
import { Database } from "../src/index.ts"
import { Harness } from "../src/testing/index.ts"

const script = NodePath.join(import.meta.dirname, "fixtures", "concurrency.ts")

const run = (args: ReadonlyArray<string>, home: string) =>
  Effect.callback<void, Error>((resume) => {
    const child = NodeChildProcess.execFile(
      process.execPath,
      [script, ...args],
      { env: { ...process.env, TESSERA_HOME: home } },
      (error, _stdout, stderr) =>
        resume(error === null ? Effect.void : Effect.fail(new Error(`${error.message}\n${stderr}`)))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

Harness.forEachBackend(
  "Concurrent writers",
  (test) => {
    test(
      "two processes inserting while a third adds columns end consistent, with strictly increasing versions",
      () =>
        Effect.gen(function* () {
          const db = yield* Database.Database
          const url = Redacted.value(db.url!)
          const home = yield* Harness.tempDir()
          yield* Table.create("busy", { who: Column.String, n: Column.Int })
          yield* Effect.all(
            [run(["insert", url, "a"], home), run(["insert", url, "b"], home), run(["alter", url], home)],
            {
              concurrency: 3
            }
          )
          const t = yield* Table.get("busy")
          const rows = yield* t.collect()
          assert.strictEqual(rows.length, 1000)
          for (const who of ["a", "b"]) {
            const ns = rows.filter((r) => r.who === who).map((r) => r.n as number)
            assert.deepStrictEqual(
              [...ns].sort((x, y) => x - y),
              Array.from({ length: 500 }, (_, i) => i)
            )
          }
          // Every computed cell is right, whichever came first: the rows or the column.
          for (const row of rows) {
            for (let i = 0; i < 4; i++) assert.strictEqual(row[`double${i}`], (row.n as number) * 2)
          }
          const history = yield* t.history()
          const versions = history.map((v) => v.version)
          assert.deepStrictEqual(
            versions,
            Array.from({ length: versions.length }, (_, i) => versions.length - 1 - i),
            "versions are 0..N with no gap or repeat"
          )
          assert.strictEqual(versions.length, 1 + 40 + 8)
          assert.strictEqual(
            history.filter((v) => v.changeType === "data").reduce((sum, v) => sum + v.inserted, 0),
            1000
          )
        }),
      180_000
    )
  },
  { only: "server" }
)
