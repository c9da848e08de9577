/**
 * Embed: N generated sentences embedded with the local text model
 * (`LocalModels.textEmbedding`, Universal Sentence Encoder lite) in batches
 * of the function's batch size, as the engine runs them, on a pool of one
 * worker and on a pool of `os.availableParallelism()` workers, in the same
 * run. Each pool's workers load the model before timing starts.
 * ratio = pool rate / one-worker rate (ideally close to the worker count).
 * `--quick`: 256 texts.
 */
import { Pool } from "@tessera/core"
import { LocalModels, WorkerPool } from "@tessera/models"
import { Effect } from "effect"

const SUBJECTS = ["The cat", "A small boat", "Our neighbour", "The old train", "My sister", "The committee", "A robot"]
const VERBS = ["watched", "repaired", "painted", "ignored", "described", "carried", "followed"]
const OBJECTS = ["the red bridge", "a quiet garden", "the broken clock", "an empty stadium", "the winter sky"]
const ENDINGS = ["before dawn.", "with great care.", "for the third time.", "despite the rain.", "and then left."]

const sentence = (i: number) =>
  `${SUBJECTS[i % SUBJECTS.length]} ${VERBS[Math.floor(i / 7) % VERBS.length]} ${OBJECTS[Math.floor(i / 49) % OBJECTS.length]} ${ENDINGS[Math.floor(i / 245) % ENDINGS.length]} (${i})`

const embed = LocalModels.textEmbedding()
const pool = new Pool.Pool("bench-embed")

/** Embeds `texts` in batches of the function's size, `concurrency` batches at once; returns the elapsed ms. */
const run = (texts: ReadonlyArray<string>, concurrency: number) =>
  Effect.gen(function* () {
    const { batchSize } = embed.definition
    const batches = Array.from({ length: Math.ceil(texts.length / batchSize) }, (_, i) =>
      texts.slice(i * batchSize, (i + 1) * batchSize).map((text) => [text])
    )
    const start = performance.now()
    const results = yield* Effect.forEach(batches, (batch) => embed.definition.invoke(batch), { concurrency })
    const ms = performance.now() - start
    const vectors = results.flat() as ReadonlyArray<Float32Array>
    if (vectors.length !== texts.length || vectors.some((v) => v.length !== LocalModels.TEXT_DIMENSIONS)) {
      throw new Error("missing vectors")
    }
    return ms
  }).pipe(Effect.provideService(Pool.CurrentPool, pool))

/** The rate (texts per second) on a fresh pool of `size` workers, warmed up first. */
const rateWith = (texts: ReadonlyArray<string>, size: number) =>
  Effect.gen(function* () {
    const workers = yield* WorkerPool.make({ size })
    return yield* Effect.gen(function* () {
      // Every worker loads the model (a batch each, all at once: none is idle until loaded).
      yield* run(
        Array.from({ length: size * embed.definition.batchSize }, (_, i) => sentence(i)),
        size
      )
      const ms = yield* run(texts, size * 2)
      return texts.length / (ms / 1000)
    }).pipe(Effect.provideService(WorkerPool.Current, workers))
  }).pipe(Effect.scoped)

export const main = async (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const n = quick ? 256 : 2048
  const workers = WorkerPool.defaultSize()
  const texts = Array.from({ length: n }, (_, i) => sentence(i))
  const { one, many } = await Effect.runPromise(
    Effect.gen(function* () {
      const one = yield* rateWith(texts, 1)
      const many = yield* rateWith(texts, workers)
      return { one, many }
    })
  )
  const ratio = many / one
  console.log(
    `${n} texts, batches of ${embed.definition.batchSize}: 1 worker ${one.toFixed(0)} texts/s, ${workers} workers ${many.toFixed(0)} texts/s, ratio ${ratio.toFixed(2)}`
  )
  console.log(
    `BENCH embed texts=${n} workers=${workers} one_worker_per_s=${one.toFixed(0)} pool_per_s=${many.toFixed(0)} ratio=${ratio.toFixed(2)}`
  )
}
