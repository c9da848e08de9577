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
 *
 * A transform of a transform (`c.img.resize(...).grayscale()`) is one call of
 * `image.pipeline` with the list of steps: they run in memory and only the
 * last image is stored. A function that reads an image (`width`, `toDataUrl`,
 * ...) of such a chain reads the result in memory and stores nothing.
 */
import { Column, Expr, Fn, type Media } from "@tessera/core"
import { Effect, Schema } from "effect"
import * as NodeFs from "node:fs"
import * as Pipeline from "./internal/imagePipeline.ts"
import {
  checkFormat,
  invalidArgument,
  OUTPUT_FORMATS,
  type OutputFormat,
  orientedSize,
  type Sharp,
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

export type Fit = Pipeline.Fit

/** Colour modes `convert` accepts (`grayscale` is `L`). */
export type Mode = "L" | "grayscale" | "RGB" | "RGBA"

/** One step of `image.pipeline`: `op` names the transform (`resize`, ...), the other fields are its arguments. */
export type PipelineStep = Pipeline.Step

/** Formats `toDataUrl` passes through as they are; others are converted to PNG. */
const DATA_URL_FORMATS: ReadonlyArray<string> = ["jpeg", "png", "webp", "gif"]

const modeOf = (channels: number, space: string | undefined): string =>
  space === "cmyk" ? "CMYK" : channels === 1 ? "L" : channels === 2 ? "LA" : channels === 3 ? "RGB" : "RGBA"

const image = Column.Image
const optionalInt = Column.nullable(Column.Int)
const optionalString = Column.nullable(Column.String)
const steps = Column.Json(Pipeline.Steps)

/**
 * Opens the image a reading function reads, for `use`: a file, or a pipeline's
 * result in memory; `bytes` are its encoded bytes.
 */
type Open = <A>(use: (image: Sharp, bytes: () => Promise<Buffer>) => Promise<A>) => Effect.Effect<A, MediaError>

const file =
  (ref: string): Open =>
  (use) =>
    withImage(ref, (img, path) => use(img, () => NodeFs.promises.readFile(path)))

const pipelineResult =
  (ref: string, steps: unknown): Open =>
  (use) =>
    Effect.flatMap(Pipeline.decode(ref, steps), (decoded) =>
      Pipeline.withResult(ref, decoded, (img, bytes) => use(img, () => Promise.resolve(bytes)))
    )

const readMetadata = (open: Open) =>
  open(async (img) => {
    const m = await img.metadata()
    return {
      ...orientedSize(m),
      format: m.format,
      channels: m.channels,
      mode: modeOf(m.channels, m.space),
      hasAlpha: m.hasAlpha
    }
  })

const readWidth = (open: Open) => open(async (img) => orientedSize(await img.metadata()).width)

const readHeight = (open: Open) => open(async (img) => orientedSize(await img.metadata()).height)

const metadataFn = Fn.effect({
  name: "image.metadata",
  params: { image },
  returns: Column.Json(Metadata),
  run: ({ image }) => readMetadata(file(image))
})

const widthFn = Fn.effect({
  name: "image.width",
  params: { image },
  returns: Column.Int,
  run: ({ image }) => readWidth(file(image))
})

const heightFn = Fn.effect({
  name: "image.height",
  params: { image },
  returns: Column.Int,
  run: ({ image }) => readHeight(file(image))
})

// The transforms: each is a pipeline of one step (see `pipelineFn`).

const resizeFn = Fn.effect({
  name: "image.resize",
  params: { image, width: optionalInt, height: optionalInt, fit: optionalString },
  returns: Column.Image,
  run: ({ image, width, height, fit }) => Pipeline.store(image, [{ op: "resize", width, height, fit }])
})

const cropFn = Fn.effect({
  name: "image.crop",
  params: { image, left: Column.Int, top: Column.Int, width: Column.Int, height: Column.Int },
  returns: Column.Image,
  run: ({ image, left, top, width, height }) => Pipeline.store(image, [{ op: "crop", left, top, width, height }])
})

const rotateFn = Fn.effect({
  name: "image.rotate",
  params: { image, degrees: Column.Float },
  returns: Column.Image,
  run: ({ image, degrees }) => Pipeline.store(image, [{ op: "rotate", degrees }])
})

const flipFn = Fn.effect({
  name: "image.flip",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => Pipeline.store(image, [{ op: "flip" }])
})

const flopFn = Fn.effect({
  name: "image.flop",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => Pipeline.store(image, [{ op: "flop" }])
})

const convertFn = Fn.effect({
  name: "image.convert",
  params: { image, format: optionalString, mode: optionalString },
  returns: Column.Image,
  run: ({ image, format, mode }) => Pipeline.store(image, [{ op: "convert", format, mode }])
})

const thumbnailFn = Fn.effect({
  name: "image.thumbnail",
  params: { image, size: Column.Int },
  returns: Column.Image,
  run: ({ image, size }) => Pipeline.store(image, [{ op: "thumbnail", size }])
})

const grayscaleFn = Fn.effect({
  name: "image.grayscale",
  params: { image },
  returns: Column.Image,
  run: ({ image }) => Pipeline.store(image, [{ op: "grayscale" }])
})

/** A chain of transforms: `steps` applied in order, only the last image stored. */
const pipelineFn = Fn.effect({
  name: "image.pipeline",
  params: { image, steps },
  returns: Column.Image,
  run: ({ image, steps }) => Effect.flatMap(Pipeline.decode(image, steps), (decoded) => Pipeline.store(image, decoded))
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

/** The encoded bytes of an image: as they are, or re-encoded when `format` is given or required. */
const encoded = (
  ref: string,
  open: Open,
  format: string | null,
  passThrough: (format: string | undefined) => boolean
) =>
  Effect.flatMap(checkFormat(ref, format), (target) =>
    open(async (img, bytes) => {
      if (target !== null) {
        const { data, info } = await img.toFormat(target).toBuffer({ resolveWithObject: true })
        return { bytes: data, format: info.format }
      }
      const m = await img.metadata()
      if (passThrough(m.format)) return { bytes: await bytes(), format: m.format as string }
      return { bytes: await img.png().toBuffer(), format: "png" }
    })
  )

const base64 = (ref: string, open: Open, format: string | null) =>
  Effect.map(
    encoded(ref, open, format, () => true),
    ({ bytes }) => bytes.toString("base64")
  )

const dataUrl = (ref: string, open: Open, format: string | null) =>
  Effect.map(
    encoded(ref, open, format, (f) => f !== undefined && DATA_URL_FORMATS.includes(f)),
    ({ bytes, format }) => `data:image/${format};base64,${bytes.toString("base64")}`
  )

const toBase64Fn = Fn.effect({
  name: "image.toBase64",
  params: { image, format: optionalString },
  returns: Column.String,
  run: ({ image, format }) => base64(image, file(image), format)
})

const toDataUrlFn = Fn.effect({
  name: "image.toDataUrl",
  params: { image, format: optionalString },
  returns: Column.String,
  run: ({ image, format }) => dataUrl(image, file(image), format)
})

// The reading functions of a chain of transforms: they read its result in memory.

const pipelineMetadataFn = Fn.effect({
  name: "image.pipelineMetadata",
  params: { image, steps },
  returns: Column.Json(Metadata),
  run: ({ image, steps }) => readMetadata(pipelineResult(image, steps))
})

const pipelineWidthFn = Fn.effect({
  name: "image.pipelineWidth",
  params: { image, steps },
  returns: Column.Int,
  run: ({ image, steps }) => readWidth(pipelineResult(image, steps))
})

const pipelineHeightFn = Fn.effect({
  name: "image.pipelineHeight",
  params: { image, steps },
  returns: Column.Int,
  run: ({ image, steps }) => readHeight(pipelineResult(image, steps))
})

const pipelineToBase64Fn = Fn.effect({
  name: "image.pipelineToBase64",
  params: { image, steps, format: optionalString },
  returns: Column.String,
  run: ({ image, steps, format }) => base64(image, pipelineResult(image, steps), format)
})

const pipelineToDataUrlFn = Fn.effect({
  name: "image.pipelineToDataUrl",
  params: { image, steps, format: optionalString },
  returns: Column.String,
  run: ({ image, steps, format }) => dataUrl(image, pipelineResult(image, steps), format)
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
  toDataUrl: toDataUrlFn,
  pipeline: pipelineFn,
  pipelineMetadata: pipelineMetadataFn,
  pipelineWidth: pipelineWidthFn,
  pipelineHeight: pipelineHeightFn,
  pipelineToBase64: pipelineToBase64Fn,
  pipelineToDataUrl: pipelineToDataUrlFn
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

// ---------------------------------------------------------------------------
// Chains of transforms: one pipeline

type StepOp = Pipeline.Step["op"]

/** The transforms a pipeline runs, by function name: a call is a step, its arguments but the image the step's fields. */
const stepFunctions: ReadonlyMap<string, { readonly op: StepOp; readonly definition: Fn.Definition }> = new Map(
  (
    [
      ["resize", resizeFn],
      ["crop", cropFn],
      ["rotate", rotateFn],
      ["flip", flipFn],
      ["flop", flopFn],
      ["convert", convertFn],
      ["thumbnail", thumbnailFn],
      ["grayscale", grayscaleFn]
    ] as const
  ).map(([op, fn]) => [fn.definition.name, { op, definition: fn.definition }])
)

/** An image (`source`) and the transforms applied to it in order. */
interface Chain {
  readonly source: Expr.Node
  readonly steps: ReadonlyArray<Pipeline.Step>
}

/**
 * The chain of transforms `node` is, if it is one: a pipeline, or a transform
 * whose other arguments are literals (one computed per row is not a step: it
 * stays a call of its own, as does one with a null required argument, which
 * makes it null).
 */
const chainOf = (node: Expr.Node): Chain | undefined => {
  if (node._tag !== "Call") return undefined
  const pipeline = pipelineFn.definition
  if (node.fn === pipeline.name && node.version === pipeline.version) {
    const [source, list] = node.args
    return source !== undefined && list?._tag === "Literal" && Array.isArray(list.value)
      ? { source, steps: list.value }
      : undefined
  }
  const transform = stepFunctions.get(node.fn)
  if (transform === undefined || transform.definition.version !== node.version) return undefined
  const step: Record<string, unknown> = { op: transform.op }
  const params = transform.definition.params
  for (let i = 1; i < params.length; i++) {
    const arg = node.args[i]
    if (arg?._tag !== "Literal" || (arg.value === null && !params[i]!.nullable)) return undefined
    step[params[i]!.name] = arg.value
  }
  return { source: node.args[0]!, steps: [step as Pipeline.Step] }
}

const chainOfInput = (image: ImageInput): Chain | undefined => (Expr.isExpr(image) ? chainOf(image.node) : undefined)

const sourceOf = (chain: Chain) => new Expr.Expr<Media.Uri<"Image">>(chain.source, Column.Image.type)

/** `call`, a transform of `image`; when `image` is a chain of transforms, one pipeline of them all. */
const fused = (image: ImageInput, call: Media.ImageExpr): Media.ImageExpr => {
  const inner = chainOfInput(image)
  const outer = inner === undefined ? undefined : chainOf(call.node)
  if (inner === undefined || outer === undefined) return call
  return pipelineFn({ image: sourceOf(inner), steps: [...inner.steps, ...outer.steps] })
}

// ---------------------------------------------------------------------------
// Builders

/** `{ width, height, format, channels, mode, hasAlpha }` of an image. */
export const metadata = (image: ImageInput): Expr.Expr<Metadata> => {
  const chain = chainOfInput(image)
  return chain === undefined
    ? metadataFn({ image })
    : pipelineMetadataFn({ image: sourceOf(chain), steps: chain.steps })
}

/** The width in pixels (after EXIF orientation), read from the header. */
export const width = (image: ImageInput): Expr.Expr<number> => {
  const chain = chainOfInput(image)
  return chain === undefined ? widthFn({ image }) : pipelineWidthFn({ image: sourceOf(chain), steps: chain.steps })
}

/** The height in pixels (after EXIF orientation), read from the header. */
export const height = (image: ImageInput): Expr.Expr<number> => {
  const chain = chainOfInput(image)
  return chain === undefined ? heightFn({ image }) : pipelineHeightFn({ image: sourceOf(chain), steps: chain.steps })
}

/** Resizes to `width` x `height` (one may be omitted: aspect kept); `fit` defaults to `cover`. */
export const resize = (image: ImageInput, options: ResizeOptions): Media.ImageExpr =>
  fused(
    image,
    resizeFn({ image, width: options.width ?? null, height: options.height ?? null, fit: options.fit ?? null })
  )

/** The region `width` x `height` at (`left`, `top`). */
export const crop = (image: ImageInput, region: CropRegion): Media.ImageExpr =>
  fused(image, cropFn({ image, ...region }))

/** Rotates clockwise by `degrees` (other than multiples of 90, the canvas grows, filled black). */
export const rotate = (image: ImageInput, degrees: Num): Media.ImageExpr => fused(image, rotateFn({ image, degrees }))

/** Mirrors top to bottom. */
export const flip = (image: ImageInput): Media.ImageExpr => fused(image, flipFn({ image }))

/** Mirrors left to right. */
export const flop = (image: ImageInput): Media.ImageExpr => fused(image, flopFn({ image }))

/** Re-encodes as `format` and/or converts to colour `mode`. */
export const convert = (image: ImageInput, options: ConvertOptions): Media.ImageExpr =>
  fused(image, convertFn({ image, format: options.format ?? null, mode: options.mode ?? null }))

/** Fits within `size` x `size`, keeping the aspect ratio, never enlarging. */
export const thumbnail = (image: ImageInput, options: { readonly size: Num }): Media.ImageExpr =>
  fused(image, thumbnailFn({ image, size: options.size }))

/** A single-channel (`L`) grayscale image. */
export const grayscale = (image: ImageInput): Media.ImageExpr => fused(image, grayscaleFn({ image }))

/** `overlay` (fitted to `image`'s size) over `image` at `opacity` (0..1). Not a step of a pipeline: two images. */
export const blend = (image: ImageInput, overlay: ImageInput, options: { readonly opacity: Num }): Media.ImageExpr =>
  blendFn({ image, overlay, opacity: options.opacity })

/** The image's bytes in base64 (re-encoded when `format` is given). */
export const toBase64 = (image: ImageInput, options?: EncodeOptions): Expr.Expr<string> => {
  const chain = chainOfInput(image)
  const format = options?.format ?? null
  return chain === undefined
    ? toBase64Fn({ image, format })
    : pipelineToBase64Fn({ image: sourceOf(chain), steps: chain.steps, format })
}

/** A `data:image/...;base64,` URL, what vision models take (JPEG, PNG, WebP, GIF as they are; else PNG). */
export const toDataUrl = (image: ImageInput, options?: EncodeOptions): Expr.Expr<string> => {
  const chain = chainOfInput(image)
  const format = options?.format ?? null
  return chain === undefined
    ? toDataUrlFn({ image, format })
    : pipelineToDataUrlFn({ image: sourceOf(chain), steps: chain.steps, format })
}

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
