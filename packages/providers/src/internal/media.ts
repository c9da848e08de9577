/**
 * Media in and out of provider functions. A media column holds a reference
 * (a local path, a `file://` or an `http(s)://` URL): images go to models as
 * URLs they can fetch or as base64, audio is read for upload. Generated media
 * is written content-addressed in the media store's layout
 * (`<root>/<sha256[0:2]>/<sha256[2:4]>/<sha256>.<ext>`, root
 * `<TESSERA_HOME>/media` by default) without depending on `@tessera/media`.
 */
import { Media } from "@tessera/core"
import { Config, Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import * as ProviderError from "../ProviderError.ts"

export type ImageMediaType = "image/png" | "image/jpeg" | "image/gif" | "image/webp"

/** A media file's bytes, file name and media type. */
export interface Loaded {
  readonly bytes: Uint8Array
  readonly name: string
  readonly mediaType: string
}

const BY_EXTENSION: Readonly<Record<string, string>> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  flac: "audio/flac",
  ogg: "audio/ogg",
  opus: "audio/opus",
  aac: "audio/aac",
  m4a: "audio/mp4",
  webm: "audio/webm",
  pcm: "audio/pcm"
}

const startsWith = (bytes: Uint8Array, prefix: ReadonlyArray<number>, at = 0): boolean =>
  prefix.every((b, i) => bytes[at + i] === b)

/** The image type of some bytes, from their signature. */
export const sniffImage = (bytes: Uint8Array): ImageMediaType | undefined => {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png"
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "image/jpeg"
  if (startsWith(bytes, [0x47, 0x49, 0x46, 0x38])) return "image/gif"
  if (startsWith(bytes, [0x52, 0x49, 0x46, 0x46]) && startsWith(bytes, [0x57, 0x45, 0x42, 0x50], 8)) {
    return "image/webp"
  }
  return undefined
}

const extensionOf = (name: string): string => NodePath.extname(name).slice(1).toLowerCase()

const mediaTypeOf = (name: string, bytes: Uint8Array, fallback = "application/octet-stream"): string =>
  sniffImage(bytes) ?? BY_EXTENSION[extensionOf(name)] ?? fallback

export const isRemote = (ref: string): boolean => /^https?:\/\//i.test(ref)

const message = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const readLocal = (ref: string): Effect.Effect<Loaded, ProviderError.Reason> =>
  Effect.tryPromise({
    try: async () => {
      const path = ref.startsWith("file:") ? NodeUrl.fileURLToPath(ref) : ref
      const bytes = new Uint8Array(await NodeFs.promises.readFile(path))
      return { bytes, name: NodePath.basename(path), mediaType: mediaTypeOf(path, bytes) }
    },
    catch: (cause) => new ProviderError.BadRequest({ message: `cannot read media file ${ref}: ${message(cause)}` })
  })

const download = (url: string): Effect.Effect<Loaded, ProviderError.Reason> =>
  Effect.gen(function* () {
    const response = yield* Effect.tryPromise({
      try: (signal) => fetch(url, { signal }),
      catch: (cause) => new ProviderError.Unavailable({ message: `cannot download ${url}: ${message(cause)}` })
    })
    if (!response.ok) {
      yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
      return yield* Effect.fail(
        ProviderError.reasonFromStatus(response.status, `cannot download ${url}: HTTP ${response.status}`)
      )
    }
    const bytes = yield* Effect.tryPromise({
      try: async () => new Uint8Array(await response.arrayBuffer()),
      catch: (cause) => new ProviderError.Unavailable({ message: `download of ${url} broke off: ${message(cause)}` })
    })
    const name = NodePath.basename(new URL(url).pathname) || "download"
    const header = response.headers.get("content-type")?.split(";")[0]?.trim()
    return { bytes, name, mediaType: mediaTypeOf(name, bytes, header || undefined) }
  })

/** A media reference's bytes: a local path or `file://` URL read, an `http(s)://` URL downloaded. */
export const load = (ref: string): Effect.Effect<Loaded, ProviderError.Reason> =>
  isRemote(ref) ? download(ref) : readLocal(ref)

const imageOf = (ref: string): Effect.Effect<Loaded & { readonly mediaType: ImageMediaType }, ProviderError.Reason> =>
  Effect.flatMap(readLocal(ref), (file) => {
    const mediaType = sniffImage(file.bytes)
    return mediaType === undefined
      ? Effect.fail(new ProviderError.BadRequest({ message: `${ref} is not a PNG, JPEG, GIF or WebP image` }))
      : Effect.succeed({ ...file, mediaType })
  })

const base64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

/** An image for OpenAI: an `http(s)` URL as it is, a local file as a base64 `data:` URL. */
export const imageUrl = (ref: string): Effect.Effect<string, ProviderError.Reason> =>
  isRemote(ref)
    ? Effect.succeed(ref)
    : Effect.map(imageOf(ref), (file) => `data:${file.mediaType};base64,${base64(file.bytes)}`)

/** An image source for Anthropic: a `url` source for `http(s)`, a `base64` one for a local file. */
export const imageSource = (
  ref: string
): Effect.Effect<
  | { readonly type: "url"; readonly url: string }
  | { readonly type: "base64"; readonly media_type: ImageMediaType; readonly data: string },
  ProviderError.Reason
> =>
  isRemote(ref)
    ? Effect.succeed({ type: "url" as const, url: ref })
    : Effect.map(imageOf(ref), (file) => ({
        type: "base64" as const,
        media_type: file.mediaType,
        data: base64(file.bytes)
      }))

/** Where generated media goes: `directory`, else `<TESSERA_HOME>/media` (home default `~/.tessera`). */
export const mediaRoot = (directory: string | undefined): Effect.Effect<string> =>
  directory !== undefined
    ? Effect.succeed(NodePath.resolve(directory))
    : Config.String("TESSERA_HOME").pipe(
        Config.withDefault(NodePath.join(NodeOs.homedir(), ".tessera")),
        Effect.orElseSucceed(() => NodePath.join(NodeOs.homedir(), ".tessera")),
        Effect.map((home) => NodePath.join(NodePath.resolve(home), "media"))
      )

const writeAtomic = (path: string, bytes: Uint8Array): Effect.Effect<void, ProviderError.Reason> =>
  Effect.tryPromise({
    try: () => NodeFs.promises.mkdir(NodePath.dirname(path), { recursive: true }),
    catch: (cause) => Media.fileError(NodePath.dirname(path), cause, true)
  }).pipe(
    Effect.andThen(Media.writeAtomic(path, bytes)),
    Effect.mapError(
      (error) => new ProviderError.BadRequest({ message: `cannot write generated media ${path}: ${error.message}` })
    )
  )

/**
 * Stores bytes under their SHA-256 below `root` and returns the file's path.
 * Idempotent; written to a temporary name and renamed, so a reader never sees
 * half a file. Like the media store, it pins the file for the running
 * operation and records that it created it, so that an operation that fails
 * collects it (when nothing references it) and no other one does meanwhile.
 */
export const put = Effect.fnUntraced(function* (root: string, bytes: Uint8Array, extension: string) {
  const path = Media.contentPath(root, bytes, extension)
  yield* Media.pin([path])
  const exists = yield* Effect.promise(() =>
    NodeFs.promises.stat(path).then(
      (stat) => stat.isFile(),
      () => false
    )
  )
  if (exists) return path
  yield* writeAtomic(path, bytes)
  yield* Media.created(path)
  return path
})
