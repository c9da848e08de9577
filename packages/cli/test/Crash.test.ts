import { assert, describe, it } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { OpenAI } from "@tessera/providers"
import { FakeProvider } from "@tessera/providers/testing"
import { Database, Tessera } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import * as NodeChildProcess from "node:child_process"
import * as NodePath from "node:path"

const script = NodePath.join(import.meta.dirname, "fixtures", "crash.ts")

/** Starts the backfill in a child process and SIGKILLs it once the provider has seen `after` requests. */
const startAndKill = (target: string, fake: FakeProvider.FakeProvider, home: string, after: number) =>
  Effect.callback<{ readonly signal: string | null; readonly output: string }>((resume) => {
    const child = NodeChildProcess.spawn(process.execPath, [script, "start", target, fake.url], {
      env: { ...process.env, TESSERA_HOME: home },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (d) => (output += String(d)))
    child.stderr.on("data", (d) => (output += String(d)))
    const timer = setInterval(() => {
      if (fake.stats.total >= after) child.kill("SIGKILL")
    }, 5)
    child.on("exit", (_, signal) => {
      clearInterval(timer)
      resume(Effect.succeed({ signal, output }))
    })
    return Effect.sync(() => {
      clearInterval(timer)
      child.kill("SIGKILL")
    })
  })

/** Runs the resume step in a new process (asynchronously: the fake provider lives in this one). */
const resumeIn = (target: string, fake: FakeProvider.FakeProvider, home: string) =>
  Effect.callback<any, Error>((resume) => {
    const child = NodeChildProcess.execFile(
      process.execPath,
      [script, "resume", target, fake.url],
      { env: { ...process.env, TESSERA_HOME: home }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resume(
          error === null ? Effect.succeed(JSON.parse(stdout)) : Effect.fail(new Error(`${error.message}\n${stderr}`))
        )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A fresh database on the test server, dropped afterwards. */
const serverDatabase = (url: string) =>
  Effect.gen(function* () {
    const admin = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 }).pipe(
      Effect.provide(Reactivity.layer),
      Effect.orDie
    )
    const name = `tessera_crash_${process.pid}_${Date.now().toString(36)}`
    yield* Effect.acquireRelease(admin.unsafe(`CREATE DATABASE ${name}`), () =>
      admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
    ).pipe(Effect.orDie)
    const target = new URL(url)
    target.pathname = `/${name}`
    return target.toString()
  })

const backends: ReadonlyArray<"embedded" | "server"> =
  Harness.serverUrl() === undefined ? ["embedded"] : ["embedded", "server"]

describe("crash safety", () => {
  for (const backend of backends) {
    it.live(
      `a backfill killed with SIGKILL is finished by a new process, each cell once [${backend}]`,
      () =>
        Effect.gen(function* () {
          const fake = yield* FakeProvider.make({ latency: 15 })
          const home = yield* Harness.tempDir()
          const target = backend === "server" ? yield* serverDatabase(Harness.serverUrl()!) : home
          const killed = yield* startAndKill(target, fake, home, 120)
          assert.strictEqual(killed.signal, "SIGKILL", killed.output)
          assert.include(killed.output, "inserted")
          const atKill = fake.stats.total
          assert.isBelow(atKill, 500)

          const result = yield* resumeIn(target, fake, home)
          // Some cells were done before the kill, and the new process finished the rest.
          assert.isAbove(result.before.done, 0)
          assert.isAbove(result.before.pending, 0)
          assert.deepInclude(result.after, { pending: 0, done: 500, error: 0 })
          // No row lost or duplicated, every answer the provider's answer to that row.
          assert.strictEqual(result.rows.length, 500)
          const ns = new Set(result.rows.map((r: { n: number }) => r.n))
          assert.strictEqual(ns.size, 500)
          for (const row of result.rows) {
            assert.strictEqual(row.answer, `echo: question ${row.n}`)
            assert.isNull(row.error)
          }
          // Only the calls in flight at the kill (at most the column's concurrency, 4) were repeated.
          assert.isAtMost(fake.stats.total, 500 + 4)
          assert.isAtLeast(fake.stats.total, 500)
        }),
      180_000
    )
  }
})

describe("several workers", () => {
  it.live.skipIf(Harness.serverUrl() === undefined)(
    "two processes working the same backlog of 1,000 pending cells compute each cell once [server]",
    () =>
      Effect.gen(function* () {
        const fake = yield* FakeProvider.make({ latency: 5 })
        const home = yield* Harness.tempDir()
        const target = yield* serverDatabase(Harness.serverUrl()!)
        const answer = OpenAI.chat({ model: "gpt-test", baseURL: `${fake.url}/v1`, apiKey: "sk-test", concurrency: 4 })
        yield* Effect.gen(function* () {
          const t = yield* Table.create("jobs", { n: Column.Int, text: Column.String })
          yield* t.insert(Array.from({ length: 1000 }, (_, n) => ({ n, text: `question ${n}` })))
          yield* t.addComputedColumn("answer", answer({ prompt: t.c.text }), { onError: "record", wait: false })
        }).pipe(Effect.provide(Tessera.layerOn(Database.layerServer({ url: Redacted.make(target), home }))))
        assert.strictEqual(fake.stats.total, 0)
        const [a, b] = yield* Effect.all([resumeIn(target, fake, home), resumeIn(target, fake, home)], {
          concurrency: 2
        })
        for (const result of [a, b]) assert.deepInclude(result.after, { pending: 0, done: 1000, error: 0 })
        assert.strictEqual(fake.stats.total, 1000, "each cell was computed by exactly one of the workers")
        const asked = new Set(fake.requests.map((r) => r.text))
        assert.strictEqual(asked.size, 1000)
      }),
    180_000
  )
})
