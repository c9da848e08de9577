/**
 * MobileNetV2 image embeddings: the network nsfwjs ships in npm (its weights
 * are in `nsfwjs/dist/models/mobilenet_v2`, as UMD bundles of the model JSON
 * and base64 weights), cut at the 1280-d global average pool before the
 * classifier head. Not a joint text-image space: an image's vector is close to
 * visually similar images' vectors.
 *
 * Images are decoded and resized (to 224 x 224, stretched, sRGB) with sharp,
 * scaled to [0, 1] as nsfwjs does. tfjs-layers runs the network on the
 * WebAssembly backend bundled in `@energetic-ai/core`: both copies of tfjs
 * share tfjs's global engine and kernel registry, so the layers model runs on
 * those WebAssembly kernels (5 to 10 times faster than tfjs's pure-JS CPU kernels,
 * which stay available as `backend: "cpu"`). Loaded inside a model worker.
 */
import type * as Tf from "@tensorflow/tfjs"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import sharp from "sharp"
import { type LoadedModel, ModelFailure, type Outcome } from "../protocol.ts"
import * as TfFiles from "../TfFiles.ts"

const require = createRequire(import.meta.url)

export interface Options {
  /** The directory with nsfwjs's `model.min.js` and weight shard bundles (default: the npm package's). */
  readonly modelDir?: string | undefined
  /** tfjs backend (default `wasm`). */
  readonly backend?: "wasm" | "cpu" | undefined
}

export const DIMENSIONS = 1280
export const SIZE = 224
/** The layer whose output is the embedding: the flattened 7 x 7 average pool of the last feature map. */
const EMBEDDING_LAYER = "flatten_1"

/** nsfwjs's MobileNetV2 directory in its npm package. */
export const packagedModelDir = (): string => {
  const entry = require.resolve("nsfwjs") // <nsfwjs>/dist/cjs/index.js
  return NodePath.join(NodePath.dirname(entry), "..", "models", "mobilenet_v2")
}

interface ModelJson {
  readonly modelTopology: unknown
  readonly weightsManifest: ReadonlyArray<{
    readonly paths: ReadonlyArray<string>
    readonly weights: Array<Tf.io.WeightsManifestEntry>
  }>
}

/** Evaluates one of nsfwjs's UMD model bundles (`<name>.min.js`), which export the model JSON or a weight shard. */
const readBundle = async (dir: string, name: string): Promise<unknown> => {
  const path = NodePath.join(dir, `${name}.min.js`)
  await TfFiles.readFile(dir, `${name}.min.js`) // a missing file is ModelNotFound, naming the directory
  try {
    return require(path)
  } catch (cause) {
    throw new ModelFailure("InvalidModel", `Cannot load model bundle ${path}: ${(cause as Error).message}`, dir)
  }
}

/** An IO handler reading nsfwjs's bundled model JSON and weights from `dir`. */
const handler = (dir: string): Tf.io.IOHandler => ({
  load: async () => {
    const json = (await readBundle(dir, "model")) as ModelJson
    if (typeof json !== "object" || json === null || json.modelTopology === undefined) {
      throw new ModelFailure("InvalidModel", `${NodePath.join(dir, "model.min.js")} is not a model bundle`, dir)
    }
    const shards = await Promise.all(
      json.weightsManifest
        .flatMap((group) => group.paths)
        .map(async (name) => {
          const base64 = await readBundle(dir, name)
          if (typeof base64 !== "string") {
            throw new ModelFailure(
              "InvalidModel",
              `${NodePath.join(dir, `${name}.min.js`)} is not a weight bundle`,
              dir
            )
          }
          return Buffer.from(base64, "base64")
        })
    )
    return TfFiles.artifacts(json, shards)
  }
})

/** tfjs on the requested backend; `@energetic-ai/core` (the WebAssembly backend) is loaded first. */
const tfjs = async (backend: "wasm" | "cpu"): Promise<typeof Tf> => {
  const core = require("@energetic-ai/core") as typeof import("@energetic-ai/core")
  await core.ready()
  // Production mode (shared by both copies): no debug checks, and no warnings that the
  // second copy sets the platform again or that tfjs-node would be faster.
  core.env().set("PROD", true)
  const tf = require("@tensorflow/tfjs") as typeof Tf
  if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) {
    throw new ModelFailure("InvalidModel", `the tfjs ${backend} backend is not available`)
  }
  return tf
}

const errorMessage = (cause: unknown) => (cause instanceof Error ? cause.message.split("\n")[0]!.trim() : String(cause))

/** An image file's pixels as RGB bytes, 224 x 224; a failure names the file. */
const pixels = async (path: string): Promise<Uint8Array | ModelFailure> => {
  try {
    return await sharp(path, { autoOrient: true })
      .removeAlpha()
      .toColourspace("srgb")
      .resize(SIZE, SIZE, { fit: "fill" })
      .raw()
      .toBuffer()
  } catch (cause) {
    const message = errorMessage(cause)
    return /Input file is missing/i.test(message)
      ? new ModelFailure("InputNotFound", `Image file not found: ${path}`, path)
      : new ModelFailure("InvalidInput", `Cannot decode image ${path}: ${message}`, path)
  }
}

export const load = async (options: Options | undefined): Promise<LoadedModel> => {
  const dir = options?.modelDir ?? packagedModelDir()
  const tf = await tfjs(options?.backend ?? "wasm")
  const full = await tf.loadLayersModel(handler(dir))
  const model = tf.model({ inputs: full.inputs, outputs: full.getLayer(EMBEDDING_LAYER).output as Tf.SymbolicTensor })
  return {
    dimensions: DIMENSIONS,
    embed: async (paths) => {
      const decoded = await Promise.all(paths.map(pixels))
      const images = decoded.filter((d): d is Uint8Array => d instanceof Uint8Array)
      const vectors: Array<Float32Array> = []
      if (images.length > 0) {
        const batch = new Float32Array(images.length * SIZE * SIZE * 3)
        images.forEach((image, i) => {
          for (let j = 0; j < image.length; j++) batch[i * image.length + j] = image[j]! / 255
        })
        const input = tf.tensor4d(batch, [images.length, SIZE, SIZE, 3])
        const output = model.predict(input) as Tf.Tensor
        const data = (await output.data()) as Float32Array
        input.dispose()
        output.dispose()
        for (let i = 0; i < images.length; i++) {
          vectors.push(TfFiles.normalized(data.slice(i * DIMENSIONS, (i + 1) * DIMENSIONS)))
        }
      }
      let next = 0
      return decoded.map((d): Outcome => (d instanceof Uint8Array ? vectors[next++]! : d))
    }
  }
}
