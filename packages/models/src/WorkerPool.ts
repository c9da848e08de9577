/**
 * WorkerPool: local model inference off the main thread, on a pool of
 * `node:worker_threads` workers (one per core by default). A batch goes to one
 * idle worker; each worker loads a model the first time it is asked for it
 * and keeps it. The event loop only posts inputs and receives vectors.
 *
 * The pool is a scoped resource (an Effect `Pool` of workers): closing its
 * scope terminates the workers. A worker that crashes fails its batch with a
 * retryable `ModelError` (`WorkerCrashed`) and is replaced; a batch whose
 * fiber is interrupted terminates its worker at once (a model call cannot be
 * cancelled inside the thread) and the pool starts a fresh one.
 *
 * Tessera functions cannot require services (their effects run with
 * `Pool.CurrentPool` only), so local model functions read `Current`, a
 * reference that `layer` sets. Without it they use one process-wide pool,
 * created on first use (sized by `TESSERA_MODEL_WORKERS`, default
 * `os.availableParallelism()`) and never closed: its idle workers are
 * unref'd, so they neither keep the process alive nor outlive it, and the
 * models they loaded serve every later call in the process.
 */
import { Cause, Config, Context, Effect, Layer, Pool, Scope, Semaphore } from "effect"
import * as NodeOs from "node:os"
import { Worker } from "node:worker_threads"
import type * as Protocol from "./internal/protocol.ts"
import { fromPayload, ModelError } from "./ModelError.ts"

export type ModelSpec = Protocol.ModelSpec
/** What a model module's `load(options)` returns, inside a worker. */
export type LoadedModel = Protocol.LoadedModel
/** What a model module exports. */
export type Load = Protocol.Load
/** What a model module throws (or returns for one input) to fail with a given reason. */
export { ModelFailure } from "./internal/protocol.ts"

/** A model for the pool: the module (exporting `load(options)`) that a worker imports, and its options. */
export const model = (name: string, module: URL | string, options?: unknown): ModelSpec => {
  const url = String(module)
  return { name, module: url, options: options ?? null, key: `${url}#${JSON.stringify(options ?? null)}` }
}

/** What one batch returned: one vector or failure per input, and the worker thread that computed it. */
export interface Batch {
  readonly threadId: number
  readonly outcomes: ReadonlyArray<Float32Array | ModelError>
}

export interface Shape {
  /** How many workers the pool runs. */
  readonly size: number
  /** Runs one batch on an idle worker (waiting for one when all are busy). */
  readonly run: (model: ModelSpec, inputs: ReadonlyArray<string>) => Effect.Effect<Batch, ModelError>
}

export class WorkerPool extends Context.Service<WorkerPool, Shape>()("@tessera/models/WorkerPool") {}

export interface Options {
  /** Workers in the pool (default `os.availableParallelism()`). */
  readonly size?: number | undefined
}

const WORKER_URL = new URL("./internal/worker.ts", import.meta.url)

export const defaultSize = (): number => NodeOs.availableParallelism()

interface ModelWorker {
  readonly threadId: number
  readonly worker: Worker
  readonly send: (model: ModelSpec, inputs: ReadonlyArray<string>) => Effect.Effect<Protocol.Reply, ModelError>
  /** Set once the thread has crashed or exited. */
  readonly isDead: () => boolean
}

/**
 * Starts a worker thread. Callbacks wait for replies by request id; a crash or
 * exit fails every waiting request. The thread is ref'd only while a request
 * is in flight, so an idle pool never keeps the process alive.
 */
const open = (): ModelWorker => {
  const worker = new Worker(WORKER_URL)
  const threadId = worker.threadId
  const pending = new Map<number, (reply: Protocol.Reply | ModelError) => void>()
  let nextId = 0
  let dead = false
  const settle = (id: number, outcome: Protocol.Reply | ModelError) => {
    const done = pending.get(id)
    pending.delete(id)
    if (pending.size === 0) worker.unref()
    done?.(outcome)
  }
  const crash = (message: string) => {
    if (dead) return
    dead = true
    for (const id of [...pending.keys()]) {
      settle(id, new ModelError({ reason: "WorkerCrashed", model: "worker", message }))
    }
  }
  worker.on("message", (reply: Protocol.Reply) => settle(reply.id, reply))
  worker.on("error", (error) => crash(`model worker ${threadId} crashed: ${error.message}`))
  worker.on("messageerror", (error) => crash(`model worker ${threadId} sent an unreadable message: ${error.message}`))
  worker.on("exit", (code) => crash(`model worker ${threadId} exited with code ${code}`))
  // After the listeners: adding a "message" listener refs the worker's port again.
  worker.unref()
  const send = (model: ModelSpec, inputs: ReadonlyArray<string>) =>
    Effect.callback<Protocol.Reply, ModelError>((resume) => {
      if (dead) {
        return resume(
          Effect.fail(
            new ModelError({ reason: "WorkerCrashed", model: model.name, message: `model worker ${threadId} is gone` })
          )
        )
      }
      const id = nextId++
      pending.set(id, (outcome) =>
        resume(
          outcome instanceof ModelError
            ? Effect.fail(new ModelError({ reason: outcome.reason, model: model.name, message: outcome.message }))
            : Effect.succeed(outcome)
        )
      )
      worker.ref()
      const request: Protocol.Request = { id, model, inputs }
      worker.postMessage(request)
      return Effect.sync(() => {
        pending.delete(id)
        if (pending.size === 0) worker.unref()
      })
    })
  return { threadId, worker, send, isDead: () => dead }
}

const spawn = Effect.acquireRelease(Effect.sync(open), ({ worker }) => Effect.promise(() => worker.terminate()))

const toBatch = (model: ModelSpec, count: number, reply: Protocol.Reply): Effect.Effect<Batch, ModelError> => {
  if (reply._tag === "Failed") return Effect.fail(fromPayload(model.name, reply.failure))
  const failed = new Map(reply.failures.map((f) => [f.index, fromPayload(model.name, f.failure)]))
  const outcomes = Array.from(
    { length: count },
    (_, i) => failed.get(i) ?? reply.data.slice(i * reply.dimensions, (i + 1) * reply.dimensions)
  )
  return Effect.succeed({ threadId: reply.threadId, outcomes })
}

/** A pool of `size` workers, terminated when the scope closes. */
export const make = Effect.fnUntraced(function* (options?: Options) {
  const size = Math.max(1, Math.floor(options?.size ?? defaultSize()))
  const workers = yield* Pool.make({ acquire: spawn, size })
  const run = (model: ModelSpec, inputs: ReadonlyArray<string>): Effect.Effect<Batch, ModelError> =>
    Pool.use(workers, (worker) =>
      worker.send(model, inputs).pipe(
        // A crashed worker is replaced; so is one interrupted mid-batch, which would otherwise keep computing.
        Effect.onError((cause) =>
          worker.isDead() || Cause.hasInterrupts(cause) ? Pool.invalidate(workers, worker) : Effect.void
        ),
        Effect.flatMap((reply) => toBatch(model, inputs.length, reply))
      )
    )
  return WorkerPool.of({ size, run })
})

/** The pool local model functions use; `layer` sets it, else they use the process-wide pool. */
export const Current = Context.Reference<Shape | undefined>("@tessera/models/WorkerPool/Current", {
  defaultValue: () => undefined
})

/** A pool of `size` workers as the `WorkerPool` service and as `Current`, terminated with the layer. */
export const layer = (options?: Options): Layer.Layer<WorkerPool> =>
  Layer.effectContext(
    Effect.map(make(options), (pool) => Context.make(WorkerPool, pool).pipe(Context.add(Current, pool)))
  )

let sharedPool: Shape | undefined
const sharedLock = Semaphore.makeUnsafe(1)

const configuredSize = Config.Int("TESSERA_MODEL_WORKERS").pipe(Config.withDefault(defaultSize()))

/** The process-wide pool, made on first use (see the module comment). */
export const shared: Effect.Effect<Shape, ModelError> = sharedLock.withPermits(1)(
  Effect.suspend(() => {
    if (sharedPool !== undefined) return Effect.succeed(sharedPool)
    return Effect.gen(function* () {
      const size = yield* Effect.mapError(
        configuredSize,
        (error) =>
          new ModelError({
            reason: "InvalidConfig",
            model: "worker pool",
            message: `TESSERA_MODEL_WORKERS: ${error.message}`
          })
      )
      const scope = yield* Scope.make()
      sharedPool = yield* Scope.provide(scope)(make({ size }))
      return sharedPool
    })
  })
)

/** The pool in use: `Current` when set, else the process-wide one. */
export const current: Effect.Effect<Shape, ModelError> = Effect.flatMap(Effect.service(Current), (pool) =>
  pool === undefined ? shared : Effect.succeed(pool)
)

/** Embeds `inputs` with `model` on the current pool; fails with the first input that failed. */
export const embed = (
  model: ModelSpec,
  inputs: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Float32Array>, ModelError> =>
  embedEach(model, inputs).pipe(
    Effect.flatMap((outcomes) => {
      const failures = outcomes.filter((o): o is ModelError => o instanceof ModelError)
      if (failures.length === 0) return Effect.succeed(outcomes as ReadonlyArray<Float32Array>)
      const first = failures[0]!
      // All or nothing: say which input failed and how many others did too.
      const others = failures.length - 1
      return Effect.fail(
        others === 0
          ? first
          : new ModelError({
              reason: first.reason,
              model: first.model,
              ...(first.path === undefined ? {} : { path: first.path }),
              message: `${first.message} (and ${others} more input${others === 1 ? "" : "s"} of this batch)`
            })
      )
    })
  )

/**
 * Embeds a batch of inputs, each input's own failure (a file that cannot be
 * read or decoded) given in its place; the batch fails as a whole only when
 * the model or the worker does.
 */
export const embedEach = (
  model: ModelSpec,
  inputs: ReadonlyArray<string>
): Effect.Effect<ReadonlyArray<Float32Array | ModelError>, ModelError> =>
  Effect.map(
    Effect.flatMap(current, (pool) => pool.run(model, inputs)),
    ({ outcomes }) => outcomes
  )
