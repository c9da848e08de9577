/**
 * Any feature-extraction model that `@huggingface/transformers` runs, loaded
 * from a local directory only (`env.allowRemoteModels = false`,
 * `env.localModelPath`): `config.json`, `tokenizer.json`,
 * `tokenizer_config.json` and `onnx/model.onnx` (or the file its `dtype`
 * names). Inference is onnxruntime-node's bundled CPU build, one intra-op
 * thread per worker: the pool provides the parallelism. Loaded inside a model
 * worker.
 */
import { env, type FeatureExtractionPipeline, pipeline } from "@huggingface/transformers"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { type LoadedModel, ModelFailure } from "../protocol.ts"

export type Pooling = "mean" | "cls" | "first_token" | "last_token" | "eos" | "none"
export type Dtype = "fp32" | "fp16" | "q8" | "int8" | "uint8" | "q4" | "bnb4" | "q4f16"

export interface Options {
  /** The model directory (absolute). */
  readonly modelDir: string
  readonly dimensions: number
  readonly pooling: Pooling
  readonly normalize: boolean
  readonly dtype: Dtype
  /** onnxruntime intra-op threads per worker. */
  readonly threads: number
}

/** Files that must be there before transformers.js is asked (its own errors name no directory). */
const REQUIRED = ["config.json", "tokenizer.json", "tokenizer_config.json"]

const exists = (path: string) =>
  NodeFs.stat(path).then(
    (s) => s.isFile(),
    () => false
  )

const checkFiles = async (options: Options) => {
  const files = [...REQUIRED, ...(options.dtype === "fp32" ? ["onnx/model.onnx"] : [])]
  const found = await Promise.all(files.map((file) => exists(NodePath.join(options.modelDir, file))))
  const missing = files.filter((_, i) => !found[i])
  if (missing.length > 0) {
    throw new ModelFailure(
      "ModelNotFound",
      `Model directory ${options.modelDir} is missing ${missing.join(", ")}`,
      options.modelDir
    )
  }
}

// `env` is global to the worker: loads run one at a time so that each sees its own `localModelPath`.
let loading: Promise<unknown> = Promise.resolve()

const open = async (options: Options): Promise<FeatureExtractionPipeline> => {
  env.allowRemoteModels = false
  env.allowLocalModels = true
  env.useFSCache = false
  env.localModelPath = NodePath.dirname(options.modelDir)
  try {
    return (await pipeline("feature-extraction", NodePath.basename(options.modelDir), {
      local_files_only: true,
      device: "cpu",
      dtype: options.dtype,
      session_options: { intraOpNumThreads: options.threads, interOpNumThreads: 1 }
    })) as FeatureExtractionPipeline
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause)
    throw new ModelFailure(
      /not found locally|could not locate/i.test(message) ? "ModelNotFound" : "InvalidModel",
      `Cannot load the model in ${options.modelDir}: ${message}`,
      options.modelDir
    )
  }
}

export const load = async (options: Options): Promise<LoadedModel> => {
  await checkFiles(options)
  const opened = loading.then(() => open(options))
  loading = opened.catch(() => undefined)
  const extractor = await opened
  return {
    dimensions: options.dimensions,
    embed: async (texts) => {
      const output = await extractor([...texts], { pooling: options.pooling, normalize: options.normalize })
      const [rows, size] = output.dims
      if (output.dims.length !== 2 || rows !== texts.length || size !== options.dimensions) {
        throw new ModelFailure(
          "InvalidModel",
          `The model in ${options.modelDir} returned a tensor of shape [${output.dims.join(", ")}], expected [${texts.length}, ${options.dimensions}] (is pooling set?)`,
          options.modelDir
        )
      }
      const data = output.data as Float32Array
      return Array.from({ length: texts.length }, (_, i) => data.slice(i * size!, (i + 1) * size!))
    }
  }
}
