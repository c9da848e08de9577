import { assert, describe, it } from "@effect/vitest"
import { Pool } from "@tessera/core"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, beforeAll } from "vitest"
import { LocalModels, ModelError } from "../src/index.ts"
import * as TinyBert from "./fixtures/TinyBert.ts"

// A tiny BERT-shaped model generated for the test: last_hidden_state =
// tanh(embedding table[input_ids]), so the expected vectors can be computed here.
const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-transformers-"))
const modelDir = NodePath.join(root, "tiny-bert")
let model: ReturnType<typeof TinyBert.write>

beforeAll(() => {
  model = TinyBert.write(modelDir, { hidden: 16 })
})

afterAll(() => NodeFs.rmSync(root, { recursive: true, force: true }))

const testPool = new Pool.Pool("transformers-test")

const embedTexts = (fn: LocalModels.TextFn, texts: ReadonlyArray<string>) =>
  fn.definition.invoke(texts.map((text) => [text])).pipe(
    Effect.map((vectors) => vectors as ReadonlyArray<Float32Array>),
    Effect.provideService(Pool.CurrentPool, testPool)
  )

/** What the model computes for a text's token ids: the mean of tanh(row) over the tokens, unit length. */
const expected = (ids: ReadonlyArray<number>) => {
  const sum = new Float64Array(model.hidden)
  for (const id of ids) for (let j = 0; j < model.hidden; j++) sum[j]! += Math.tanh(model.table[id * model.hidden + j]!)
  const norm = Math.hypot(...sum)
  return Array.from(sum, (x) => x / norm)
}

describe("LocalModels.transformersEmbedding", () => {
  it.live("runs a local model directory: pooled, normalized vectors of its hidden size, deterministic", () =>
    Effect.gen(function* () {
      const embed = yield* LocalModels.transformersEmbedding({ modelDir })
      assert.deepStrictEqual(embed.definition.returns, { kind: "Vector", dim: 16 })
      assert.match(embed.definition.name, /^local\.transformers\/tiny-bert:[0-9a-f]{8}$/)
      const texts = ["the cat sat on the mat", "hello world", "fast boat", "the cat sat on the mat"]
      const vectors = yield* embedTexts(embed, texts)
      for (const v of vectors) {
        assert.strictEqual(v.length, 16)
        assert.approximately(Math.hypot(...v), 1, 1e-5)
      }
      assert.deepStrictEqual(vectors[0], vectors[3], "the same text, the same vector")
      assert.notDeepEqual(vectors[0], vectors[1])
      assert.notDeepEqual(vectors[1], vectors[2])
      // "hello world" is [CLS] hello world [SEP]: the vector is the mean over those four tokens.
      const want = expected([model.ids["[CLS]"]!, model.ids.hello!, model.ids.world!, model.ids["[SEP]"]!])
      for (const [j, x] of vectors[1]!.entries()) assert.approximately(x, want[j]!, 1e-5)
      // Padding in a batch does not change a text's vector (mean pooling follows the attention mask).
      const [alone] = yield* embedTexts(embed, ["hello world"])
      for (const [j, x] of alone!.entries()) assert.approximately(x, vectors[1]![j]!, 1e-6)
    })
  )

  it.live("a missing model directory or model file fails with a ModelError naming the directory", () =>
    Effect.gen(function* () {
      const nowhere = NodePath.join(root, "nowhere")
      const noConfig = yield* Effect.flip(LocalModels.transformersEmbedding({ modelDir: nowhere }))
      assert.instanceOf(noConfig, ModelError.ModelError)
      assert.strictEqual(noConfig.reason, "ModelNotFound")
      assert.strictEqual(noConfig.path, nowhere)
      assert.include(noConfig.message, nowhere)

      const partial = NodePath.join(root, "no-weights")
      TinyBert.write(partial)
      NodeFs.rmSync(NodePath.join(partial, "onnx", "model.onnx"))
      const embed = yield* LocalModels.transformersEmbedding({ modelDir: partial })
      const noWeights = (yield* Effect.flip(embedTexts(embed, ["hello"]))) as ModelError.ModelError
      assert.strictEqual(noWeights.reason, "ModelNotFound")
      assert.strictEqual(noWeights.path, partial)
      assert.include(noWeights.message, `Model directory ${partial} is missing onnx/model.onnx`)
    })
  )
})
