import { assert, describe, it } from "@effect/vitest"
import { Column, Pool, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import { LocalModels } from "../src/index.ts"

// One function for the file: its batches run on the process-wide pool, whose
// workers load Universal Sentence Encoder once and keep it for every test.
const embed = LocalModels.textEmbedding()

const testPool = new Pool.Pool("text-embedding-test")

/** Embeds texts as the engine does (one batch), outside any table. */
const embedTexts = (texts: ReadonlyArray<string>) =>
  embed.definition.invoke(texts.map((text) => [text])).pipe(
    Effect.map((vectors) => vectors as ReadonlyArray<Float32Array>),
    Effect.provideService(Pool.CurrentPool, testPool)
  )

const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * b[i]!, 0)

const SENTENCES = [
  { id: 1, text: "The cat is sleeping on the sofa." },
  { id: 2, text: "Interest rates were raised by the central bank." },
  { id: 3, text: "She scored the winning goal in the final minute." },
  { id: 4, text: "Preheat the oven before baking the bread." },
  { id: 5, text: "The spacecraft landed safely on Mars." },
  { id: 6, text: "Heavy rain is expected across the region tomorrow." }
]

const PARAPHRASES = [
  { query: "A kitten naps on the couch.", id: 1 },
  { query: "The bank increased borrowing costs.", id: 2 },
  { query: "Her late goal won the match.", id: 3 },
  { query: "Warm up the oven first, then bake the loaf.", id: 4 },
  { query: "A probe touched down on the red planet.", id: 5 },
  { query: "Tomorrow will bring a lot of rain to the area.", id: 6 }
]

describe("LocalModels.textEmbedding", () => {
  it.live("gives 512-d unit vectors, the same for the same text in any batch; a paraphrase is closest", () =>
    Effect.gen(function* () {
      const texts = [...SENTENCES.map((s) => s.text), ...PARAPHRASES.map((p) => p.query)]
      const vectors = yield* embedTexts(texts)
      assert.strictEqual(embed.definition.returns.kind, "Vector")
      for (const v of vectors) {
        assert.strictEqual(v.length, LocalModels.TEXT_DIMENSIONS)
        assert.approximately(Math.hypot(...v), 1, 1e-5)
      }
      const again = yield* embedTexts([...texts].reverse())
      texts.forEach((_, i) => {
        const v = vectors[i]!
        const w = again[texts.length - 1 - i]!
        for (let j = 0; j < v.length; j++) assert.approximately(v[j]!, w[j]!, 1e-6)
      })
      // Each paraphrase is closer to its sentence than to any other sentence.
      PARAPHRASES.forEach((p, i) => {
        const q = vectors[SENTENCES.length + i]!
        const scores = SENTENCES.map((_, j) => dot(q, vectors[j]!))
        assert.strictEqual(scores.indexOf(Math.max(...scores)), p.id - 1, p.query)
      })
    })
  )
})

Harness.forEachBackend("LocalModels.textEmbedding as an embedding index", (test) => {
  test("a paraphrase of a stored sentence ranks it first", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("sentences", { id: Column.Int, text: Column.String })
      yield* t.insert(SENTENCES)
      const indexed = yield* t.addEmbeddingIndex("text", { embed, metric: "cosine" })
      for (const p of PARAPHRASES) {
        const rows = yield* indexed
          .select((c) => ({ id: c.id, score: c.text.similarity(p.query) }))
          .orderBy("score", "desc")
          .limit(3)
          .collect()
        assert.strictEqual(rows[0]!.id, p.id, p.query)
        assert.isAbove(rows[0]!.score, rows[1]!.score)
      }
      // New rows get vectors too, through the same index.
      yield* indexed.insert([{ id: 7, text: "The old piano needs tuning." }])
      const [top] = yield* indexed
        .orderBy((c) => c.text.similarity("Someone should tune that piano."), "desc")
        .limit(1)
        .collect()
      assert.strictEqual(top!.id, 7)
    }))
})
