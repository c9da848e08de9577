/**
 * Tiles: an image cut into a grid of (possibly overlapping) rectangles, as a
 * stream, as an iterator view (`Table.createView(path, images, { iterator:
 * Tiles.tileIterator(images.c.image, { tileSize: 256, overlap: 32 }) })`),
 * and `stitch`, which puts tiles back together.
 *
 * Tiles start every `tileSize - overlap` pixels along each axis, row by row
 * (left to right, then top to bottom), until one reaches the image's edge.
 * Edge tiles are clipped to the image (not padded, unlike Pixeltable's
 * TileIterator), so together the tiles cover the image exactly and every
 * pixel of a tile is a pixel of the image. The image is decoded once (EXIF
 * orientation applied, 8 bits per channel); tiles are PNG by default, which
 * is lossless, so stitching them gives back the image's pixels.
 */
import { Column, ColumnType, Expr, Iterator } from "@tessera/core"
import { Effect, Schema, Stream } from "effect"
import { extensionOf, sharp, toMediaError, withImage } from "./internal/imageSharp.ts"
import * as MediaStore from "./MediaStore.ts"

export class TilesError extends Schema.TaggedError<TilesError>()("TilesError", {
  reason: Schema.Literals(["InvalidOptions", "InvalidTiles"]),
  /** The image (tiling) or the first tile (stitching) concerned. */
  path: Schema.String,
  message: Schema.String
}) {
  get isRetryable(): boolean {
    return false
  }
}

/** A length in pixels for both axes, or `[x, y]`. */
export type Size = number | readonly [number, number]

export type TileFormat = "png" | "jpeg" | "webp"

export interface Options {
  /** Tile width and height (integers >= 1). */
  readonly tileSize: Size
  /** Pixels shared by neighbouring tiles (integers, 0 <= overlap < tileSize; default 0). */
  readonly overlap?: Size | undefined
  /** How tiles are encoded (default PNG: lossless). */
  readonly format?: TileFormat | undefined
}

/** A tile's rectangle within its image (top-left corner, size). */
export interface Bounds {
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

export interface Tile extends Bounds {
  /** The tile's image file in the media store. */
  readonly tile: string
}

const SizeSchema = Schema.Union([Schema.Number, Schema.Tuple([Schema.Number, Schema.Number])])

// The options as stored in a view's definition (Json), decoded before use.
const OptionsSchema = Schema.Struct({
  tileSize: SizeSchema,
  overlap: Schema.optional(SizeSchema),
  format: Schema.optional(Schema.Literals(["png", "jpeg", "webp"]))
})
const decodeOptions = Schema.decodeUnknownEffect(OptionsSchema)

interface Settings {
  readonly tileSize: readonly [number, number]
  readonly overlap: readonly [number, number]
  readonly format: TileFormat
}

const pair = (size: Size): readonly [number, number] => (typeof size === "number" ? [size, size] : size)

const invalidOptions = (path: string, message: string) =>
  new TilesError({ reason: "InvalidOptions", path, message: `tiles: ${message}` })

/** Checks and normalizes tiling options; `ref` names the image in errors. */
const settings = Effect.fnUntraced(function* (ref: string, options: unknown) {
  const decoded = yield* decodeOptions(options).pipe(
    Effect.mapError((cause) => invalidOptions(ref, `invalid options: ${cause.message}`))
  )
  const tileSize = pair(decoded.tileSize)
  const overlap = pair(decoded.overlap ?? 0)
  if (!tileSize.every((n) => Number.isInteger(n) && n >= 1)) {
    return yield* invalidOptions(ref, `tileSize must be positive integers (got ${JSON.stringify(decoded.tileSize)})`)
  }
  if (!overlap.every((n) => Number.isInteger(n) && n >= 0)) {
    return yield* invalidOptions(ref, `overlap must be non-negative integers (got ${JSON.stringify(decoded.overlap)})`)
  }
  if (overlap[0] >= tileSize[0] || overlap[1] >= tileSize[1]) {
    return yield* invalidOptions(
      ref,
      `overlap ${JSON.stringify(overlap)} must be smaller than tileSize ${JSON.stringify(tileSize)} on both axes`
    )
  }
  return { tileSize, overlap, format: decoded.format ?? "png" } satisfies Settings
})

/** Tile starts and lengths along one axis: every `size - overlap` pixels until a tile reaches `length`. */
const axis = (length: number, size: number, overlap: number): ReadonlyArray<readonly [number, number]> => {
  const step = size - overlap
  const count = Math.max(1, Math.ceil((length - overlap) / step))
  return Array.from({ length: count }, (_, k) => [k * step, Math.min(size, length - k * step)] as const)
}

/**
 * The tiles' rectangles for an image of `width` x `height`, row by row (see
 * the module comment); `tileSize` and `overlap` must be valid.
 */
export const layout = (
  width: number,
  height: number,
  tileSize: readonly [number, number],
  overlap: readonly [number, number] = [0, 0]
): ReadonlyArray<Bounds> => {
  const columns = axis(width, tileSize[0], overlap[0])
  return axis(height, tileSize[1], overlap[1]).flatMap(([y, h]) =>
    columns.map(([x, w]): Bounds => ({ x, y, width: w, height: h }))
  )
}

interface RawImage {
  readonly data: Buffer
  readonly info: { readonly width: number; readonly height: number; readonly channels: 1 | 2 | 3 | 4 }
}

/** The image's pixels; a one-channel image stays one channel (sharp would make it sRGB). */
const decodeRaw = (ref: string): Effect.Effect<RawImage, MediaStore.MediaError> =>
  withImage(ref, async (img) => {
    const { channels } = await img.metadata()
    return (channels === 1 ? img.toColourspace("b-w") : img).raw().toBuffer({ resolveWithObject: true })
  })

/** Encodes the region `bounds` (or all) of a raw image. */
const encode = (ref: string, raw: RawImage, format: TileFormat, bounds?: Bounds) =>
  Effect.tryPromise({
    try: () => {
      const { width, height, channels } = raw.info
      const image = sharp(raw.data, { raw: { width, height, channels } })
      const cropped =
        bounds === undefined
          ? image
          : image.extract({ left: bounds.x, top: bounds.y, width: bounds.width, height: bounds.height })
      const region = channels === 1 ? cropped.toColourspace("b-w") : cropped
      return (format === "png" ? region.png() : format === "jpeg" ? region.jpeg() : region.webp()).toBuffer()
    },
    catch: (cause) => toMediaError(ref, cause)
  })

/** The tiles of one image (see the module comment), each written to the media store. */
export const tiles = (ref: string, options: Options): Stream.Stream<Tile, TilesError | MediaStore.MediaError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const { tileSize, overlap, format } = yield* settings(ref, options)
      const raw = yield* decodeRaw(ref)
      const store = yield* MediaStore.Current
      const toTile = (bounds: Bounds) =>
        Effect.map(
          Effect.flatMap(encode(ref, raw, format, bounds), (bytes) => store.put(bytes, extensionOf(format))),
          (tile): Tile => ({ ...bounds, tile })
        )
      return Stream.fromIterable(layout(raw.info.width, raw.info.height, tileSize, overlap)).pipe(
        Stream.mapEffect(toTile, { concurrency: 4 })
      )
    })
  )

/** A tile placed in the image to rebuild, as a tiles view's rows give it (`tile`: a path, URL or media handle). */
export interface Placed {
  readonly x: number
  readonly y: number
  readonly tile: string | { readonly uri: string }
}

const uriOf = (tile: Placed["tile"]): string => (typeof tile === "string" ? tile : tile.uri)

const invalidTiles = (path: string, message: string) =>
  new TilesError({ reason: "InvalidTiles", path, message: `stitch: ${message}` })

/**
 * Reassembles tiles into one image (written to the media store, PNG by
 * default; returns its path). The image spans the tiles; they must have the
 * same channels and cover it without gaps. Where tiles overlap, the later
 * one's pixels are kept (the same pixels, for tiles of one image).
 */
export const stitch = Effect.fn("Tiles.stitch")(function* (
  placed: ReadonlyArray<Placed>,
  options: { readonly format?: TileFormat | undefined } = {}
) {
  const tiles = placed.map((t) => ({ x: t.x, y: t.y, tile: uriOf(t.tile) }))
  const name = tiles[0]?.tile ?? ""
  if (tiles.length === 0) return yield* invalidTiles(name, "no tiles to stitch")
  const bad = tiles.find((t) => !(Number.isInteger(t.x) && Number.isInteger(t.y) && t.x >= 0 && t.y >= 0))
  if (bad !== undefined) {
    return yield* invalidTiles(bad.tile, `tile positions must be non-negative integers (got ${bad.x}, ${bad.y})`)
  }
  const decoded = yield* Effect.forEach(tiles, (t) => Effect.map(decodeRaw(t.tile), (raw) => ({ ...t, raw })), {
    concurrency: 4
  })
  const channels = decoded[0]!.raw.info.channels
  const mismatch = decoded.find((t) => t.raw.info.channels !== channels)
  if (mismatch !== undefined) {
    return yield* invalidTiles(
      mismatch.tile,
      `tiles have different channel counts (${channels} and ${mismatch.raw.info.channels})`
    )
  }
  const width = Math.max(...decoded.map((t) => t.x + t.raw.info.width))
  const height = Math.max(...decoded.map((t) => t.y + t.raw.info.height))
  const canvas = Buffer.alloc(width * height * channels)
  const covered = new Uint8Array(width * height)
  for (const { x, y, raw } of decoded) {
    const row = raw.info.width * channels
    for (let j = 0; j < raw.info.height; j++) {
      const at = (y + j) * width + x
      raw.data.copy(canvas, at * channels, j * row, (j + 1) * row)
      covered.fill(1, at, at + raw.info.width)
    }
  }
  const gap = covered.indexOf(0)
  if (gap !== -1) {
    return yield* invalidTiles(
      name,
      `the tiles leave pixel (${gap % width}, ${Math.floor(gap / width)}) of ${width}x${height} uncovered`
    )
  }
  const format = options.format ?? "png"
  const bytes = yield* encode(name, { data: canvas, info: { width, height, channels } }, format)
  const store = yield* MediaStore.Current
  return yield* store.put(bytes, extensionOf(format))
})

// ---------------------------------------------------------------------------
// iterator views

/**
 * The tiles iterator: an iterator view with one row per tile of each image.
 * Its columns, beside `pos`: `x`, `y` (top-left corner), `width`, `height`
 * and `tile` (the tile's image, in the media store).
 */
export const tileIteratorDefinition = Iterator.make({
  name: "tessera.image.tiles.iterator",
  params: { image: Column.Image, options: Column.Json() },
  outputs: {
    x: Column.Int,
    y: Column.Int,
    width: Column.Int,
    height: Column.Int,
    tile: Column.Image
  },
  check: ({ options }) => Effect.asVoid(settings("tiles view", options)),
  run: ({ image, options }) => tiles(image, options as Options)
})

/** `Tiles.tileIterator(t.c.image, { tileSize: [256, 256], overlap: 32 })`: the `iterator` option of a tiles view. */
export const tileIterator = (image: Expr.Input<string | null>, options: Options) =>
  tileIteratorDefinition({ image, options: Expr.lit<unknown>(options, ColumnType.Json()) })
