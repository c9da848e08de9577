import { assert } from "@effect/vitest"
import { Catalog, Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect, Exit } from "effect"
import * as NodePath from "node:path"
import sharp from "sharp"
import { MediaStore, Tiles } from "../src/index.ts"

/** Deterministic noise, so that a misplaced pixel cannot go unnoticed. */
const noise = (width: number, height: number, channels: 3 | 4) => {
  const data = Buffer.alloc(width * height * channels)
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24
  return sharp(data, { raw: { width, height, channels } })
}

const pixels = (path: string) => Effect.promise(() => sharp(path).raw().toBuffer({ resolveWithObject: true }))

/** A view row as `stitch` takes it (the tile as its path, whether rows give strings or media handles). */
const placed = (row: {
  readonly x: number | null
  readonly y: number | null
  readonly tile: unknown
}): Tiles.Placed => ({
  x: row.x!,
  y: row.y!,
  tile: String(row.tile)
})

/** Stitches tiles and checks the result has exactly the pixels of `original`. */
const assertStitchesTo = (tiles: ReadonlyArray<Tiles.Placed>, original: string) =>
  Effect.gen(function* () {
    const stitched = yield* Tiles.stitch(tiles)
    const got = yield* pixels(stitched)
    const want = yield* pixels(original)
    assert.deepStrictEqual(
      [got.info.width, got.info.height, got.info.channels],
      [want.info.width, want.info.height, want.info.channels]
    )
    assert.isTrue(got.data.equals(want.data), `stitching the tiles of ${original} changed its pixels`)
  })

Harness.forEachBackend("Tiles view", (test) => {
  test("a tiles view covers each image exactly; stitching its tiles gives back the original pixels", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const home = yield* Harness.tempDir()
      const photo = NodePath.join(dir, "noise-203x117.png")
      const small = NodePath.join(dir, "noise-alpha-50x40.png")
      yield* Effect.promise(() => noise(203, 117, 3).png().toFile(photo))
      yield* Effect.promise(() => noise(50, 40, 4).png().toFile(small))
      yield* Effect.gen(function* () {
        const images = yield* Table.create("images", { name: Column.String, image: Column.Image })
        yield* images.insert([{ name: "photo", image: photo }])
        const tiles = yield* Table.createView(
          "tiles",
          images.select((c) => ({ name: c.name })),
          { iterator: Tiles.tileIterator(images.c.image, { tileSize: [64, 48], overlap: [16, 8] }) }
        )
        // Steps of 48 x 40: x 0, 48, 96, 144 (the last clipped to 59 wide), y 0, 40, 80 (the last 37 high).
        const rows = yield* tiles.orderBy("pos").collect()
        const widths = [64, 64, 64, 59]
        assert.deepStrictEqual(
          rows.map((r) => [r.pos, r.x, r.y, r.width, r.height]),
          [0, 1, 2].flatMap((j) => [0, 1, 2, 3].map((i) => [j * 4 + i, i * 48, j * 40, widths[i], j === 2 ? 37 : 48]))
        )
        for (const r of rows) {
          const tile = String(r.tile)
          assert.isTrue(tile.startsWith(NodePath.join(home, "media")), tile)
          const meta = yield* Effect.promise(() => sharp(tile).metadata())
          assert.deepStrictEqual([meta.format, meta.width, meta.height], ["png", r.width, r.height])
        }
        yield* assertStitchesTo(rows.map(placed), photo)

        // An image smaller than a tile is one tile, the whole image (alpha kept).
        yield* images.insert([{ name: "small", image: small }])
        assert.strictEqual(yield* tiles.count(), 13)
        const smallRows = yield* tiles.where((c) => c.name.eq("small")).collect()
        assert.deepStrictEqual(
          smallRows.map((r) => [r.pos, r.x, r.y, r.width, r.height]),
          [[0, 0, 0, 50, 40]]
        )
        yield* assertStitchesTo(smallRows.map(placed), small)

        yield* images.delete((c) => c.name.eq("photo"))
        assert.deepStrictEqual(
          (yield* tiles.collect()).map((r) => r.name),
          ["small"]
        )
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))

  test("overlap >= tileSize fails building the view, even over an empty base", () =>
    Effect.gen(function* () {
      const images = yield* Table.create("images", { image: Column.Image })
      for (const [i, [options, message]] of (
        [
          [{ tileSize: 8, overlap: 8 }, "tiles: overlap [8,8] must be smaller than tileSize [8,8] on both axes"],
          [
            { tileSize: [8, 4], overlap: [2, 5] },
            "tiles: overlap [2,5] must be smaller than tileSize [8,4] on both axes"
          ],
          [{ tileSize: 0 }, "tiles: tileSize must be positive integers (got 0)"]
        ] as const
      ).entries()) {
        const exit = yield* Effect.exit(
          Table.createView(`tiles_${i}`, images, { iterator: Tiles.tileIterator(images.c.image, options) })
        )
        assert.isTrue(Exit.isFailure(exit), JSON.stringify(options))
        const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown }).error : undefined
        assert.instanceOf(error, Catalog.CatalogError)
        assert.strictEqual((error as Catalog.CatalogError).reason, "InvalidDefinition")
        assert.include((error as Catalog.CatalogError).message, message)
      }
      assert.deepStrictEqual(yield* Table.list(), ["images"])
    }))
})
