import { assert } from "@effect/vitest"
import { Column, Fn, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"

// A toy joint text-image space (what CLIP gives): an image is its mean colour,
// a text the colours it names. Each image is a solid colour with a little noise.
const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-image-search-"))
const colours = {
  red: [230, 20, 20],
  green: [20, 200, 30],
  blue: [20, 30, 220],
  yellow: [230, 220, 20],
  purple: [140, 20, 160],
  grey: [128, 128, 128]
} as const
type Colour = keyof typeof colours
const pathOf = (c: Colour) => NodePath.join(dir, `${c}.png`)

beforeAll(async () => {
  for (const [name, [r, g, b]] of Object.entries(colours)) {
    const data = Buffer.alloc(48 * 32 * 3)
    for (let i = 0; i < data.length; i += 3) {
      const noise = ((i * 7919) % 17) - 8
      data[i] = Math.max(0, Math.min(255, r + noise))
      data[i + 1] = Math.max(0, Math.min(255, g - noise))
      data[i + 2] = Math.max(0, Math.min(255, b + noise))
    }
    await sharp(data, { raw: { width: 48, height: 32, channels: 3 } })
      .png()
      .toFile(pathOf(name as Colour))
  }
})
afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

let unique = 0

const counters = { image: 0, text: 0 }
const imageEmbed = Fn.effect({
  name: `mean_colour_${process.pid}_${unique++}`,
  params: { image: Column.Image },
  returns: Column.Vector(3),
  run: ({ image }) =>
    Effect.promise(async () => {
      counters.image++
      const stats = await sharp(image).stats()
      return Float32Array.from(stats.channels.slice(0, 3), (c) => c.mean / 255)
    })
})
const textEmbed = Fn.make({
  name: `colour_words_${process.pid}_${unique++}`,
  params: { text: Column.String },
  returns: Column.Vector(3),
  run: ({ text }) => {
    counters.text++
    const named = (Object.keys(colours) as Array<Colour>).filter((c) => text.toLowerCase().includes(c))
    const v = new Float32Array(3).fill(0.01)
    for (const c of named) for (let i = 0; i < 3; i++) v[i]! += colours[c][i]! / 255
    return v
  }
})

Harness.forEachBackend("Image embedding indexes", (test) => {
  test("each metric finds an image's own row first; a text query goes through the text function", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("swatches", { name: Column.String, img: Column.Image })
      yield* t.insert((Object.keys(colours) as Array<Colour>).map((name) => ({ name, img: pathOf(name) })))
      let indexed = t
      for (const metric of ["cosine", "ip", "l2"] as const) {
        indexed = yield* indexed.addEmbeddingIndex("img", {
          imageEmbed,
          textEmbed,
          metric,
          precision: "vector",
          name: `img_${metric}`
        })
      }
      const order = (metric: "cosine" | "ip" | "l2") => (metric === "l2" ? "asc" : "desc")
      for (const metric of ["cosine", "ip", "l2"] as const) {
        for (const name of ["red", "blue", "grey"] as const) {
          // An image query: a string with modality image (or a path when the index had no text function).
          const before = counters.image
          const rows = yield* indexed
            .select((c) => ({
              name: c.name,
              s: c.img.similarity(pathOf(name), { index: `img_${metric}`, modality: "image" })
            }))
            .orderBy("s", order(metric))
            .limit(3)
            .collect()
          if (metric !== "ip") assert.strictEqual(rows[0]!.name, name, `${metric}: ${name}`)
          // Embedded at most once (the result cache already holds the stored image's vector).
          assert.isAtMost(counters.image - before, 1)
        }
        // Under ip, the brightest vector wins rather than the same one: compare with an exact scan instead.
        const exact = yield* indexed
          .select((c) => ({
            name: c.name,
            s: c.img.similarity(pathOf("grey"), { index: `img_${metric}`, modality: "image" })
          }))
          .orderBy("s", order(metric))
          .inEngine()
          .collect()
        const viaIndex = yield* indexed
          .select((c) => ({
            name: c.name,
            s: c.img.similarity(pathOf("grey"), { index: `img_${metric}`, modality: "image" })
          }))
          .orderBy("s", order(metric))
          .collect()
        assert.deepStrictEqual(
          viaIndex.map((r) => r.name),
          exact.map((r) => r.name),
          metric
        )
      }
      const textBefore = counters.text
      const byText = yield* indexed
        .select((c) => ({ name: c.name, s: c.img.similarity("a yellow flower", { index: "img_cosine" }) }))
        .orderBy("s", "desc")
        .limit(1)
        .collect()
      assert.strictEqual(byText[0]!.name, "yellow")
      assert.strictEqual(counters.text - textBefore, 1)
      // The stored image vectors are exposed.
      const vectors = yield* indexed
        .where((c) => c.name.eq("blue"))
        .select((c) => ({ v: c.img.embedding({ index: "img_l2" }) }))
        .collect()
      assert.isAbove(vectors[0]!.v![2]!, 0.8)
      assert.isBelow(vectors[0]!.v![0]!, 0.1)
    }))

  test("an image-only index takes a path string as an image query; a text query is refused", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("swatches2", { name: Column.String, img: Column.Image })
      yield* t.insert([
        { name: "red", img: pathOf("red") },
        { name: "green", img: pathOf("green") }
      ])
      const indexed = yield* t.addEmbeddingIndex("img", { embed: imageEmbed })
      const rows = yield* indexed
        .select((c) => ({ name: c.name, s: c.img.similarity(pathOf("green")) }))
        .orderBy("s", "desc")
        .collect()
      assert.strictEqual(rows[0]!.name, "green")
      const refused = yield* Effect.flip(
        indexed.select((c) => ({ s: c.img.similarity("green", { modality: "text" }) })).collect()
      )
      assert.include(refused.message, "cannot embed a text query")
      const wrong = yield* Effect.flip(t.addEmbeddingIndex("img", { name: "w", embed: textEmbed }))
      assert.include(wrong.message, "must take an Image")
    }))
})
