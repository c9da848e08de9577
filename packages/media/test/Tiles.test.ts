import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Stream } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import * as MediaStore from "../src/MediaStore.ts"
import * as Tiles from "../src/Tiles.ts"

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-tiles-test-"))
const home = NodePath.join(dir, "home")
const fx = {
  photo: NodePath.join(dir, "gradient-100x70.jpg"),
  gray: NodePath.join(dir, "gray-30x30.png")
}

beforeAll(async () => {
  const data = Buffer.alloc(100 * 70 * 3)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 7)) & 255
  await sharp(data, { raw: { width: 100, height: 70, channels: 3 } })
    .jpeg({ quality: 80 })
    .toFile(fx.photo)
  await sharp({ create: { width: 30, height: 30, channels: 3, background: { r: 90, g: 90, b: 90 } } })
    .toColourspace("b-w")
    .png()
    .toFile(fx.gray)
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

const failure = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown })?.error : undefined
  })

const raw = (path: string) => Effect.promise(() => sharp(path).raw().toBuffer({ resolveWithObject: true }))

layer(MediaStore.layer(home))("Tiles", (it) => {
  it("layout: row by row, steps of tileSize - overlap, edge tiles clipped, exactly covering", () => {
    assert.deepStrictEqual(Tiles.layout(10, 4, [4, 4], [1, 0]), [
      { x: 0, y: 0, width: 4, height: 4 },
      { x: 3, y: 0, width: 4, height: 4 },
      { x: 6, y: 0, width: 4, height: 4 }
    ])
    // A tile size dividing the image: no sliver tile at the edge.
    assert.deepStrictEqual(
      Tiles.layout(8, 8, [4, 4]).map((b) => [b.x, b.y]),
      [
        [0, 0],
        [4, 0],
        [0, 4],
        [4, 4]
      ]
    )
    // One tile when the image is smaller than a tile, whatever the overlap.
    assert.deepStrictEqual(Tiles.layout(3, 2, [8, 8], [6, 6]), [{ x: 0, y: 0, width: 3, height: 2 }])
  })

  it.effect("a JPEG in square tiles: decoded once, PNG tiles that stitch back to its decoded pixels", () =>
    Effect.gen(function* () {
      const tiles = yield* Stream.runCollect(Tiles.tiles(fx.photo, { tileSize: 32, overlap: 4 }))
      // Steps of 28: x 0, 28, 56, 84 (the last clipped to 16 wide), y 0, 28, 56 (the last 14 high).
      assert.deepStrictEqual(
        tiles.map((t) => [t.x, t.y, t.width, t.height]),
        Tiles.layout(100, 70, [32, 32], [4, 4]).map((b) => [b.x, b.y, b.width, b.height])
      )
      assert.deepStrictEqual([...new Set(tiles.map((t) => t.x))], [0, 28, 56, 84])
      assert.deepStrictEqual([...new Set(tiles.map((t) => t.y))], [0, 28, 56])
      assert.deepStrictEqual(
        tiles.filter((t) => t.y === 0).map((t) => t.width),
        [32, 32, 32, 16]
      )
      assert.deepStrictEqual(
        tiles.filter((t) => t.x === 0).map((t) => t.height),
        [32, 32, 14]
      )
      const stitched = yield* Tiles.stitch(tiles)
      const [got, want] = [yield* raw(stitched), yield* raw(fx.photo)]
      assert.deepStrictEqual([got.info.width, got.info.height], [100, 70])
      assert.isTrue(got.data.equals(want.data))

      const jpegs = yield* Stream.runCollect(Tiles.tiles(fx.photo, { tileSize: [50, 70], format: "jpeg" }))
      assert.deepStrictEqual(
        jpegs.map((t) => [t.x, t.y, t.width, t.height, NodePath.extname(t.tile)]),
        [
          [0, 0, 50, 70, ".jpg"],
          [50, 0, 50, 70, ".jpg"]
        ]
      )
    })
  )

  it.effect("a one-channel image gives one-channel tiles and stitches back", () =>
    Effect.gen(function* () {
      const tiles = yield* Stream.runCollect(Tiles.tiles(fx.gray, { tileSize: [16, 8] }))
      assert.strictEqual(tiles.length, 2 * 4)
      const info = yield* Effect.promise(() => sharp(tiles[0]!.tile).metadata())
      assert.strictEqual(info.channels, 1)
      const stitched = yield* Tiles.stitch(tiles)
      assert.strictEqual((yield* Effect.promise(() => sharp(stitched).metadata())).channels, 1)
      const [got, want] = [yield* raw(stitched), yield* raw(fx.gray)]
      assert.isTrue(got.data.equals(want.data))
    })
  )

  it.effect("invalid options and tiles that do not make an image are TilesErrors", () =>
    Effect.gen(function* () {
      for (const [options, message] of [
        [{ tileSize: 10, overlap: 10 }, "tiles: overlap [10,10] must be smaller than tileSize [10,10] on both axes"],
        [{ tileSize: 10, overlap: -1 }, "tiles: overlap must be non-negative integers (got -1)"],
        [{ tileSize: [10, 2.5] }, "tiles: tileSize must be positive integers (got [10,2.5])"],
        [{ tileSize: "10" }, "tiles: invalid options"]
      ] as const) {
        const error = yield* failure(Stream.runCollect(Tiles.tiles(fx.photo, options as unknown as Tiles.Options)))
        assert.instanceOf(error, Tiles.TilesError, JSON.stringify(options))
        assert.strictEqual((error as Tiles.TilesError).reason, "InvalidOptions")
        assert.include((error as Tiles.TilesError).message, message)
      }

      const tiles = yield* Stream.runCollect(Tiles.tiles(fx.photo, { tileSize: 50 }))
      const gap = yield* failure(Tiles.stitch(tiles.filter((t) => !(t.x === 50 && t.y === 50))))
      assert.strictEqual((gap as Tiles.TilesError).reason, "InvalidTiles")
      assert.include((gap as Tiles.TilesError).message, "leave pixel (50, 50) of 100x70 uncovered")

      const empty = yield* failure(Tiles.stitch([]))
      assert.strictEqual((empty as Tiles.TilesError).message, "stitch: no tiles to stitch")

      const [grayTile] = yield* Stream.runCollect(Tiles.tiles(fx.gray, { tileSize: 50 }))
      const mixed = yield* failure(Tiles.stitch([tiles[0]!, { ...grayTile!, x: 50 }]))
      assert.include((mixed as Tiles.TilesError).message, "different channel counts (3 and 1)")
    })
  )
})
