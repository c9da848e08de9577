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
import { Column, type Expr, Fn } from "@tessera/core"
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

const metadataFn = Fn.effect({
  name: "image.metadata",
  params: { image },
  returns: Column.Json(Metadata),
  run: ({ image }) =>
    withImage(image, async (img) => {
      const m = await img.metadata()
      return {
        width: m.autoOrient?.width ?? m.width,
        height: m.autoOrient?.height ?? m.height,
        format: m.format,
        channels: m.channels,
        mode: modeOf(m.channels, m.space),
        hasAlpha: m.hasAlpha
      }
    })
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
      const width = base.autoOrient?.width ?? base.width
      const height = base.autoOrient?.height ?? base.height
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

/** An image: a column reference, any image-valued expression, or a literal path/URL. */
export type ImageInput = Expr.Input<string | null>
type Num = Expr.Input<number | null>

/** `{ width, height, format, channels, mode, hasAlpha }` of an image. */
export const metadata = (image: ImageInput): Expr.Expr<Metadata> => metadataFn({ image })

/** Resizes to `width` x `height` (one may be omitted: aspect kept); `fit` defaults to `cover`. */
export const resize = (
  image: ImageInput,
  options: { readonly width?: Num; readonly height?: Num; readonly fit?: Fit | undefined }
): Expr.Expr<string> =>
  resizeFn({ image, width: options.width ?? null, height: options.height ?? null, fit: options.fit ?? null })

/** The region `width` x `height` at (`left`, `top`). */
export const crop = (
  image: ImageInput,
  region: { readonly left: Num; readonly top: Num; readonly width: Num; readonly height: Num }
): Expr.Expr<string> => cropFn({ image, ...region })

/** Rotates clockwise by `degrees` (other than multiples of 90, the canvas grows, filled black). */
export const rotate = (image: ImageInput, degrees: Num): Expr.Expr<string> => rotateFn({ image, degrees })

/** Mirrors top to bottom. */
export const flip = (image: ImageInput): Expr.Expr<string> => flipFn({ image })

/** Mirrors left to right. */
export const flop = (image: ImageInput): Expr.Expr<string> => flopFn({ image })

/** Re-encodes as `format` and/or converts to colour `mode`. */
export const convert = (
  image: ImageInput,
  options: { readonly format?: "jpeg" | "png" | "webp" | OutputFormat | undefined; readonly mode?: Mode | undefined }
): Expr.Expr<string> => convertFn({ image, format: options.format ?? null, mode: options.mode ?? null })

/** Fits within `size` x `size`, keeping the aspect ratio, never enlarging. */
export const thumbnail = (image: ImageInput, options: { readonly size: Num }): Expr.Expr<string> =>
  thumbnailFn({ image, size: options.size })

/** A single-channel (`L`) grayscale image. */
export const grayscale = (image: ImageInput): Expr.Expr<string> => grayscaleFn({ image })

/** `overlay` (fitted to `image`'s size) over `image` at `opacity` (0..1). */
export const blend = (image: ImageInput, overlay: ImageInput, options: { readonly opacity: Num }): Expr.Expr<string> =>
  blendFn({ image, overlay, opacity: options.opacity })

/** The image's bytes in base64 (re-encoded when `format` is given). */
export const toBase64 = (
  image: ImageInput,
  options?: { readonly format?: OutputFormat | undefined }
): Expr.Expr<string> => toBase64Fn({ image, format: options?.format ?? null })

/** A `data:image/...;base64,` URL, what vision models take (JPEG, PNG, WebP, GIF as they are; else PNG). */
export const toDataUrl = (
  image: ImageInput,
  options?: { readonly format?: OutputFormat | undefined }
): Expr.Expr<string> => toDataUrlFn({ image, format: options?.format ?? null })
