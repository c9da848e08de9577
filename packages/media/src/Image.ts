/**
 * Image: image functions (over sharp) for computed columns and queries.
 *
 * ```ts
 * const t2 = yield* t.addComputedColumn("thumb", Image.thumbnail(t.c.poster, { size: 224 }))
 * t.select((c) => ({ url: Image.toDataUrl(c.poster), meta: Image.metadata(c.poster) }))
 * ```
 *
 * Each builder returns a call of a registered Tessera function (`image.resize`,
 * `image.thumbnail`, ...; the functions themselves are in `functions`).
 * Functions that make images encode the result (in the input's format unless
 * told otherwise) into the media store (`MediaStore.Current`) and return its
 * path, so equal outputs share one file. A missing, unreadable or undecodable
 * input fails the cell with a `MediaError` naming the file or URL.
 */
import { Column, Expr, Fn, type Media } from "@tessera/core"
import { Effect, Schema } from "effect"
import * as NodeFs from "node:fs"
import {
  invalidArgument,
  OUTPUT_FORMATS,
  type OutputFormat,
  sharp,
  transform,
  withImage
} from "./internal/imageSharp.ts"
import type { MediaError } from "./MediaStore.ts"

/** What `metadata` returns; `mode` names the colour mode as PIL does (`L`, `LA`, `RGB`, `RGBA`, `CMYK`). */
export const Metadata = Schema.Struct({
  width: Schema.Number,
  height: Schema.Number,
  format: Schema.String,
  channels: Schema.Number,
  mode: Schema.String,
  hasAlpha: Schema.Boolean
})
export type Metadata = typeof Metadata.Type

export type Fit = "cover" | "contain" | "fill" | "inside" | "outside"
const FITS: ReadonlyArray<string> = ["cover", "contain", "fill", "inside", "outside"]

/** Colour modes `convert` accepts (`grayscale` is `L`). */
export type Mode = "L" | "grayscale" | "RGB" | "RGBA"
const MODES: ReadonlyArray<string> = ["L", "grayscale", "RGB", "RGBA"]

/** Formats `toDataUrl` passes through as they are; others are converted to PNG. */
const DATA_URL_FORMATS: ReadonlyArray<string> = ["jpeg", "png", "webp", "gif"]

const modeOf = (channels: number, space: string | undefined): string =>
  space === "cmyk" ? "CMYK" : channels === 1 ? "L" : channels === 2 ? "LA" : channels === 3 ? "RGB" : "RGBA"

const checkFormat = (ref: string, format: string | null): Effect.Effect<OutputFormat | null, MediaError> => {
  if (format === null) return Effect.succeed(null)
  const normalized = format.toLowerCase() === "jpg" ? "jpeg" : format.toLowerCase()
  return OUTPUT_FORMATS.includes(normalized as OutputFormat)
    ? Effect.succeed(normalized as OutputFormat)
    : Effect.fail(invalidArgument(ref, `unsupported output format ${JSON.stringify(format)}`))
}

const image = Column.Image
const optionalInt = Column.nullable(Column.Int)
const optionalString = Column.nullable(Column.String)

/** Width and height as displayed: after the EXIF orientation. */
const orientedSize = (m: {
  readonly width: number
  readonly height: number
  readonly autoOrient?: { readonly width: number; readonly height: number } | undefined
}) => ({
  width: m.autoOrient?.width ?? m.width,
  height: m.autoOrient?.height ?? m.height
})

const metadataFn = Fn.effect({
  name: "image.metadata",
  params: { image },
  returns: Column.Json(Metadata),
  run: ({ image }) =>
    withImage(image, async (img) => {
      const m = await img.metadata()
      return {
        ...orientedSize(m),
        format: m.format,
        channels: m.channels,
        mode: modeOf(m.channels, m.space),
        hasAlpha: m.hasAlpha
      }
    })
})

const widthFn = Fn.effect({
  name: "image.width",
  params: { image },
  returns: Column.Int,
  run: ({ image }) => withImage(image, async (img) => orientedSize(await img.metadata()).width)
})

const heightFn = Fn.effect({
  name: "image.height",
  params: { image },
  returns: Column.Int,
  run: ({ image }) => withImage(image, async (img) => orientedSize(await img.metadata()).height)
})

const resizeFn = Fn.effect({
  name: "image.resize",
  params: { image, width: optionalInt, height: optionalInt, fit: optionalString },
  returns: Column.Image,
  run: ({ image, width, height, fit }) => {
    if (width === null && height === null)
      return Effect.fail(invalidArgument(image, "resize needs a width or a height"))
    if (fit !== null && !FITS.includes(fit))
      return Effect.fail(invalidArgument(image, `unknown fit ${JSON.stringify(fit)}`))
    return transform(image, (img) =>
      img.resize({ width: width ?? undefined, height: height ?? undefined, fit: (fit ?? "cover") as Fit })
    )
  }
})

const cropFn = Fn.effect({
  name: "image.crop",
  params: { image, left: Column.Int, top: Column.Int, width: Column.Int, height: Column.Int },
  returns: Column.Image,
  run: ({ image, left, top, width, height }) => transform(image, (img) => img.extract({ left, top, width, height }))
})

const rotateFn = Fn.effect({
  name: "image.rotate",
  params: { image, degrees: Column.Float },
  returns: Column.Image,
  run: ({ image, degrees }) => transform(image, (img) => img.rotate(degrees))
})

const flipFn = Fn.effect({
  name: "image.flip",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => transform(image, (img) => img.flip())
})

const flopFn = Fn.effect({
  name: "image.flop",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => transform(image, (img) => img.flop())
})

const convertFn = Fn.effect({
  name: "image.convert",
  params: { image, format: optionalString, mode: optionalString },
  returns: Column.Image,
  run: ({ image, format, mode }) =>
    Effect.flatMap(checkFormat(image, format), (target) => {
      if (mode !== null && !MODES.includes(mode)) {
        return Effect.fail(invalidArgument(image, `unknown colour mode ${JSON.stringify(mode)}`))
      }
      return transform(
        image,
        (img) =>
          mode === "L" || mode === "grayscale"
            ? img.grayscale().toColourspace("b-w")
            : mode === "RGB"
              ? img.removeAlpha().toColourspace("srgb")
              : mode === "RGBA"
                ? img.ensureAlpha().toColourspace("srgb")
                : img,
        target
      )
    })
})

const thumbnailFn = Fn.effect({
  name: "image.thumbnail",
  params: { image, size: Column.Int },
  returns: Column.Image,
  run: ({ image, size }) =>
    transform(image, (img) => img.resize({ width: size, height: size, fit: "inside", withoutEnlargement: true }))
})

const grayscaleFn = Fn.effect({
  name: "image.grayscale",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => transform(image, (img) => img.grayscale().toColourspace("b-w"))
})

const blendFn = Fn.effect({
  name: "image.blend",
  params: { image, overlay: Column.Image, opacity: Column.Float },
  returns: Column.Image,
  run: ({ image, overlay, opacity }) =>
    Effect.gen(function* () {
      if (!(opacity >= 0 && opacity <= 1)) {
        return yield* invalidArgument(image, `opacity must be between 0 and 1, got ${opacity}`)
      }
      const base = yield* withImage(image, (img) => img.metadata())
      const { width, height } = orientedSize(base)
      // The overlay, fitted to the base, with its alpha scaled by `opacity`:
      // composited "over", this is base * (1 - opacity) + overlay * opacity.
      const layer = yield* withImage(overlay, async (img) => {
        const { data, info } = await img
          .resize({ width, height, fit: "fill" })
          .ensureAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true })
        for (let i = 3; i < data.length; i += 4) data[i] = Math.round(data[i]! * opacity)
        return { data, info }
      })
      // Composited as raw pixels, so that an opaque base stays opaque and is encoded once.
      const format = OUTPUT_FORMATS.includes(base.format as OutputFormat) ? (base.format as OutputFormat) : "png"
      return yield* transform(
        image,
        async (img) => {
          const { data, info } = await img
            .composite([
              { input: layer.data, raw: { width: layer.info.width, height: layer.info.height, channels: 4 } }
            ])
            .raw()
            .toBuffer({ resolveWithObject: true })
          const out = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels } })
          return base.hasAlpha ? out : out.removeAlpha()
        },
        format
      )
    })
})

/** The encoded bytes of `ref`: the file as it is, or re-encoded when `format` is given or required. */
const encoded = (ref: string, format: string | null, passThrough: (format: string | undefined) => boolean) =>
  Effect.flatMap(checkFormat(ref, format), (target) =>
    withImage(ref, async (img, path) => {
      if (target !== null) {
        const { data, info } = await img.toFormat(target).toBuffer({ resolveWithObject: true })
        return { bytes: data, format: info.format }
      }
      const m = await img.metadata()
      if (passThrough(m.format)) return { bytes: await NodeFs.promises.readFile(path), format: m.format as string }
      return { bytes: await img.png().toBuffer(), format: "png" }
    })
  )

const toBase64Fn = Fn.effect({
  name: "image.toBase64",
  params: { image, format: optionalString },
  returns: Column.String,
  run: ({ image, format }) =>
    Effect.map(
      encoded(image, format, () => true),
      ({ bytes }) => bytes.toString("base64")
    )
})

const toDataUrlFn = Fn.effect({
  name: "image.toDataUrl",
  params: { image, format: optionalString },
  returns: Column.String,
  run: ({ image, format }) =>
    Effect.map(
      encoded(image, format, (f) => f !== undefined && DATA_URL_FORMATS.includes(f)),
      ({ bytes, format }) => `data:image/${format};base64,${bytes.toString("base64")}`
    )
})

/** The registered functions, for calling with named arguments (`functions.resize({ image, width, ... })`). */
export const functions = {
  metadata: metadataFn,
  width: widthFn,
  height: heightFn,
  resize: resizeFn,
  crop: cropFn,
  rotate: rotateFn,
  flip: flipFn,
  flop: flopFn,
  convert: convertFn,
  thumbnail: thumbnailFn,
  grayscale: grayscaleFn,
  blend: blendFn,
  toBase64: toBase64Fn,
  toDataUrl: toDataUrlFn
} as const

/** An image: a column reference, any image-valued expression, a path or URL, or a query's handle. */
export type ImageInput = Expr.Arg<Media.Uri<"Image">>
type Num = Expr.Input<number | null>

export interface ResizeOptions {
  readonly width?: Num
  readonly height?: Num
  readonly fit?: Fit | undefined
}
export interface CropRegion {
  readonly left: Num
  readonly top: Num
  readonly width: Num
  readonly height: Num
}
export interface ConvertOptions {
  readonly format?: "jpeg" | "png" | "webp" | OutputFormat | undefined
  readonly mode?: Mode | undefined
}
export interface EncodeOptions {
  readonly format?: OutputFormat | undefined
}

/** `{ width, height, format, channels, mode, hasAlpha }` of an image. */
export const metadata = (image: ImageInput): Expr.Expr<Metadata> => metadataFn({ image })

/** The width in pixels (after EXIF orientation), read from the header. */
export const width = (image: ImageInput): Expr.Expr<number> => widthFn({ image })

/** The height in pixels (after EXIF orientation), read from the header. */
export const height = (image: ImageInput): Expr.Expr<number> => heightFn({ image })

/** Resizes to `width` x `height` (one may be omitted: aspect kept); `fit` defaults to `cover`. */
export const resize = (image: ImageInput, options: ResizeOptions): Media.ImageExpr =>
  resizeFn({ image, width: options.width ?? null, height: options.height ?? null, fit: options.fit ?? null })

/** The region `width` x `height` at (`left`, `top`). */
export const crop = (image: ImageInput, region: CropRegion): Media.ImageExpr => cropFn({ image, ...region })

/** Rotates clockwise by `degrees` (other than multiples of 90, the canvas grows, filled black). */
export const rotate = (image: ImageInput, degrees: Num): Media.ImageExpr => rotateFn({ image, degrees })

/** Mirrors top to bottom. */
export const flip = (image: ImageInput): Media.ImageExpr => flipFn({ image })

/** Mirrors left to right. */
export const flop = (image: ImageInput): Media.ImageExpr => flopFn({ image })

/** Re-encodes as `format` and/or converts to colour `mode`. */
export const convert = (image: ImageInput, options: ConvertOptions): Media.ImageExpr =>
  convertFn({ image, format: options.format ?? null, mode: options.mode ?? null })

/** Fits within `size` x `size`, keeping the aspect ratio, never enlarging. */
export const thumbnail = (image: ImageInput, options: { readonly size: Num }): Media.ImageExpr =>
  thumbnailFn({ image, size: options.size })

/** A single-channel (`L`) grayscale image. */
export const grayscale = (image: ImageInput): Media.ImageExpr => grayscaleFn({ image })

/** `overlay` (fitted to `image`'s size) over `image` at `opacity` (0..1). */
export const blend = (image: ImageInput, overlay: ImageInput, options: { readonly opacity: Num }): Media.ImageExpr =>
  blendFn({ image, overlay, opacity: options.opacity })

/** The image's bytes in base64 (re-encoded when `format` is given). */
export const toBase64 = (image: ImageInput, options?: EncodeOptions): Expr.Expr<string> =>
  toBase64Fn({ image, format: options?.format ?? null })

/** A `data:image/...;base64,` URL, what vision models take (JPEG, PNG, WebP, GIF as they are; else PNG). */
export const toDataUrl = (image: ImageInput, options?: EncodeOptions): Expr.Expr<string> =>
  toDataUrlFn({ image, format: options?.format ?? null })

// ---------------------------------------------------------------------------
// Methods of image expressions: `t.c.img.resize({ width: 64 }).grayscale()`

declare module "@tessera/core" {
  namespace Media {
    interface ImageMethods {
      /** `Image.metadata(this)`: width, height, format, channels, mode, alpha. */
      metadata(): Expr.Expr<Metadata>
      /** `Image.width(this)`. */
      width(): Expr.Expr<number>
      /** `Image.height(this)`. */
      height(): Expr.Expr<number>
      /** `Image.resize(this, options)`. */
      resize(options: ResizeOptions): ImageExpr
      /** `Image.crop(this, region)`. */
      crop(region: CropRegion): ImageExpr
      /** `Image.rotate(this, degrees)`. */
      rotate(degrees: Num): ImageExpr
      /** `Image.flip(this)`: top to bottom. */
      flip(): ImageExpr
      /** `Image.flop(this)`: left to right. */
      flop(): ImageExpr
      /** `Image.convert(this, options)`. */
      convert(options: ConvertOptions): ImageExpr
      /** `Image.thumbnail(this, options)`. */
      thumbnail(options: { readonly size: Num }): ImageExpr
      /** `Image.grayscale(this)`. */
      grayscale(): ImageExpr
      /** `Image.blend(this, overlay, options)`. */
      blend(overlay: ImageInput, options: { readonly opacity: Num }): ImageExpr
      /** `Image.toBase64(this, options)`. */
      toBase64(options?: EncodeOptions): Expr.Expr<string>
      /** `Image.toDataUrl(this, options)`. */
      toDataUrl(options?: EncodeOptions): Expr.Expr<string>
    }
  }
}

Expr.installMethods("Image", {
  metadata() {
    return metadata(this)
  },
  width() {
    return width(this)
  },
  height() {
    return height(this)
  },
  resize(options: ResizeOptions) {
    return resize(this, options)
  },
  crop(region: CropRegion) {
    return crop(this, region)
  },
  rotate(degrees: Num) {
    return rotate(this, degrees)
  },
  flip() {
    return flip(this)
  },
  flop() {
    return flop(this)
  },
  convert(options: ConvertOptions) {
    return convert(this, options)
  },
  thumbnail(options: { readonly size: Num }) {
    return thumbnail(this, options)
  },
  grayscale() {
    return grayscale(this)
  },
  blend(overlay: ImageInput, options: { readonly opacity: Num }) {
    return blend(this, overlay, options)
  },
  toBase64(options?: EncodeOptions) {
    return toBase64(this, options)
  },
  toDataUrl(options?: EncodeOptions) {
    return toDataUrl(this, options)
  }
})
