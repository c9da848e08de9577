import { assert } from "@effect/vitest"
import { Column, Fn, ResultCache, Stage, Store, Supervisor, Table } from "@tessera/core"
import { Effect, Fiber, Stream } from "effect"
import { Harness } from "../src/testing/index.ts"

let unique = 0
const name = (base: string) => `${base}_${process.pid}_${unique++}`

/** An effectful function with a latency that counts its calls and tracks how many run at once. */
const slow = (options: {
  readonly latencyMs: number
  readonly concurrency?: number
  readonly fail?: (x: number) => boolean
}) => {
  const stats = { calls: 0, inFlight: 0, maxInFlight: 0 }
  const fn = Fn.effect({
    name: name("slow"),
    params: { x: Column.Int },
    returns: Column.Int,
    concurrency: options.concurrency ?? 8,
    run: ({ x }) =>
      Effect.gen(function* () {
        stats.calls++
        stats.inFlight++
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight)
        yield* Effect.sleep(options.latencyMs).pipe(Effect.ensuring(Effect.sync(() => stats.inFlight--)))
        if (options.fail?.(x)) {
          return yield* new Fn.FunctionError({ fn: "slow", errorType: "Nope", message: `no ${x}` })
        }
        return x * 10
      })
  })
  return { fn, stats }
}

/** Polls until `check` holds (or fails after `timeoutMs`). */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs = 20_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error("condition not reached in time"))
      yield* Effect.sleep("50 millis")
    }
  })

const pendingOf = (t: Table.Table<any>, column: string) =>
  Effect.gen(function* () {
    const store = yield* Store.Store
    const meta = yield* t.load
    const id = meta.columns.find((c) => c.name === column)!.id
    return (yield* store.cellCounts(meta)).find((c) => c.column === id)!
  })

Harness.forEachBackend("Durable execution", (test) => {
  const withSupervisor = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(Effect.provide(Supervisor.layer({ pollInterval: "100 millis", reconcileInterval: "300 millis" })))

  test("library mode: insert without waiting, the supervisor computes the rows; hot add and drop of columns", () =>
    withSupervisor(
      Effect.gen(function* () {
        const { fn, stats } = slow({ latencyMs: 5 })
        const t = yield* Table.create("live", { x: Column.Int })
        const t2 = yield* t.addComputedColumn("y", fn({ x: t.c.x }), { onError: "record" })
        const result = yield* t2.insert(
          Array.from({ length: 30 }, (_, i) => ({ x: i })),
          { wait: false }
        )
        assert.strictEqual(result.pending, 30)
        assert.strictEqual(result.computed, 0)
        yield* eventually(Effect.map(pendingOf(t2, "y"), (c) => c.pending === 0))
        assert.strictEqual(stats.calls, 30)
        const rows = yield* t2.collect()
        assert.isTrue(rows.every((r) => r.y === r.x * 10))

        // A column added while the supervisor runs is backfilled by it.
        const other = slow({ latencyMs: 5 })
        const t3 = yield* t2.addComputedColumn("z", other.fn({ x: t2.c.x }), { wait: false })
        yield* eventually(Effect.map(pendingOf(t3, "z"), (c) => c.pending === 0 && c.done === 30))
        assert.strictEqual(other.stats.calls, 30)

        const supervisor = yield* Supervisor.Supervisor
        const status = yield* supervisor.status
        assert.deepStrictEqual(
          status.map((s) => [s.table, s.column, s.pending, s.done, s.error]),
          [
            ["live", "y", 0, 30, 0],
            ["live", "z", 0, 30, 0]
          ]
        )

        // Dropping a column stops its stage: new rows are not computed for it.
        const slowest = slow({ latencyMs: 200, concurrency: 1 })
        const t4 = yield* t3.addComputedColumn("w", slowest.fn({ x: t3.c.x }), { wait: false })
        yield* eventually(Effect.sync(() => slowest.stats.calls > 0))
        yield* t4.dropColumn("w")
        yield* Effect.sleep("500 millis")
        const afterDrop = slowest.stats.calls
        yield* Effect.sleep("700 millis")
        assert.strictEqual(slowest.stats.calls, afterDrop, "no call after the drop settled")
        assert.isBelow(afterDrop, 30)
        yield* eventually(Effect.map(supervisor.status, (s) => !s.some((x) => x.column === "w")))
      })
    ))

  test("a stage whose function is unknown is paused with the reason", () =>
    withSupervisor(
      Effect.gen(function* () {
        const fnName = name("gone")
        const gone = Fn.make({ name: fnName, params: { x: Column.Int }, returns: Column.Int, run: ({ x }) => x })
        const t = yield* Table.create("paused", { x: Column.Int })
        yield* t.addComputedColumn("g", gone({ x: t.c.x }))
        Fn.unregister(fnName, 1)
        const opened = yield* Table.get("paused")
        yield* opened.insert([{ x: 1 }], { wait: false })
        const supervisor = yield* Supervisor.Supervisor
        yield* eventually(
          Effect.map(supervisor.status, (s) =>
            s.some((x) => x.column === "g" && x.state === "paused" && x.pending === 1)
          )
        )
        const status = (yield* supervisor.status).find((x) => x.column === "g")!
        assert.include(status.reason, `${fnName}@1`)
      })
    ))

  test("interrupting a backfill leaves its cells pending, never half-written, and it resumes", () =>
    Effect.gen(function* () {
      const { fn, stats } = slow({ latencyMs: 20, concurrency: 2 })
      const t = yield* Table.create("interrupt", { x: Column.Int })
      yield* t.insert(Array.from({ length: 40 }, (_, i) => ({ x: i })))
      const fiber = yield* Effect.forkChild(t.addComputedColumn("y", fn({ x: t.c.x }), { onError: "record" }))
      yield* eventually(Effect.sync(() => stats.calls >= 6))
      yield* Fiber.interrupt(fiber)
      const opened = yield* Table.get("interrupt")
      const counts = yield* pendingOf(opened, "y")
      assert.strictEqual(counts.error, 0)
      assert.strictEqual(counts.claimed, 0, "claims are released")
      assert.strictEqual(counts.done + counts.pending, 40)
      assert.isAbove(counts.pending, 0)
      assert.isAbove(counts.done, 0)
      // Only finished calls were written: calls made = cells done + calls cut off in flight.
      assert.isAtMost(stats.calls - counts.done, 2)
      const doneBefore = counts.done
      // A worker resumes the remaining cells.
      const store = yield* Store.Store
      const meta = yield* opened.load
      const column = meta.columns.find((c) => c.name === "y")!
      yield* Effect.scoped(Effect.flatMap(store.registerWorker, (worker) => Stage.drain(meta, column, { worker })))
      const rows = yield* opened.collect()
      assert.strictEqual(rows.length, 40)
      assert.isTrue(rows.every((r) => r.y === (r.x as number) * 10))
      assert.isAtMost(stats.calls, 40 + 2)
      assert.isAtLeast(stats.calls - doneBefore, 40 - doneBefore)
    }))

  test("a function's concurrency limit holds across columns and tables", () =>
    Effect.gen(function* () {
      const { fn, stats } = slow({ latencyMs: 15, concurrency: 3 })
      const a = yield* Table.create("conc_a", { x: Column.Int })
      const b = yield* Table.create("conc_b", { x: Column.Int })
      yield* a.insert(Array.from({ length: 30 }, (_, i) => ({ x: i })))
      yield* b.insert(Array.from({ length: 30 }, (_, i) => ({ x: 100 + i })))
      yield* Effect.all([a.addComputedColumn("y", fn({ x: a.c.x })), b.addComputedColumn("y", fn({ x: b.c.x }))], {
        concurrency: "unbounded"
      })
      assert.strictEqual(stats.calls, 60)
      assert.strictEqual(stats.maxInFlight, 3)
    }))

  test("abort on a durable backfill removes the column; record keeps errors; progress is reported", () =>
    Effect.gen(function* () {
      const { fn } = slow({ latencyMs: 1, fail: (x) => x === 7 })
      const t = yield* Table.create("abort", { x: Column.Int })
      yield* t.insert(Array.from({ length: 20 }, (_, i) => ({ x: i })))
      const error = yield* Effect.flip(t.addComputedColumn("y", fn({ x: t.c.x })))
      assert.strictEqual(error._tag, "ComputeError")
      assert.include(error.message, "Nope: no 7")
      assert.deepStrictEqual(
        (yield* t.describe()).map((c) => c.name),
        ["x"]
      )
      const seen: Array<Stage.Progress> = []
      const t2 = yield* t.addComputedColumn("y", fn({ x: t.c.x }), {
        onError: "record",
        onProgress: (p) => Effect.sync(() => seen.push(p))
      })
      assert.strictEqual(seen.at(-1)?.done, 20)
      assert.strictEqual(seen.at(-1)?.errors, 1)
      const counts = yield* pendingOf(t2, "y")
      assert.deepInclude(counts, { pending: 0, done: 19, error: 1 })
      assert.deepStrictEqual(counts.lastError, { type: "Nope", message: "no 7" })
      const meta = yield* t2.load
      const samples = yield* Stream.runCollect(Stage.progress(meta, meta.columns.find((c) => c.name === "y")!, 10))
      assert.deepStrictEqual(samples.at(-1), { ...samples.at(-1)!, done: 20, total: 20, errors: 1 })
    }))
})

Harness.forEachBackend("Result cache", (test) => {
  test("re-inserted inputs and a dropped and re-added column call the deterministic function 0 times", () =>
    Effect.gen(function* () {
      const calls = { requests: 0, texts: 0 }
      const embed = Fn.batched({
        name: name("embed"),
        params: { text: Column.String },
        returns: Column.Vector(3),
        batchSize: 16,
        deterministic: true,
        run: (rows) =>
          Effect.sync(() => {
            calls.requests++
            calls.texts += rows.length
            return rows.map((r) => Float32Array.from([r.text.length, r.text.charCodeAt(0), 1]))
          })
      })
      const texts = Array.from({ length: 50 }, (_, i) => ({ text: `document number ${i}` }))
      const t = yield* Table.create("docs", { text: Column.String })
      yield* t.insert(texts)
      const t2 = yield* t.addComputedColumn("embedding", embed({ text: t.c.text }))
      assert.strictEqual(calls.texts, 50)
      const before = { ...calls }

      // The same 50 texts again, as new rows.
      yield* t2.insert(texts)
      assert.deepStrictEqual(calls, before)
      // Dropped and added again: the backfill is served from the cache.
      const t3 = yield* t2.dropColumn("embedding")
      const t4 = yield* t3.addComputedColumn("embedding", embed({ text: t3.c.text }))
      assert.deepStrictEqual(calls, before)
      const rows = yield* t4.collect()
      assert.strictEqual(rows.length, 100)
      for (const row of rows) {
        assert.deepStrictEqual(Array.from(row.embedding!), [row.text.length, row.text.charCodeAt(0), 1])
      }
      // Duplicates within one insert are computed once; a new text is computed.
      yield* t4.insert([{ text: "fresh" }, { text: "fresh" }, { text: "document number 3" }])
      assert.strictEqual(calls.texts, 51)
      const cache = yield* ResultCache.ResultCache
      const stats = yield* cache.stats
      assert.isAtLeast(stats.hits, 101)
      assert.strictEqual(stats.writes, 51)

      // Off for a column that asks: every row is computed again.
      yield* t4.addComputedColumn("again", embed({ text: t4.c.text }), { cache: false })
      assert.strictEqual(calls.texts, 51 + 103)
    }))

  test("a batched function's row failure fails that row alone, and is not cached: the next try computes it", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      let refuse = true
      const embed = Fn.batched({
        name: name("picky"),
        params: { text: Column.String },
        returns: Column.Vector(2),
        batchSize: 8,
        run: (rows) =>
          Effect.sync(() =>
            rows.map((r) => {
              seen.push(r.text)
              return refuse && r.text.startsWith("bad")
                ? Fn.failRow(
                    new Fn.FunctionError({ fn: "picky", errorType: "BadInput", message: `cannot embed ${r.text}` })
                  )
                : Float32Array.from([r.text.length, 1])
            })
          )
      })
      const t = yield* Table.create("picky", { id: Column.Int, text: Column.String })
      yield* t.insert([
        { id: 1, text: "good one" },
        { id: 2, text: "bad two" },
        { id: 3, text: "good three" },
        { id: 4, text: "bad four" }
      ])
      const t2 = yield* t.addComputedColumn("v", embed({ text: t.c.text }), { onError: "record" })
      assert.strictEqual(seen.length, 4, "one batch of 4")
      const rows = yield* t2
        .select((c) => ({ id: c.id, v: c.v, errorType: c.v.errorType, errorMessage: c.v.errorMessage }))
        .orderBy("id")
        .collect()
      assert.deepStrictEqual(
        rows.map((r) => [r.id, r.v === null ? null : Array.from(r.v), r.errorType, r.errorMessage]),
        [
          [1, [8, 1], null, null],
          [2, null, "BadInput", "cannot embed bad two"],
          [3, [10, 1], null, null],
          [4, null, "BadInput", "cannot embed bad four"]
        ]
      )
      // The same texts again: the results come from the cache, the failures are tried again.
      refuse = false
      seen.length = 0
      const t3 = yield* t2.addComputedColumn("again", embed({ text: t2.c.text }))
      assert.sameMembers(seen, ["bad two", "bad four"])
      const again = yield* t3
        .select((c) => ({ id: c.id, again: c.again }))
        .orderBy("id")
        .collect()
      assert.deepStrictEqual(
        again.map((r) => Array.from(r.again!)),
        [
          [8, 1],
          [7, 1],
          [10, 1],
          [8, 1]
        ]
      )
    }))
})
