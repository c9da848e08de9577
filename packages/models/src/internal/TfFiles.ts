/**
 * Loading TensorFlow.js models from local files: an IO handler that reads a
 * `model.json` and the weight shards its manifest lists, failing with a
 * `ModelFailure` that names the directory when a file is missing or unreadable.
 * Also the small vector helpers the tfjs models share.
 */
import type { io } from "@tensorflow/tfjs"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import { ModelFailure } from "./protocol.ts"

const errorCode = (cause: unknown): unknown =>
  typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined

/** Reads a file of a model directory; a missing file is `ModelNotFound`, naming the directory. */
export const readFile = async (dir: string, name: string): Promise<Buffer> => {
  const path = NodePath.join(dir, name)
  try {
    return await NodeFs.readFile(path)
  } catch (cause) {
    const missing = errorCode(cause) === "ENOENT" || errorCode(cause) === "ENOTDIR"
    throw new ModelFailure(
      missing ? "ModelNotFound" : "InvalidModel",
      missing
        ? `Model file ${name} not found in model directory ${dir}`
        : `Cannot read model file ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
      dir
    )
  }
}

export const readJson = async (dir: string, name: string): Promise<unknown> => {
  const text = (await readFile(dir, name)).toString("utf8")
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new ModelFailure(
      "InvalidModel",
      `Model file ${NodePath.join(dir, name)} is not valid JSON: ${(cause as Error).message}`,
      dir
    )
  }
}

interface ModelJson {
  readonly modelTopology?: unknown
  readonly format?: string
  readonly generatedBy?: string
  readonly convertedBy?: string | null
  readonly weightsManifest?: ReadonlyArray<{
    readonly paths: ReadonlyArray<string>
    readonly weights: Array<io.WeightsManifestEntry>
  }>
}

/** Artifacts from an already parsed model JSON and its weight bytes, shard by shard. */
export const artifacts = (json: ModelJson, shards: ReadonlyArray<Uint8Array>): io.ModelArtifacts => {
  const size = shards.reduce((n, s) => n + s.byteLength, 0)
  const weightData = new Uint8Array(size)
  let offset = 0
  for (const shard of shards) {
    weightData.set(shard, offset)
    offset += shard.byteLength
  }
  const result: io.ModelArtifacts = {
    modelTopology: json.modelTopology as io.ModelArtifacts["modelTopology"] & {},
    weightSpecs: (json.weightsManifest ?? []).flatMap((group) => group.weights),
    weightData: weightData.buffer
  }
  if (json.format !== undefined) result.format = json.format
  if (json.generatedBy !== undefined) result.generatedBy = json.generatedBy
  if (json.convertedBy != null) result.convertedBy = json.convertedBy
  return result
}

/** An IO handler reading `<dir>/<modelJson>` and its weight shards from the file system. */
export const handler = (dir: string, modelJson: string): io.IOHandler => ({
  load: async () => {
    const json = (await readJson(dir, modelJson)) as ModelJson
    if (typeof json !== "object" || json === null || json.modelTopology === undefined) {
      throw new ModelFailure("InvalidModel", `${NodePath.join(dir, modelJson)} has no modelTopology`, dir)
    }
    const paths = (json.weightsManifest ?? []).flatMap((group) => group.paths)
    const shards = await Promise.all(paths.map((path) => readFile(dir, path)))
    return artifacts(json, shards)
  }
})

/** The vector scaled to unit length (left as it is when it is all zeros). */
export const normalized = (vector: Float32Array): Float32Array => {
  let sum = 0
  for (const x of vector) sum += x * x
  const norm = Math.sqrt(sum)
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] /= norm
  return vector
}
