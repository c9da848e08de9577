import { assert, describe, it } from "@effect/vitest"
import { Column, type Fn, Pool, Table } from "@tessera/core"
import { Database } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { Effect, Exit } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import * as Image from "../src/Image.ts"
import * as MediaStore from "../src/MediaStore.ts"

// Fixtures, generated once per file: solid colours and a gradient of known sizes,
// a file of random bytes named .jpg, a truncated JPEG and a path that does not exist.
const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-image-test-"))
const home = NodePath.join(dir, "home")
const fx = {
  red: NodePath.join(dir, "red-200x100.png"),
  blue: NodePath.join(dir, "blue-200x100.png"),
  photo: NodePath.join(dir, "gradient-320x240.jpg"),
  alpha: NodePath.join(dir, "alpha-50x40.png"),
  random: NodePath.join(dir, "random.jpg"),
  truncated: NodePath.join(dir, "truncated.jpg"),
  missing: NodePath.join(dir, "missing.jpg")
}

const solid = (width: number, height: number, r: number, g: number, b: number) =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } })

const gradient = (width: number, height: number) => {
  const data = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      data[i] = Math.round((x / (width - 1)) * 255)
      data[i + 1] = Math.round((y / (height - 1)) * 255)
      data[i + 2] = 128
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } })
}

beforeAll(async () => {
  await solid(200, 100, 255, 0, 0).png().toFile(fx.red)
  await solid(200, 100, 0, 0, 255).png().toFile(fx.blue)
  await gradient(320, 240).jpeg({ quality: 90 }).toFile(fx.photo)
  await sharp({ create: { width: 50, height: 40, channels: 4, background: { r: 0, g: 255, b: 0, alpha: 0.5 } } })
    .png()
    .toFile(fx.alpha)
  NodeFs.writeFileSync(fx.random, Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7919 + 13) % 251)))
  const jpeg = NodeFs.readFileSync(fx.photo)
  NodeFs.writeFileSync(fx.truncated, jpeg.subarray(0, Math.floor(jpeg.length / 3)))
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

const testPool = new Pool.Pool("image-test")

/** Invokes a function on one row of named arguments, as the engine does. */
const call = <P extends Record<string, Column.Any>, R>(fn: Fn.Fn<P, R>, args: Record<string, unknown>) =>
  fn.definition.invoke([fn.definition.params.map((p) => args[p.name] ?? null)]).pipe(
    Effect.map((results) => results[0] as R),
    Effect.provideService(Pool.CurrentPool, testPool),
    Effect.provide(MediaStore.layer(home))
  )

const info = (path: string) => Effect.promise(() => sharp(path).metadata())
const pixel = (path: string, x: number, y: number) =>
  Effect.promise(async () => {
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true })
    const i = (y * info.width + x) * info.channels
    return Array.from(data.subarray(i, i + info.channels))
  })

const inStore = (path: string) => {
  assert.isTrue(path.startsWith(NodePath.join(home, "media") + NodePath.sep), `${path} is not in the media store`)
  assert.isTrue(NodeFs.existsSync(path), `${path} does not exist`)
}

const failure = <A>(effect: Effect.Effect<A, unknown>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(effect)
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    assert.isDefined(error, "expected a typed failure")
    return (error as { error: MediaStore.MediaError }).error
  })

describe("Image functions", () => {
  it.effect("metadata: width, height, format, channels and mode", () =>
    Effect.gen(function* () {
      const m = yield* call(Image.functions.metadata, { image: fx.photo })
      assert.deepStrictEqual(m, { width: 320, height: 240, format: "jpeg", channels: 3, mode: "RGB", hasAlpha: false })
      const a = yield* call(Image.functions.metadata, { image: fx.alpha })
      assert.deepStrictEqual(a, { width: 50, height: 40, format: "png", channels: 4, mode: "RGBA", hasAlpha: true })
    })
  )

  it.effect("resize: exact box with fill, aspect kept with one side, same format as the input", () =>
    Effect.gen(function* () {
      const out = yield* call(Image.functions.resize, { image: fx.photo, width: 64, height: 64, fit: "fill" })
      inStore(out)
      assert.isTrue(out.endsWith(".jpg"))
      const m = yield* info(out)
      assert.deepStrictEqual([m.width, m.height, m.format], [64, 64, "jpeg"])
      const half = yield* call(Image.functions.resize, { image: fx.red, width: 100 })
      const h = yield* info(half)
      assert.deepStrictEqual([h.width, h.height, h.format], [100, 50, "png"])
    })
  )

  it.effect("resize: the same output twice is one file (content addressed)", () =>
    Effect.gen(function* () {
      const a = yield* call(Image.functions.resize, { image: fx.red, width: 20, height: 20 })
      const b = yield* call(Image.functions.resize, { image: fx.red, width: 20, height: 20 })
      assert.strictEqual(a, b)
      const c = yield* call(Image.functions.resize, { image: fx.blue, width: 20, height: 20 })
      assert.notStrictEqual(a, c)
    })
  )

  it.effect("crop: the region's size and pixels; a region outside the image is InvalidArgument", () =>
    Effect.gen(function* () {
      const out = yield* call(Image.functions.crop, { image: fx.photo, left: 300, top: 0, width: 20, height: 10 })
      const m = yield* info(out)
      assert.deepStrictEqual([m.width, m.height], [20, 10])
      // Right edge of the gradient: red near 255.
      const [r] = yield* pixel(out, 19, 0)
      assert.isAtLeast(r!, 240)
      const error = yield* failure(
        call(Image.functions.crop, { image: fx.photo, left: 310, top: 0, width: 20, height: 10 })
      )
      assert.strictEqual(error.reason, "InvalidArgument")
      assert.include(error.message, fx.photo)
    })
  )

  it.effect("rotate 90 swaps width and height; flip and flop mirror the gradient", () =>
    Effect.gen(function* () {
      const rotated = yield* info(yield* call(Image.functions.rotate, { image: fx.photo, degrees: 90 }))
      assert.deepStrictEqual([rotated.width, rotated.height], [240, 320])
      const flopped = yield* call(Image.functions.flop, { image: fx.photo })
      const [leftRed] = yield* pixel(flopped, 0, 120)
      assert.isAtLeast(leftRed!, 240)
      const flipped = yield* call(Image.functions.flip, { image: fx.photo })
      const [, topGreen] = yield* pixel(flipped, 160, 0)
      assert.isAtLeast(topGreen!, 240)
    })
  )

  it.effect("convert: format and colour mode", () =>
    Effect.gen(function* () {
      const webp = yield* call(Image.functions.convert, { image: fx.photo, format: "webp" })
      assert.isTrue(webp.endsWith(".webp"))
      assert.strictEqual((yield* info(webp)).format, "webp")
      const gray = yield* call(Image.functions.convert, { image: fx.red, format: "jpeg", mode: "L" })
      const g = yield* info(gray)
      assert.deepStrictEqual([g.format, g.channels], ["jpeg", 1])
      const rgb = yield* call(Image.functions.convert, { image: fx.alpha, mode: "RGB" })
      assert.strictEqual((yield* info(rgb)).channels, 3)
      const error = yield* failure(call(Image.functions.convert, { image: fx.photo, format: "bmp" }))
      assert.strictEqual(error.reason, "InvalidArgument")
    })
  )

  it.effect("thumbnail: fits within size, keeps aspect, never enlarges", () =>
    Effect.gen(function* () {
      const t = yield* info(yield* call(Image.functions.thumbnail, { image: fx.photo, size: 64 }))
      assert.deepStrictEqual([t.width, t.height], [64, 48])
      const small = yield* info(yield* call(Image.functions.thumbnail, { image: fx.alpha, size: 500 }))
      assert.deepStrictEqual([small.width, small.height], [50, 40])
    })
  )

  it.effect("grayscale: one channel, luminance of pure red", () =>
    Effect.gen(function* () {
      const out = yield* call(Image.functions.grayscale, { image: fx.red })
      const m = yield* info(out)
      assert.strictEqual(m.channels, 1)
      const [v] = yield* pixel(out, 10, 10)
      // libvips takes luminance in linear light: Y(red) = 0.2126, which is 127 in sRGB.
      assert.approximately(v!, 127, 2)
    })
  )

  it.effect("blend: red and blue at opacity 0.5 give purple", () =>
    Effect.gen(function* () {
      const out = yield* call(Image.functions.blend, { image: fx.red, overlay: fx.blue, opacity: 0.5 })
      const m = yield* info(out)
      assert.deepStrictEqual([m.width, m.height], [200, 100])
      const [r, g, b] = yield* pixel(out, 100, 50)
      assert.approximately(r!, 128, 3)
      assert.strictEqual(g, 0)
      assert.approximately(b!, 128, 3)
      const none = yield* call(Image.functions.blend, { image: fx.red, overlay: fx.blue, opacity: 0 })
      assert.deepStrictEqual(yield* pixel(none, 5, 5), [255, 0, 0])
    })
  )

  it.effect("toBase64 and toDataUrl: the file's bytes, a data URL with its MIME type", () =>
    Effect.gen(function* () {
      const b64 = yield* call(Image.functions.toBase64, { image: fx.red })
      assert.strictEqual(b64, NodeFs.readFileSync(fx.red).toString("base64"))
      const url = yield* call(Image.functions.toDataUrl, { image: fx.photo })
      assert.isTrue(url.startsWith("data:image/jpeg;base64,"))
      const decoded = Buffer.from(url.slice("data:image/jpeg;base64,".length), "base64")
      assert.deepStrictEqual(decoded, NodeFs.readFileSync(fx.photo))
      const png = yield* call(Image.functions.toDataUrl, { image: fx.photo, format: "png" })
      assert.isTrue(png.startsWith("data:image/png;base64,"))
    })
  )

  it.effect("a corrupt, truncated or missing input fails with a MediaError naming the file", () =>
    Effect.gen(function* () {
      for (const fn of [Image.functions.thumbnail, Image.functions.metadata, Image.functions.toDataUrl] as const) {
        const random = yield* failure(call(fn as Fn.Fn<any, unknown>, { image: fx.random, size: 10 }))
        assert.strictEqual(random._tag, "MediaError")
        assert.strictEqual(random.reason, "InvalidFormat")
        assert.strictEqual(random.path, fx.random)
        assert.include(random.message, fx.random)
      }
      const truncated = yield* failure(call(Image.functions.thumbnail, { image: fx.truncated, size: 10 }))
      assert.strictEqual(truncated.reason, "InvalidFormat")
      assert.include(truncated.message, fx.truncated)
      const missing = yield* failure(call(Image.functions.resize, { image: fx.missing, width: 10 }))
      assert.strictEqual(missing.reason, "NotFound")
      assert.include(missing.message, fx.missing)
    })
  )

  it("builders: Image.resize(expr, options) is a call of image.resize with literal options", () => {
    const expr = Image.resize(fx.photo, { width: 224, height: 224 })
    const node = expr.node
    assert.strictEqual(node._tag, "Call")
    if (node._tag !== "Call") return
    assert.strictEqual(node.fn, "image.resize")
    assert.deepStrictEqual(
      node.args.map((a) => (a._tag === "Literal" ? a.value : a._tag)),
      [fx.photo, 224, 224, null]
    )
    assert.strictEqual(Image.thumbnail(fx.photo, { size: 64 }).node._tag, "Call")
  })
})

const images = () => [
  { name: "photo", img: fx.photo },
  { name: "random", img: fx.random },
  { name: "red", img: fx.red },
  { name: "truncated", img: fx.truncated },
  { name: "blue", img: fx.blue }
]

Harness.forEachBackend("Image functions in computed columns", (test) => {
  test('onError "record": 3 thumbnails in the media store, 2 errors naming the files', () =>
    Effect.gen(function* () {
      const { home } = yield* Database.Database
      const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
      const t2 = yield* t.addComputedColumn("thumb", Image.thumbnail(t.c.img, { size: 64 }), { onError: "record" })
      yield* t2.insert(images())
      const rows = yield* t2
        .select((c) => ({ name: c.name, thumb: c.thumb, type: c.thumb.errorType, message: c.thumb.errorMessage }))
        .orderBy("name")
        .collect()
      assert.strictEqual(rows.length, 5)
      const media = NodePath.join(home, "media") + NodePath.sep
      for (const r of rows) {
        if (r.name === "random" || r.name === "truncated") {
          assert.isNull(r.thumb)
          assert.strictEqual(r.type, "MediaError")
          assert.include(r.message, r.name === "random" ? fx.random : fx.truncated)
          continue
        }
        assert.isNull(r.type)
        assert.isTrue(r.thumb!.uri.startsWith(media), `${r.thumb} is not under ${media}`)
        const m = yield* info(r.thumb!.uri)
        assert.strictEqual(Math.max(m.width, m.height), 64)
      }
      // The errors are queryable.
      assert.strictEqual(yield* t2.where((c) => c.thumb.errorType.isNotNull()).count(), 2)
    }).pipe(withStoreAtHome))

  test('onError "abort": a corrupt image fails the insert and nothing is written', () =>
    Effect.gen(function* () {
      const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
      const t2 = yield* t.addComputedColumn("thumb", Image.thumbnail(t.c.img, { size: 64 }))
      const exit = yield* Effect.exit(t2.insert(images()))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "random.jpg")
      assert.strictEqual(yield* t2.count(), 0)

      // A backfill that fails on a corrupt image does not add the column.
      const u = yield* Table.create("more", { name: Column.String, img: Column.Image })
      yield* u.insert(images())
      const added = yield* Effect.exit(u.addComputedColumn("thumb", Image.thumbnail(u.c.img, { size: 32 })))
      assert.isTrue(Exit.isFailure(added))
      const reopened = yield* Table.get("more")
      assert.deepStrictEqual(
        (yield* reopened.describe()).map((c) => c.name),
        ["name", "img"]
      )
      assert.strictEqual(yield* reopened.count(), 5)
    }).pipe(withStoreAtHome))
})

/** Runs `body` with the media store under the test database's home. */
function withStoreAtHome<A, E, R>(body: Effect.Effect<A, E, R>) {
  return Effect.flatMap(Effect.service(Database.Database), ({ home }) =>
    body.pipe(Effect.provide(MediaStore.layer(home)))
  )
}
