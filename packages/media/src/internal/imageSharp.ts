/**
 * The adapter between sharp (libvips) and Tessera's image functions: runs a
 * sharp pipeline on a media reference and maps sharp's exceptions, once, to
 * `MediaError`s that name the reference.
 */
import { Effect } from "effect"
import sharp, { type Sharp } from "sharp"
import { Current, MediaError, type Shape } from "../MediaStore.ts"

export type { Sharp }

/** The formats image functions write. */
export const OUTPUT_FORMATS = ["jpeg", "png", "webp", "gif", "tiff", "avif"] as const
export type OutputFormat = (typeof OUTPUT_FORMATS)[number]

const firstLine = (message: string) => message.split("\n")[0]!.trim()

/** Maps a sharp exception raised while processing `ref` (thrown or rejected). */
export const toMediaError = (ref: string, cause: unknown): MediaError => {
  if (cause instanceof MediaError) return cause
  const raw = cause instanceof Error ? cause.message : String(cause)
  const detail = firstLine(raw)
  if (/Input file is missing/i.test(raw)) {
    return new MediaError({ reason: "NotFound", path: ref, message: `Media file not found: ${ref}`, cause })
  }
  if (/^Expected |bad extract area|bad parameter|out of range|Unsupported output format/i.test(raw)) {
    return new MediaError({
      reason: "InvalidArgument",
      path: ref,
      message: `Invalid operation on ${ref}: ${detail}`,
      cause
    })
  }
  return new MediaError({ reason: "InvalidFormat", path: ref, message: `Cannot decode image ${ref}: ${detail}`, cause })
}

export const invalidArgument = (ref: string, message: string): MediaError =>
  new MediaError({ reason: "InvalidArgument", path: ref, message: `Invalid operation on ${ref}: ${message}` })

/** An output format asked for (`null`: none), normalised (`jpg` is `jpeg`); `ref` names the image in errors. */
export const checkFormat = (ref: string, format: string | null): Effect.Effect<OutputFormat | null, MediaError> => {
  if (format === null) return Effect.succeed(null)
  const normalized = format.toLowerCase() === "jpg" ? "jpeg" : format.toLowerCase()
  return OUTPUT_FORMATS.includes(normalized as OutputFormat)
    ? Effect.succeed(normalized as OutputFormat)
    : Effect.fail(invalidArgument(ref, `unsupported output format ${JSON.stringify(format)}`))
}

/** Runs `run` on a sharp instance opened (EXIF orientation applied) on the local file of `ref`. */
export const withImage = <A>(
  ref: string,
  run: (image: Sharp, path: string, store: Shape) => Promise<A>
): Effect.Effect<A, MediaError> =>
  Effect.gen(function* () {
    const store = yield* Effect.service(Current)
    const path = yield* store.localPath(ref)
    return yield* Effect.tryPromise({
      // Pipelines are built inside `try`: sharp throws on invalid options.
      try: () => run(sharp(path, { autoOrient: true }), path, store),
      catch: (cause) => toMediaError(ref, cause)
    })
  })

/** Width and height as displayed: after the EXIF orientation. */
export const orientedSize = (m: {
  readonly width: number
  readonly height: number
  readonly autoOrient?: { readonly width: number; readonly height: number } | undefined
}): { readonly width: number; readonly height: number } => ({
  width: m.autoOrient?.width ?? m.width,
  height: m.autoOrient?.height ?? m.height
})

/** The file extension of a sharp format name. */
export const extensionOf = (format: string): string => (format === "jpeg" ? "jpg" : format === "heif" ? "heic" : format)

/**
 * Runs a transforming pipeline on `ref`, encodes the result (in `format`, or
 * as sharp chooses: the input's format, PNG for SVG) and stores it in the
 * media store; succeeds with the stored file's path.
 */
export const transform = (
  ref: string,
  build: (image: Sharp) => Sharp | Promise<Sharp>,
  format?: OutputFormat | null
): Effect.Effect<string, MediaError> =>
  Effect.gen(function* () {
    const store = yield* Effect.service(Current)
    const path = yield* store.localPath(ref)
    const { data, info } = yield* Effect.tryPromise({
      try: async () => {
        let image = await build(sharp(path, { autoOrient: true }))
        if (format != null) image = image.toFormat(format)
        return image.toBuffer({ resolveWithObject: true })
      },
      catch: (cause) => toMediaError(ref, cause)
    })
    return yield* store.put(data, extensionOf(info.format))
  })

export { sharp }
