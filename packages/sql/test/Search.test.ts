import { assert } from "@effect/vitest"
import { Column, Fn, Table } from "@tessera/core"
import { Effect } from "effect"
import { Harness } from "../src/testing/index.ts"
import { cosine, randomVectors } from "./vectors.ts"

let unique = 0

/** A deterministic bag-of-words embedding: texts sharing words are close. */
const vocabulary = ["cat", "dog", "pet", "car", "road", "engine", "sea", "fish", "boat", "sun"]
const bagOfWords = (text: string): Float32Array => {
  const words = text.toLowerCase().split(/\W+/)
  const v = Float32Array.from(vocabulary, (w) => words.filter((x) => x.startsWith(w)).length)
  v[vocabulary.length - 1]! += 0.01 // never the zero vector
  return v
}

Harness.forEachBackend("Embedding indexes and similarity", (test) => {
  test("a text index ranks by meaning, in SQL and in the engine alike, and follows updates and reverts", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      const embed = Fn.make({
        name: `bow_${process.pid}_${unique++}`,
        params: { text: Column.String },
        returns: Column.Vector(10),
        run: ({ text }) => {
          calls.n++
          return bagOfWords(text)
        }
      })
      const t = yield* Table.create("sentences", { id: Column.Int, text: Column.String })
      yield* t.insert([
        { id: 1, text: "The cat and the dog are pets" },
        { id: 2, text: "A car on the road with a big engine" },
        { id: 3, text: "Fish swim in the sea near the boat" },
        { id: 4, text: "The sun is bright" }
      ])
      const indexed = yield* t.addEmbeddingIndex("text", { embed, metric: "cosine" })
      assert.strictEqual(calls.n, 4)
      assert.deepStrictEqual(
        (yield* indexed.describe()).map((c) => c.name),
        ["id", "text"],
        "the index's vectors are hidden"
      )
      const search = (q: string) =>
        indexed
          .select((c) => ({ id: c.id, score: c.text.similarity(q) }))
          .orderBy("score", "desc")
          .limit(2)
      const top = yield* search("my dog and my cat").collect()
      assert.strictEqual(top[0]!.id, 1)
      assert.isAbove(top[0]!.score, top[1]!.score)
      assert.strictEqual(calls.n, 5, "the query is embedded once")
      const engine = yield* search("my dog and my cat").inEngine().collect()
      assert.deepStrictEqual(
        engine.map((r) => r.id),
        top.map((r) => r.id)
      )
      for (const [i, r] of engine.entries()) assert.approximately(r.score, top[i]!.score, 1e-3)
      // Combined with a filter.
      const filtered = yield* indexed
        .where((c) => c.id.ne(1))
        .orderBy((c) => c.text.similarity("a pet cat"), "desc")
        .limit(1)
        .collect()
      assert.notStrictEqual(filtered[0]!.id, 1)

      yield* indexed.update({ text: "fast car engine on the road" }, (c) => c.id.eq(4))
      assert.strictEqual((yield* search("engine road car").collect())[0]!.id, 2)
      const both = yield* search("engine road car").collect()
      assert.sameMembers(
        both.map((r) => r.id),
        [2, 4]
      )
      const scoreOf4 = indexed
        .where((c) => c.id.eq(4))
        .select((c) => ({ score: c.text.similarity("engine road car") }))
        .collect()
      assert.isAbove((yield* scoreOf4)[0]!.score, 0.9)
      yield* indexed.revert()
      assert.isBelow((yield* scoreOf4)[0]!.score, 0.1, "after revert, the old text's vector again")
    }))

  test("precomputed vectors: each metric finds the row's own vector first, matching an exact scan", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("vecs", { id: Column.Int, v: Column.Vector(8) })
      const vectors = randomVectors(200, 8, 3).map((v) => Array.from(v))
      yield* t.insert(vectors.map((v, id) => ({ id, v })))
      for (const metric of ["cosine", "ip", "l2"] as const) {
        const indexed = yield* t.addEmbeddingIndex("v", { metric, precision: "vector", name: `v_${metric}` })
        const probe = vectors[17]!
        const rows = yield* indexed
          .select((c) => ({ id: c.id, score: c.v.similarity(probe, { index: `v_${metric}` }) }))
          .orderBy("score", metric === "l2" ? "asc" : "desc")
          .limit(5)
          .collect()
        if (metric !== "ip") assert.strictEqual(rows[0]!.id, 17, metric)
        const exact = yield* indexed
          .select((c) => ({ id: c.id, score: c.v.similarity(probe, { index: `v_${metric}` }) }))
          .orderBy("score", metric === "l2" ? "asc" : "desc")
          .limit(5)
          .inEngine()
          .collect()
        assert.deepStrictEqual(
          rows.map((r) => r.id),
          exact.map((r) => r.id),
          metric
        )
        yield* indexed.dropEmbeddingIndex(`v_${metric}`)
      }
      const ambiguous = yield* t.addEmbeddingIndex("v", { name: "a" }).pipe(
        Effect.flatMap((x) => x.addEmbeddingIndex("v", { name: "b" })),
        Effect.flatMap((x) => Effect.flip(x.select((c) => ({ s: c.v.similarity(vectors[0]!) })).collect()))
      )
      assert.include(ambiguous.message, "several embedding indexes")
    }))

  test("full-text search with a text index, and a hybrid query fusing keyword and meaning", () =>
    Effect.gen(function* () {
      const embed = Fn.make({
        name: `bow2_${process.pid}_${unique++}`,
        params: { text: Column.String },
        returns: Column.Vector(10),
        run: ({ text }) => bagOfWords(text)
      })
      const t = yield* Table.create("articles", { id: Column.Int, body: Column.String })
      yield* t.insert([
        { id: 1, body: "Zanzibar travel notes and itineraries" },
        { id: 2, body: "My cat and my dog, two pets at home" },
        { id: 3, body: "Engines, roads and cars" },
        { id: 4, body: "Boats on the sea" }
      ])
      const withText = yield* t.addTextIndex("body", { language: "english" })
      const indexed = yield* withText.addEmbeddingIndex("body", { embed })
      const matched = yield* indexed
        .where((c) => c.body.matches("zanzibar itinerary"))
        .select((c) => ({ id: c.id, rank: c.body.textRank("zanzibar itinerary") }))
        .collect()
      assert.deepStrictEqual(
        matched.map((r) => r.id),
        [1]
      )
      assert.isAbove(matched[0]!.rank, 0)
      // "zanzibar" matches article 1 only by keyword; "kitten pets" matches 2 only by meaning (the pet words).
      const fused = yield* Table.hybridSearch(indexed, {
        text: { column: "body", query: "zanzibar" },
        vector: { column: "body", query: "pets cat dog" },
        k: 3
      })
      const top = fused.slice(0, 2).map((r) => r.id)
      assert.sameMembers(top, [1, 2])
      assert.isTrue(fused.every((r) => r.score > 0))
      const meta = yield* indexed.load
      assert.sameMembers(
        (meta.indexes ?? []).map((i) => [i.name, i.kind ?? "embedding"] as const).map(([n, k]) => `${n}:${k}`),
        ["body_text:text", "body_idx:embedding"]
      )
    }))

  test("embedding() exposes the stored vectors; a Vector column's index embeds text queries with textEmbed", () =>
    Effect.gen(function* () {
      const embed = Fn.make({
        name: `bow3_${process.pid}_${unique++}`,
        params: { text: Column.String },
        returns: Column.Vector(10),
        run: ({ text }) => bagOfWords(text)
      })
      const t = yield* Table.create("exposed", { id: Column.Int, text: Column.String })
      yield* t.insert([
        { id: 1, text: "cat dog" },
        { id: 2, text: "car road" }
      ])
      const indexed = yield* t.addEmbeddingIndex("text", { embed, name: "bow" })
      const rows = yield* indexed
        .select((c) => ({ id: c.id, v: c.text.embedding() }))
        .orderBy("id")
        .collect()
      assert.deepStrictEqual(
        rows.map((r) => Array.from(r.v!)),
        [Array.from(bagOfWords("cat dog")), Array.from(bagOfWords("car road"))]
      )
      const inEngine = yield* indexed
        .select((c) => ({ v: c.text.embedding({ index: "bow" }) }))
        .where((c) => c.id.eq(2))
        .inEngine()
        .collect()
      assert.deepStrictEqual(Array.from(inEngine[0]!.v!), Array.from(bagOfWords("car road")))
      const missing = yield* Effect.flip(indexed.select((c) => ({ v: c.text.embedding({ index: "nope" }) })).collect())
      assert.include(missing.message, 'no embedding index named "nope"')

      // Precomputed vectors from the same model, with a text function for queries.
      const v = yield* Table.create("precomputed", { id: Column.Int, v: Column.Vector(10) })
      yield* v.insert([
        { id: 1, v: bagOfWords("fish sea boat") },
        { id: 2, v: bagOfWords("sun") }
      ])
      const byText = yield* v.addEmbeddingIndex("v", { textEmbed: embed })
      const top = yield* byText
        .select((c) => ({ id: c.id, s: c.v.similarity("a boat at sea") }))
        .orderBy("s", "desc")
        .limit(1)
        .collect()
      assert.strictEqual(top[0]!.id, 1)
      const noImage = yield* Effect.flip(
        byText.select((c) => ({ s: c.v.similarity("x.png", { modality: "image" }) })).collect()
      )
      assert.include(noImage.message, "cannot embed an image query")
      const wrongDim = yield* Effect.flip(
        v.addEmbeddingIndex("v", {
          name: "bad",
          textEmbed: Fn.make({
            name: `dim3_${process.pid}_${unique++}`,
            params: { text: Column.String },
            returns: Column.Vector(3),
            run: () => new Float32Array(3)
          })
        })
      )
      assert.include(wrongDim.message, "returns Vector(3); the index's vectors have 10")
    }))

  test("an embedding index on a view follows the base: new base rows are embedded and found, deleted ones go", () =>
    Effect.gen(function* () {
      const calls = { n: 0 }
      const embed = Fn.make({
        name: `bow4_${process.pid}_${unique++}`,
        params: { text: Column.String },
        returns: Column.Vector(10),
        run: ({ text }) => {
          calls.n++
          return bagOfWords(text)
        }
      })
      const base = yield* Table.create("notes", { id: Column.Int, text: Column.String, public: Column.Bool })
      yield* base.insert([
        { id: 1, text: "cat and dog", public: true },
        { id: 2, text: "fish in the sea", public: false }
      ])
      const view = yield* Table.createView(
        "public_notes",
        base.where((c) => c.public)
      )
      const indexed = yield* view.addEmbeddingIndex("text", { embed })
      assert.strictEqual(calls.n, 1, "only the view's row is embedded")
      yield* base.insert([
        { id: 3, text: "a boat on the sea with fish", public: true },
        { id: 4, text: "a sea boat", public: false }
      ])
      assert.strictEqual(calls.n, 2, "the new public row, and only it")
      const search = indexed.select((c) => ({ id: c.id, s: c.text.similarity("fish sea boat") })).orderBy("s", "desc")
      assert.deepStrictEqual(
        (yield* search.collect()).map((r) => r.id),
        [3, 1]
      )
      yield* base.delete((c) => c.id.eq(3))
      assert.deepStrictEqual(
        (yield* search.collect()).map((r) => r.id),
        [1]
      )
    }))

  test("a filtered similarity query fills its limit when enough rows match (the index scan goes on past the filter)", () =>
    Effect.gen(function* () {
      const vectors = randomVectors(3000, 8, 5)
      const t = yield* Table.create("filtered", { id: Column.Int, tag: Column.String, v: Column.Vector(8) })
      // One row in 60 is rare: far fewer than HNSW's first 40 candidates are likely to be.
      yield* t.insert(vectors.map((v, id) => ({ id, tag: id % 60 === 0 ? "rare" : "common", v })))
      const indexed = yield* t.addEmbeddingIndex("v", { metric: "l2", precision: "vector" })
      const [probe] = randomVectors(1, 8, 6) as [Float32Array]
      const rows = yield* indexed
        .where((c) => c.tag.eq("rare"))
        .select((c) => ({ id: c.id, distance: c.v.similarity(probe) }))
        .orderBy("distance", "asc")
        .limit(10)
        .collect()
      const exact = vectors
        .map((v, id) => ({ id, d: Math.hypot(...v.map((x, i) => x - probe[i]!)) }))
        .filter((r) => r.id % 60 === 0)
        .sort((a, b) => a.d - b.d)
        .slice(0, 10)
      assert.deepStrictEqual(
        rows.map((r) => r.id),
        exact.map((r) => r.id)
      )
    }))

  test("efSearch widens one query's HNSW search: recall against an exact scan rises", () =>
    Effect.gen(function* () {
      const vectors = randomVectors(2000, 64, 21)
      const probes = randomVectors(20, 64, 22)
      const t = yield* Table.create("breadth", { id: Column.Int, v: Column.Vector(64) })
      yield* t.insert(vectors.map((v, id) => ({ id, v })))
      const indexed = yield* t.addEmbeddingIndex("v", { metric: "cosine", precision: "vector" })
      const recall = (efSearch: number) =>
        Effect.gen(function* () {
          let hits = 0
          for (const probe of probes) {
            const exact = vectors
              .map((v, id) => ({ id, score: cosine(v, probe) }))
              .sort((a, b) => b.score - a.score)
              .slice(0, 10)
              .map((r) => r.id)
            const rows = yield* indexed
              .select((c) => ({ id: c.id }))
              .orderBy((c) => c.v.similarity(probe, { efSearch }), "desc")
              .limit(10)
              .collect()
            assert.strictEqual(rows.length, 10)
            hits += rows.filter((r) => exact.includes(r.id)).length
          }
          return hits / (probes.length * 10)
        })
      const narrow = yield* recall(4)
      const wide = yield* recall(500)
      assert.isAtLeast(wide, 0.97, `recall at efSearch 500: ${wide}`)
      assert.isAbove(wide, narrow + 0.1, `recall at efSearch 4: ${narrow}, at 500: ${wide}`)
      assert.throws(() => t.c.v.similarity(probes[0]!, { efSearch: 0 }), /efSearch must be an integer from 1 to 1000/)
    }))
})
