import { assert, describe, it } from "@effect/vitest"
import { Column, Fn, Pool, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import { LocalModels, ModelError, WorkerPool } from "../src/index.ts"

// One function for the file: its batches run on the process-wide pool, whose
// workers load MobileNetV2 once and keep it for every test.
const embed = LocalModels.imageEmbedding()

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-image-embedding-"))
const file = (name: string) => NodePath.join(dir, name)

/** Raw RGB pixels from a function of (x, y), as a sharp image. */
const draw = (size: number, pixel: (x: number, y: number) => readonly [number, number, number]) => {
  const data = Buffer.alloc(size * size * 3)
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) data.set(pixel(x, y), (y * size + x) * 3)
  }
  return sharp(data, { raw: { width: size, height: size, channels: 3 } })
}

let seed = 42
const random = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 2 ** 32
}

const IMAGES = [
  { id: 1, name: "gradient.png", image: () => draw(256, (x, y) => [x, y, 128]) },
  {
    id: 2,
    name: "rings.png",
    image: () =>
      draw(256, (x, y) => (Math.floor(Math.hypot(x - 128, y - 128) / 12) % 2 === 0 ? [250, 250, 250] : [10, 10, 10]))
  },
  {
    id: 3,
    name: "checkers.jpg",
    image: () =>
      draw(256, (x, y) => ((Math.floor(x / 32) + Math.floor(y / 32)) % 2 === 0 ? [230, 200, 0] : [0, 40, 160]))
  },
  {
    id: 4,
    name: "noise.png",
    image: () => draw(256, () => [random() * 255, random() * 255, random() * 255])
  },
  {
    id: 5,
    name: "stripes.jpg",
    image: () => draw(256, (x, y) => (Math.floor((x + y) / 16) % 2 === 0 ? [200, 30, 30] : [240, 240, 240]))
  },
  {
    id: 6,
    name: "disk.png",
    image: () =>
      sharp(
        Buffer.from(
          `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect width="256" height="256" fill="#1040a0"/><circle cx="128" cy="128" r="80" fill="#f03020"/></svg>`
        )
      )
  }
]

beforeAll(async () => {
  for (const { name, image } of IMAGES) await image().toFile(file(name))
  // A smaller, recompressed copy of the rings.
  await sharp(file("rings.png")).resize(180, 180).jpeg({ quality: 70 }).toFile(file("rings-small.jpg"))
  NodeFs.writeFileSync(file("not-an-image.png"), "this is text, not a PNG")
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

const testPool = new Pool.Pool("image-embedding-test")

/** Embeds images as the engine does (one batch), outside any table. */
const embedImages = (paths: ReadonlyArray<string>) =>
  embed.definition.invoke(paths.map((path) => [path])).pipe(
    Effect.map((vectors) => vectors as ReadonlyArray<Float32Array>),
    Effect.provideService(Pool.CurrentPool, testPool)
  )

const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * b[i]!, 0)

describe("LocalModels.imageEmbedding", () => {
  it.live("gives 1280-d unit vectors, the same each time; a resized copy is closest to its original", () =>
    Effect.gen(function* () {
      const originals = IMAGES.map((i) => file(i.name))
      const vectors = yield* embedImages([...originals, `file://${file("rings-small.jpg")}`])
      for (const v of vectors) {
        assert.strictEqual(v.length, LocalModels.IMAGE_DIMENSIONS)
        assert.approximately(Math.hypot(...v), 1, 1e-5)
      }
      const again = yield* embedImages([originals[3]!])
      for (let j = 0; j < again[0]!.length; j++) assert.approximately(again[0]![j]!, vectors[3]![j]!, 1e-6)
      const copy = vectors[originals.length]!
      const scores = originals.map((_, i) => dot(copy, vectors[i]!))
      assert.strictEqual(scores.indexOf(Math.max(...scores)), 1, `scores ${scores.map((s) => s.toFixed(3))}`)
    })
  )

  it.live(
    "a missing or undecodable image fails its own row with a ModelError naming the file; the batch's others are embedded",
    () =>
      Effect.gen(function* () {
        const results = yield* embed.definition
          .invoke([[file("gradient.png")], [file("nowhere.png")], [file("not-an-image.png")], [file("rings.png")]])
          .pipe(Effect.provideService(Pool.CurrentPool, testPool))
        assert.strictEqual(results.length, 4)
        assert.instanceOf(results[0], Float32Array)
        assert.instanceOf(results[3], Float32Array)
        const [alone] = yield* embedImages([file("rings.png")])
        assert.deepStrictEqual(Array.from(results[3] as Float32Array), Array.from(alone!), "the same vector as alone")
        const missing = (results[1] as Fn.RowFailure).error as ModelError.ModelError
        assert.instanceOf(results[1], Fn.RowFailure)
        assert.instanceOf(missing, ModelError.ModelError)
        assert.strictEqual(missing.reason, "InputNotFound")
        assert.strictEqual(missing.path, file("nowhere.png"))
        assert.include(missing.message, file("nowhere.png"))
        assert.instanceOf(results[2], Fn.RowFailure)
        const corrupt = (results[2] as Fn.RowFailure).error as ModelError.ModelError
        assert.strictEqual(corrupt.reason, "InvalidInput")
        assert.strictEqual(corrupt.path, file("not-an-image.png"))
        assert.include(corrupt.message, `Cannot decode image ${file("not-an-image.png")}`)
        // A batch of missing images only: each row fails alone, and no model runs.
        const none = yield* embed.definition
          .invoke([[file("gone-1.png")], [file("gone-2.png")]])
          .pipe(Effect.provideService(Pool.CurrentPool, testPool))
        assert.deepStrictEqual(
          none.map((r) => ((r as Fn.RowFailure).error as ModelError.ModelError).reason),
          ["InputNotFound", "InputNotFound"]
        )
      })
  )

  it.live("the WebAssembly backend computes what tfjs's reference CPU kernels compute", () =>
    Effect.gen(function* () {
      const reference = WorkerPool.model(
        "mobilenet-v2 (cpu)",
        new URL("../src/internal/models/MobileNetV2.ts", import.meta.url),
        { backend: "cpu" }
      )
      const pool = yield* WorkerPool.make({ size: 1 })
      const [cpu] = yield* WorkerPool.embed(reference, [file("disk.png")]).pipe(
        Effect.provideService(WorkerPool.Current, pool)
      )
      const [wasm] = yield* embedImages([file("disk.png")])
      let maxDiff = 0
      for (let j = 0; j < cpu!.length; j++) maxDiff = Math.max(maxDiff, Math.abs(cpu![j]! - wasm![j]!))
      assert.isBelow(maxDiff, 1e-4)
    }).pipe(Effect.scoped)
  )
})

Harness.forEachBackend("LocalModels.imageEmbedding as an embedding index", (test) => {
  test("for each metric, querying with one of the table's images finds that image first", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("pictures", { id: Column.Int, img: Column.Image })
      yield* t.insert(IMAGES.map((i) => ({ id: i.id, img: file(i.name) })))
      for (const metric of ["cosine", "ip", "l2"] as const) {
        const index = `img_${metric}`
        const indexed = yield* t.addEmbeddingIndex("img", { embed, metric, name: index })
        for (const { id, name } of IMAGES) {
          const rows = yield* indexed
            .select((c) => ({ id: c.id, score: c.img.similarity(file(name), { index }) }))
            .orderBy("score", metric === "l2" ? "asc" : "desc")
            .limit(2)
            .collect()
          assert.strictEqual(rows[0]!.id, id, `${metric}: ${name}`)
        }
        yield* indexed.dropEmbeddingIndex(index)
      }
    }))

  test("a computed column over a batch with a missing image: that row records the error, the others get vectors", () =>
    Effect.gen(function* () {
      const copies = IMAGES.slice(0, 4).map((i) => {
        const copy = file(`copy-${i.name}`)
        NodeFs.copyFileSync(file(i.name), copy)
        return { id: i.id, img: copy }
      })
      const t = yield* Table.create("photos", { id: Column.Int, img: Column.Image })
      yield* t.insert(copies)
      // Gone after the insert checked it: the function meets it missing, in a batch of 4.
      NodeFs.rmSync(copies[2]!.img)
      const withVectors = yield* t.addComputedColumn("vec", embed({ image: t.c.img }), { onError: "record" })
      const rows = yield* withVectors
        .select((c) => ({ id: c.id, vec: c.vec, errorType: c.vec.errorType, errorMessage: c.vec.errorMessage }))
        .orderBy("id")
        .collect()
      assert.deepStrictEqual(
        rows.map((r) => [r.id, r.vec?.length ?? null, r.errorType]),
        [
          [1, LocalModels.IMAGE_DIMENSIONS, null],
          [2, LocalModels.IMAGE_DIMENSIONS, null],
          [3, null, "ModelError"],
          [4, LocalModels.IMAGE_DIMENSIONS, null]
        ]
      )
      assert.include(rows[2]!.errorMessage!, copies[2]!.img)
    }))
})
