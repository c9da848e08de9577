/**
 * Image pipelines: the single-image transforms (resize, crop, rotate, flip,
 * flop, convert, thumbnail, grayscale) as data, checked and run on one input
 * with one encode at the end. `Image` fuses a chain of its transforms into one
 * pipeline, so that the images in between never reach the media store.
 *
 * Each step is one sharp pass, as when it ran alone: within one pass sharp
 * applies its operations in a fixed order (greyscale before resize, one resize
 * and one rotation, flips as flags) and converts to sRGB at the output, so two
 * steps in one pass would not give what applying them one by one gives.
 * Between passes the pixels stay in memory, as an uncompressed TIFF: lossless
 * for every layout a pass produces (a raw buffer would lose the alpha of a grey
 * image). So a chain equals its steps applied one by one, except that a lossy
 * input format (JPEG, ...) is encoded once, at the end, instead of after every
 * step; a format a step asks for is encoded where it was asked.
 */
import { Effect, Schema } from "effect"
import type { FormatEnum, OutputInfo } from "sharp"
import { Current, type MediaError } from "../MediaStore.ts"
import {
  checkFormat,
  extensionOf,
  invalidArgument,
  type OutputFormat,
  orientedSize,
  type Sharp,
  sharp,
  toMediaError
} from "./imageSharp.ts"

export type Fit = "cover" | "contain" | "fill" | "inside" | "outside"
const FITS: ReadonlyArray<string> = ["cover", "contain", "fill", "inside", "outside"]
const MODES: ReadonlyArray<string> = ["L", "grayscale", "RGB", "RGBA"]

const optionalNumber = Schema.NullOr(Schema.Number)
const optionalString = Schema.NullOr(Schema.String)

/** One transform: `op` is the name of its function (`image.<op>`), the other fields its parameters. */
export const Step = Schema.Union([
  Schema.Struct({ op: Schema.Literal("resize"), width: optionalNumber, height: optionalNumber, fit: optionalString }),
  Schema.Struct({
    op: Schema.Literal("crop"),
    left: Schema.Number,
    top: Schema.Number,
    width: Schema.Number,
    height: Schema.Number
  }),
  Schema.Struct({ op: Schema.Literal("rotate"), degrees: Schema.Number }),
  Schema.Struct({ op: Schema.Literal("flip") }),
  Schema.Struct({ op: Schema.Literal("flop") }),
  Schema.Struct({ op: Schema.Literal("convert"), format: optionalString, mode: optionalString }),
  Schema.Struct({ op: Schema.Literal("thumbnail"), size: Schema.Number }),
  Schema.Struct({ op: Schema.Literal("grayscale") })
])
export type Step = typeof Step.Type

export const Steps = Schema.Array(Step)
const decodeSteps = Schema.decodeUnknownEffect(Steps)

/** Decodes a pipeline's steps (from an expression, so from the catalog); `ref` names the image in errors. */
export const decode = (ref: string, steps: unknown): Effect.Effect<ReadonlyArray<Step>, MediaError> =>
  decodeSteps(steps).pipe(
    Effect.mapError((cause) => invalidArgument(ref, `invalid pipeline steps: ${cause.message}`)),
    Effect.flatMap((decoded) =>
      decoded.length === 0
        ? Effect.fail(invalidArgument(ref, "a pipeline needs at least one step"))
        : Effect.succeed(decoded)
    )
  )

interface Size {
  readonly width: number
  readonly height: number
}

/**
 * A checked step: what it does to a sharp instance, the format it asks for,
 * and the check of its input's size it needs, if any (an error message).
 */
interface Pass {
  readonly apply: (image: Sharp) => Sharp
  readonly format: OutputFormat | null
  readonly check?: ((size: Size) => string | undefined) | undefined
}

const pass = (apply: (image: Sharp) => Sharp, format: OutputFormat | null = null): Effect.Effect<Pass> =>
  Effect.succeed({ apply, format })

const grayscale = (image: Sharp) => image.grayscale().toColourspace("b-w")

/** Checks a step's arguments (the checks sharp does not do) before any file is read. */
const prepare = (ref: string, step: Step): Effect.Effect<Pass, MediaError> => {
  switch (step.op) {
    case "resize": {
      const { width, height, fit } = step
      if (width === null && height === null)
        return Effect.fail(invalidArgument(ref, "resize needs a width or a height"))
      if (fit !== null && !FITS.includes(fit)) {
        return Effect.fail(invalidArgument(ref, `unknown fit ${JSON.stringify(fit)}`))
      }
      return pass((img) =>
        img.resize({ width: width ?? undefined, height: height ?? undefined, fit: (fit ?? "cover") as Fit })
      )
    }
    case "crop": {
      const { left, top, width, height } = step
      // libvips would refuse the region too, but its error message is global to the process: another
      // pipeline finishing meanwhile can clear it, leaving an anonymous error. Checked here, it is always this.
      return Effect.succeed({
        apply: (img) => img.extract({ left, top, width, height }),
        format: null,
        check: (size) =>
          width < 1 || height < 1 || left + width > size.width || top + height > size.height
            ? "extract_area: bad extract area"
            : undefined
      })
    }
    case "rotate":
      return pass((img) => img.rotate(step.degrees))
    case "flip":
      return pass((img) => img.flip())
    case "flop":
      return pass((img) => img.flop())
    case "convert":
      return Effect.flatMap(checkFormat(ref, step.format), (format) => {
        const { mode } = step
        if (mode !== null && !MODES.includes(mode)) {
          return Effect.fail(invalidArgument(ref, `unknown colour mode ${JSON.stringify(mode)}`))
        }
        return pass(
          (img) =>
            mode === "L" || mode === "grayscale"
              ? grayscale(img)
              : mode === "RGB"
                ? img.removeAlpha().toColourspace("srgb")
                : mode === "RGBA"
                  ? img.ensureAlpha().toColourspace("srgb")
                  : img,
          format
        )
      })
    case "thumbnail":
      return pass((img) => img.resize({ width: step.size, height: step.size, fit: "inside", withoutEnlargement: true }))
    case "grayscale":
      return pass(grayscale)
  }
}

// The format sharp writes when asked for none: the input's (PNG for SVG); `avif` is HEIF with AV1, its default.
type Format = keyof FormatEnum | "avif"
const MATCHING_OUTPUT: Readonly<Record<string, Format>> = {
  jpeg: "jpeg",
  png: "png",
  svg: "png",
  webp: "webp",
  gif: "gif",
  tiff: "tiff",
  heif: "avif",
  jp2: "jp2",
  jxl: "jxl"
}

/** The format sharp would write for the file at `path` when asked for none (it fails alike when there is none). */
const matchingFormat = async (path: string): Promise<Format> => {
  const { format } = await sharp(path).metadata()
  const matching = MATCHING_OUTPUT[format]
  if (matching === undefined)
    throw new Error(`Unsupported output format when trying to match input format of ${format}`)
  return matching
}

const execute = async (path: string, passes: ReadonlyArray<Pass>): Promise<{ data: Buffer; info: OutputInfo }> => {
  let input: string | Buffer = path
  // The size of `input`: known once a step has run.
  let size: Size | undefined
  let format: OutputFormat | null = null
  for (const [i, step] of passes.entries()) {
    // Pipelines are built here, inside the caller's `try`: sharp throws on invalid options.
    let image = step.apply(sharp(input, { autoOrient: true }))
    if (step.check !== undefined) {
      size ??= orientedSize(await sharp(path, { autoOrient: true }).metadata())
      const problem = step.check(size)
      if (problem !== undefined) throw new Error(problem)
    }
    format = step.format ?? format
    if (i === passes.length - 1) {
      // What the last step would have written: the latest format asked for, else the input's.
      if (format !== null) image = image.toFormat(format)
      else if (i > 0) image = image.toFormat(await matchingFormat(path))
      return image.toBuffer({ resolveWithObject: true })
    }
    // A format asked for before the end is encoded there (what it loses, such as alpha in JPEG, stays lost).
    const { data, info } = await (step.format !== null
      ? image.toFormat(step.format)
      : image.tiff({ compression: "none" })
    ).toBuffer({ resolveWithObject: true })
    input = data
    size = { width: info.width, height: info.height }
  }
  throw new Error("a pipeline needs at least one step")
}

/**
 * Runs `steps` (at least one) on `ref`: checks every step's arguments, then
 * applies them in order, encoding once; fails with a `MediaError` naming `ref`.
 */
export const run = Effect.fnUntraced(function* (ref: string, steps: ReadonlyArray<Step>) {
  const passes = yield* Effect.forEach(steps, (step) => prepare(ref, step))
  const store = yield* Effect.service(Current)
  const path = yield* store.localPath(ref)
  return yield* Effect.tryPromise({
    try: () => execute(path, passes),
    catch: (cause) => toMediaError(ref, cause)
  })
})

/** Runs `steps` on `ref` and stores the result in the media store; succeeds with the stored file's path. */
export const store = (ref: string, steps: ReadonlyArray<Step>): Effect.Effect<string, MediaError> =>
  Effect.flatMap(run(ref, steps), ({ data, info }) =>
    Effect.flatMap(Effect.service(Current), (media) => media.put(data, extensionOf(info.format)))
  )

/** Runs `steps` on `ref` and reads the result in memory (nothing is stored): `use` gets it opened and encoded. */
export const withResult = <A>(
  ref: string,
  steps: ReadonlyArray<Step>,
  use: (image: Sharp, bytes: Buffer) => Promise<A>
): Effect.Effect<A, MediaError> =>
  Effect.flatMap(run(ref, steps), ({ data }) =>
    Effect.tryPromise({ try: () => use(sharp(data), data), catch: (cause) => toMediaError(ref, cause) })
  )
