/**
 * Ingest: how media values are checked, and image bytes stored, when rows are
 * written. Importing `@tessera/media` registers these with core (`Media.register`),
 * so that `Table.insert` (and `update`) check every local file it is given:
 *
 * - Image: its header, through sharp's metadata (the pixels are not decoded);
 * - Video: ffprobe finds a video stream, in a video container (a still image
 *   such as a PNG, which ffprobe also reads as one frame of "video", is refused);
 * - Audio: ffprobe finds an audio stream;
 * - Document: the first bytes are a format `Document` reads (PDF, HTML,
 *   Markdown, text).
 *
 * Remote (`http(s)`) references are not fetched on write: they are checked
 * when a function first reads them. Image bytes are stored content-addressed
 * in the media store (`MediaStore.Current`) and the column keeps the path.
 */
import { Media } from "@tessera/core"
import { Effect } from "effect"
import * as NodeFs from "node:fs/promises"
import * as Document from "./Document.ts"
import type * as Ffmpeg from "./Ffmpeg.ts"
import * as Io from "./internal/ffmpegIo.ts"
import { extensionOf, sharp, toMediaError, withImage } from "./internal/imageSharp.ts"
import { Current } from "./MediaStore.ts"

const invalid = (uri: string, message: string) => new Media.MediaError({ reason: "InvalidFormat", path: uri, message })

/** An image whose header sharp cannot read is refused. */
export const validateImage = (uri: string): Effect.Effect<void, Media.MediaError> =>
  withImage(uri, (image) => image.metadata()).pipe(
    Effect.flatMap((m) =>
      m.format === undefined ? Effect.fail(invalid(uri, `${uri} is not an image of a known format`)) : Effect.void
    )
  )

/** Bytes given for an image: checked to be one, then stored; succeeds with the stored file's path. */
export const ingestImage = (bytes: Uint8Array): Effect.Effect<string, Media.MediaError> => {
  const label = `(${bytes.length} bytes)`
  return Effect.tryPromise({
    try: () => sharp(bytes).metadata(),
    catch: (cause) => toMediaError(label, cause)
  }).pipe(
    Effect.flatMap((m) =>
      m.format === undefined
        ? Effect.fail(invalid(label, `the bytes ${label} are not an image of a known format`))
        : Effect.flatMap(Effect.service(Current), (store) => store.put(bytes, extensionOf(m.format)))
    )
  )
}

/** ffprobe's streams of a local file, failing with a `MediaError` naming it. */
const probe = (uri: string, what: string) =>
  Effect.flatMap(Io.localPath(uri), (path) =>
    Io.probe(path).pipe(
      Effect.mapError((error: Ffmpeg.FfmpegError) =>
        error.reason === "ProcessFailed" || error.reason === "InvalidOutput"
          ? invalid(uri, `Cannot read ${what} ${uri}: ${error.message}`)
          : new Media.MediaError({
              reason: "Unreadable",
              path: uri,
              message: `Cannot check ${what} ${uri}: ${error.message}`,
              cause: error
            })
      )
    )
  )

// ffprobe reads still images through these demuxers: they are not videos.
const IMAGE_DEMUXER_RE = /(^|,)(image2|[a-z0-9]+_pipe)(,|$)/

/** A file without a video stream, or that is a still image, is refused. */
export const validateVideo = (uri: string): Effect.Effect<void, Media.MediaError> =>
  Effect.flatMap(probe(uri, "video"), (probed) => {
    const format = probed.format?.format_name ?? ""
    if (IMAGE_DEMUXER_RE.test(format))
      return Effect.fail(invalid(uri, `${uri} is a still image (${format}), not a video`))
    return (probed.streams ?? []).some((s) => s.codec_type === "video")
      ? Effect.void
      : Effect.fail(invalid(uri, `${uri} has no video stream`))
  })

/** A file without an audio stream is refused. */
export const validateAudio = (uri: string): Effect.Effect<void, Media.MediaError> =>
  Effect.flatMap(probe(uri, "audio"), (probed) =>
    (probed.streams ?? []).some((s) => s.codec_type === "audio")
      ? Effect.void
      : Effect.fail(invalid(uri, `${uri} has no audio stream`))
  )

/** What `Document.detectFormat` needs to tell a format (PDF header, binary test, sniffing). */
const SNIFF_BYTES = 8192

/** A file whose first bytes are no format `Document` reads (e.g. an image) is refused. */
export const validateDocument = (uri: string): Effect.Effect<void, Media.MediaError> =>
  Effect.flatMap(Io.localPath(uri), (path) =>
    Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => NodeFs.open(path), catch: (cause) => Media.fileError(uri, cause) }),
      (file) =>
        Effect.tryPromise({
          try: () => file.read(new Uint8Array(SNIFF_BYTES), 0, SNIFF_BYTES, 0),
          catch: (cause) => Media.fileError(uri, cause)
        }),
      (file) => Effect.promise(() => file.close())
    ).pipe(
      Effect.flatMap(({ buffer, bytesRead }) =>
        Document.detectFormat(uri, buffer.subarray(0, bytesRead)) === undefined
          ? Effect.fail(invalid(uri, `${uri} is not a document Tessera reads (PDF, HTML, Markdown or text)`))
          : Effect.void
      )
    )
  )

Media.register({
  kinds: {
    Image: { validate: validateImage, ingest: ingestImage },
    Video: { validate: validateVideo },
    Audio: { validate: validateAudio },
    Document: { validate: validateDocument }
  }
})
