import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Scope } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodePath from "node:path"
import { ModelError, WorkerPool } from "../src/index.ts"
import type { Options as SpinOptions } from "./fixtures/SpinModel.ts"

const SPIN_MODEL = new URL("./fixtures/SpinModel.ts", import.meta.url)

let tags = 0

/** A spin model with fresh counters: how often it was loaded, when it last ran, whether it crashed yet. */
const spinModel = () => {
  const options: SpinOptions = {
    tag: `spin-${tags++}`,
    loads: new SharedArrayBuffer(4),
    heartbeat: new SharedArrayBuffer(4),
    crashed: new SharedArrayBuffer(4)
  }
  return {
    model: WorkerPool.model("spin", SPIN_MODEL, options),
    loads: () => Atomics.load(new Int32Array(options.loads), 0),
    heartbeat: () => Atomics.load(new Int32Array(options.heartbeat), 0)
  }
}

const threadOf = (batch: WorkerPool.Batch) => {
  const first = batch.outcomes[0]
  assert.instanceOf(first, Float32Array)
  return (first as Float32Array)[0]!
}

/** Waits (polling) until `check` holds, for at most `ms`. */
const eventually = (check: () => boolean, ms = 10_000) =>
  Effect.gen(function* () {
    const start = Date.now()
    while (!check()) {
      if (Date.now() - start > ms) return yield* Effect.die(new Error("condition not reached in time"))
      yield* Effect.sleep("5 millis")
    }
  })

describe("WorkerPool", () => {
  it.live("runs batches on every worker, loading the model once per worker, and keeps the event loop free", () =>
    Effect.gen(function* () {
      const pool = yield* WorkerPool.make({ size: 2 })
      const spin = spinModel()
      // Warm both workers up (thread start and model load are not what is measured).
      yield* Effect.forEach([0, 1], () => pool.run(spin.model, ["50"]), { concurrency: "unbounded" })
      // A 10 ms timer on the main thread: how late its ticks come, and how many come.
      let maxLag = 0
      let ticks = 0
      let last = performance.now()
      const timer = setInterval(() => {
        const now = performance.now()
        maxLag = Math.max(maxLag, now - last - 10)
        ticks++
        last = now
      }, 10)
      const start = performance.now()
      const batches = yield* Effect.forEach(Array.from({ length: 6 }), () => pool.run(spin.model, ["300"]), {
        concurrency: "unbounded"
      }).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      const elapsed = performance.now() - start
      const threads = new Set(batches.map(threadOf))
      assert.strictEqual(threads.size, 2, "both workers served batches")
      assert.strictEqual(spin.loads(), 2, "one model load per worker")
      // 6 x 300 ms of work on 2 threads: about 900 ms; one thread would take 1800 ms.
      assert.isBelow(elapsed, 1_500, `6 batches took ${elapsed.toFixed(0)} ms`)
      // Work on the main thread would hold the timer back a whole batch (300 ms) at a time. The bounds
      // leave room for a loaded machine's scheduler (other processes compete for the cores).
      assert.isBelow(maxLag, 250, `the event loop lagged ${maxLag.toFixed(0)} ms`)
      assert.isAbove(ticks, (elapsed / 10) * 0.4, `${ticks} ticks in ${elapsed.toFixed(0)} ms`)
    }).pipe(Effect.scoped)
  )

  it.live("a crashed worker fails its batch with a retryable WorkerCrashed and is replaced", () =>
    Effect.gen(function* () {
      const pool = yield* WorkerPool.make({ size: 1 })
      const spin = spinModel()
      const before = threadOf(yield* pool.run(spin.model, ["1"]))
      const error = yield* Effect.flip(pool.run(spin.model, ["crash"]))
      assert.instanceOf(error, ModelError.ModelError)
      assert.strictEqual(error.reason, "WorkerCrashed")
      assert.isTrue(error.isRetryable)
      assert.include(error.message, "exited with code 3")
      const after = threadOf(yield* pool.run(spin.model, ["1"]))
      assert.notStrictEqual(after, before, "a new thread took the crashed one's place")
      assert.strictEqual(spin.loads(), 2, "the new worker loaded the model")
      // The default retry of local model functions runs a crashed batch again, on the replacement.
      const retried = yield* WorkerPool.embed(spin.model, ["crash-once"]).pipe(
        Effect.retry(ModelError.retry()),
        Effect.provideService(WorkerPool.Current, pool)
      )
      assert.strictEqual(retried.length, 1)
      assert.notStrictEqual(retried[0]![0], after)
    }).pipe(Effect.scoped)
  )

  it.live("interrupting a batch terminates its worker at once; the pool starts another", () =>
    Effect.gen(function* () {
      const pool = yield* WorkerPool.make({ size: 1 })
      const spin = spinModel()
      const first = threadOf(yield* pool.run(spin.model, ["0"]))
      const fiber = yield* Effect.forkChild(pool.run(spin.model, ["20000"]))
      yield* eventually(() => spin.heartbeat() !== 0)
      yield* Fiber.interrupt(fiber)
      const stopped = spin.heartbeat()
      yield* Effect.sleep("300 millis")
      assert.strictEqual(spin.heartbeat(), stopped, "the busy thread no longer runs")
      const next = threadOf(yield* pool.run(spin.model, ["1"]))
      assert.notStrictEqual(next, first)
    }).pipe(Effect.scoped)
  )

  it.live("closing the pool's scope terminates its workers mid-batch and fails waiting batches", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const pool = yield* Scope.provide(scope)(WorkerPool.make({ size: 2 }))
      const spin = spinModel()
      const running = yield* Effect.forkChild(
        Effect.exit(Effect.forEach([0, 1, 2], () => pool.run(spin.model, ["20000"]), { concurrency: "unbounded" }))
      )
      yield* eventually(() => spin.heartbeat() !== 0)
      yield* Scope.close(scope, Exit.void)
      const stopped = spin.heartbeat()
      yield* Effect.sleep("300 millis")
      assert.strictEqual(spin.heartbeat(), stopped, "no worker thread is left running")
      const exit = yield* Fiber.join(running)
      assert.isTrue(Exit.isFailure(exit), "the batches did not complete")
    })
  )

  it.live("a model module that cannot be imported fails the batch as InvalidModel; the worker stays", () =>
    Effect.gen(function* () {
      const pool = yield* WorkerPool.make({ size: 1 })
      const missing = WorkerPool.model("nowhere", new URL("./fixtures/NoSuchModel.ts", import.meta.url))
      const error = yield* Effect.flip(pool.run(missing, ["x"]))
      assert.strictEqual(error.reason, "InvalidModel")
      assert.strictEqual(error.model, "nowhere")
      assert.include(error.message, "NoSuchModel.ts")
      const spin = spinModel()
      yield* pool.run(spin.model, ["1"])
    }).pipe(Effect.scoped)
  )

  it.live("layer provides one pool as the WorkerPool service and as Current, which embed uses", () =>
    Effect.gen(function* () {
      const spin = spinModel()
      const service = yield* WorkerPool.WorkerPool
      assert.strictEqual(yield* WorkerPool.current, service)
      assert.strictEqual(service.size, 1)
      const [a] = yield* WorkerPool.embed(spin.model, ["0"])
      const [b] = yield* WorkerPool.embed(spin.model, ["0"])
      assert.strictEqual(a![0], b![0], "one worker served both")
      assert.strictEqual(spin.loads(), 1)
    }).pipe(Effect.provide(WorkerPool.layer({ size: 1 })))
  )

  it.live("the process-wide pool is sized by TESSERA_MODEL_WORKERS; a bad value is an InvalidConfig error", () =>
    Effect.gen(function* () {
      const withEnv = (value: string) =>
        Effect.provideService(
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromEnv({ env: { TESSERA_MODEL_WORKERS: value } })
        )
      const error = yield* Effect.flip(WorkerPool.current.pipe(withEnv("many")))
      assert.strictEqual(error.reason, "InvalidConfig")
      assert.include(error.message, "TESSERA_MODEL_WORKERS")
      const pool = yield* WorkerPool.current.pipe(withEnv("3"))
      assert.strictEqual(pool.size, 3)
      assert.strictEqual(yield* WorkerPool.shared, pool, "made once, then reused")
    })
  )

  it.live("plain node starts the .ts workers too, and exits on its own with idle workers in the shared pool", () =>
    Effect.gen(function* () {
      const script = NodePath.join(import.meta.dirname, "fixtures", "plain-node.ts")
      const output = yield* Effect.promise(
        () =>
          new Promise<string>((resolve, reject) =>
            NodeChildProcess.execFile(process.execPath, [script], { timeout: 30_000 }, (error, stdout, stderr) =>
              error === null ? resolve(stdout) : reject(new Error(`${error.message}\n${stderr}`))
            )
          )
      )
      const threads = JSON.parse(output.trim()) as Array<number>
      assert.strictEqual(new Set(threads).size, 2, `served by threads ${threads}`)
    })
  )
})
