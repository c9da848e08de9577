/**
 * Media: what the engine knows of media values (Image, Video, Audio and
 * Document columns) without a media library.
 *
 * - Types: inside expressions and functions a media value is its reference,
 *   a path or URL string typed by its kind (`Uri<"Image">`); query results
 *   give a `MediaRef` handle instead (the URI, its local file, its bytes).
 * - Support: a media library (`@tessera/media`) registers, on import, how to
 *   check a value of each kind cheaply, how to store bytes given on insert,
 *   and where the media store's files are. Without it values are still
 *   stored and read; local files are read directly and nothing is checked.
 * - File lifecycle: an operation that writes media-store files runs under
 *   `track`; when it fails, the files it created that no row of any table
 *   (in any version) references are removed (`collectGarbage`).
 */
import { Context, Effect, Exit, Schema } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import type * as Expr from "./Expr.ts"
import { ResultCache } from "./ResultCache.ts"
import { Store } from "./Store.ts"

export type Kind = "Image" | "Video" | "Audio" | "Document"

export const kinds: ReadonlyArray<Kind> = ["Image", "Video", "Audio", "Document"]

export const isKind = (kind: string): kind is Kind => (kinds as ReadonlyArray<string>).includes(kind)

export class MediaError extends Schema.TaggedError<MediaError>()("MediaError", {
  reason: Schema.Literals(["NotFound", "Unreadable", "Download", "InvalidFormat", "InvalidArgument", "Unwritable"]),
  /** The file or URL concerned. */
  path: Schema.String,
  message: Schema.String,
  /** The HTTP status of a failed download. */
  status: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect())
}) {
  /** Only downloads can succeed on a second try: network failures, 408, 429 and 5xx. */
  get isRetryable(): boolean {
    if (this.reason !== "Download") return false
    return this.status === undefined || this.status === 408 || this.status === 429 || this.status >= 500
  }
}

const errorCode = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null ? ((cause as { code?: unknown }).code as string | undefined) : undefined

const causeMessage = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/**
 * Where bytes live in a content-addressed media directory:
 * `<root>/<h[0:2]>/<h[2:4]>/<sha256>.<extension>`.
 */
export const contentPath = (root: string, bytes: Uint8Array, extension: string): string => {
  const hash = NodeCrypto.createHash("sha256").update(bytes).digest("hex")
  return NodePath.join(root, hash.slice(0, 2), hash.slice(2, 4), `${hash}.${extension}`)
}

let tempCounter = 0

/** Writes a file atomically: to a temporary name beside it, then renamed into place (a reader never sees half). */
export const writeAtomic = (path: string, bytes: Uint8Array): Effect.Effect<void, MediaError> =>
  Effect.tryPromise({
    try: async () => {
      const temp = `${path}.${process.pid}.${tempCounter++}.tmp`
      try {
        await NodeFs.promises.writeFile(temp, bytes)
        await NodeFs.promises.rename(temp, path)
      } catch (cause) {
        await NodeFs.promises.rm(temp, { force: true })
        throw cause
      }
    },
    catch: (cause) => fileError(path, cause, true)
  })

/** Maps a failed file-system call on `path` to a `MediaError` (a missing file is `NotFound`). */
export const fileError = (path: string, cause: unknown, writing = false): MediaError => {
  const code = errorCode(cause)
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new MediaError({ reason: "NotFound", path, message: `Media file not found: ${path}`, cause })
  }
  return new MediaError({
    reason: writing ? "Unwritable" : "Unreadable",
    path,
    message: `Cannot ${writing ? "write" : "read"} media file ${path}: ${causeMessage(cause)}`,
    cause
  })
}

/** Whether a reference is remote (`http(s)://`): fetched on first use, never on write. */
export const isRemote = (uri: string): boolean => /^https?:\/\//i.test(uri)

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

declare const UriBrand: unique symbol

/** A media value inside expressions and functions: a path or URL of a file of kind `K`. */
export type Uri<K extends Kind = Kind> = string & { readonly [UriBrand]: K }

/** What a media column accepts on write: a path or URL, a handle from a query, and for images bytes. */
export type Input<K extends Kind> = string | URL | MediaRef<K> | (K extends "Image" ? Uint8Array : never)

/** `T` as query results give it: a media reference becomes a handle. */
export type Read<T> = T extends Uri<infer K extends Kind> ? MediaRef<K> : T

/** `T` as expressions and computed columns hold it: a handle becomes its reference. */
export type Value<T> = T extends MediaRef<infer K extends Kind> ? Uri<K> : T

/** `T` as a function's own code returns it: a media reference is any path or URL string. */
export type Plain<T> = T extends Uri<any> ? string : T

/**
 * The methods of image expressions: `t.c.img.resize({ width: 64 }).grayscale()`.
 * Empty here; `@tessera/media` declares them (augmenting this interface) and
 * installs them (`Expr.installMethods`) on import.
 */
// biome-ignore lint/suspicious/noEmptyInterface: @tessera/media declares the methods (declaration merging).
export interface ImageMethods {}

/** An image-valued expression, with the image methods. */
export type ImageExpr<T extends Uri<"Image"> | null = Uri<"Image">> = Expr.Expr<T> & ImageMethods

type IsAny<T> = 0 extends 1 & T ? true : false

/** `E` (an expression of values `T`) with the methods of its media kind, if it has any. */
export type WithMethods<E, T> =
  IsAny<T> extends true
    ? E
    : [Exclude<T, null>] extends [never]
      ? E
      : [Exclude<T, null>] extends [Uri<"Image">]
        ? E & ImageMethods
        : E

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

/**
 * A media value as queries return it: its reference (`uri`), and its local
 * file and bytes on demand (an `http(s)` URL is downloaded once, through the
 * media store's cache, when `@tessera/media` is loaded). It prints and
 * serialises as its URI, and can be inserted back into a media column.
 */
export class MediaRef<out K extends Kind = Kind> {
  readonly kind: K
  readonly uri: string

  constructor(kind: K, uri: string) {
    this.kind = kind
    this.uri = uri
  }

  /** A local file with the media: the path itself, or the download cache's copy of a URL. */
  get localPath(): Effect.Effect<string, MediaError> {
    return support.store.localPath(this.uri)
  }

  /** The file's bytes, read when the effect runs. */
  get bytes(): Effect.Effect<Uint8Array, MediaError> {
    return Effect.flatMap(this.localPath, (path) =>
      Effect.tryPromise({
        try: () => NodeFs.promises.readFile(path).then((buffer) => new Uint8Array(buffer)),
        catch: (cause) => fileError(path, cause)
      })
    )
  }

  toString(): string {
    return this.uri
  }

  toJSON(): string {
    return this.uri
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `MediaRef(${this.kind}: ${this.uri})`
  }
}

export const isMediaRef = (u: unknown): u is MediaRef => u instanceof MediaRef

// ---------------------------------------------------------------------------
// Support: what a media library registers
// ---------------------------------------------------------------------------

/** How values of one kind are checked and ingested on write. */
export interface KindSupport {
  /**
   * Checks a local reference cheaply (a header, not the whole file): fails
   * with a `MediaError` naming the file when it is missing, corrupt or of
   * another format. Remote references are never passed here.
   */
  readonly validate?: ((uri: string) => Effect.Effect<void, MediaError>) | undefined
  /** Stores bytes given on write (checked to be of the kind) and returns the stored file's path. */
  readonly ingest?: ((bytes: Uint8Array) => Effect.Effect<string, MediaError>) | undefined
}

/** The content-addressed files of the media store in context. */
export interface Files {
  /** Whether `path` is one of them: nothing else is ever removed. */
  readonly owns: (path: string) => boolean
  /**
   * Removes one of them. Synchronous, so that no write of the same file (which
   * pins it first, see `pin`) can interleave with the check that precedes it.
   */
  readonly remove: (path: string) => void
}

/** Where media files are found and kept. */
export interface StoreSupport {
  /** A local file for a reference (remote ones downloaded once into a cache). */
  readonly localPath: (uri: string) => Effect.Effect<string, MediaError>
  /** The media store in context, for collecting garbage. */
  readonly files: Effect.Effect<Files>
}

const localOnly: StoreSupport = {
  localPath: (uri) => {
    if (isRemote(uri)) {
      return Effect.fail(
        new MediaError({
          reason: "Download",
          path: uri,
          message: `Cannot fetch ${uri}: remote media is downloaded by @tessera/media (import it)`
        })
      )
    }
    return Effect.try({
      try: () => (uri.startsWith("file:") ? NodeUrl.fileURLToPath(uri) : uri),
      catch: (cause) =>
        new MediaError({ reason: "InvalidArgument", path: uri, message: `Invalid file URL ${uri}`, cause })
    }).pipe(
      Effect.tap((path) =>
        Effect.tryPromise({ try: () => NodeFs.promises.access(path), catch: (cause) => fileError(uri, cause) })
      )
    )
  },
  files: Effect.succeed({ owns: () => false, remove: () => {} })
}

const support: { store: StoreSupport; readonly kinds: Map<Kind, KindSupport> } = {
  store: localOnly,
  kinds: new Map()
}

/** Registers a media library's support (what it gives replaces what was registered before). */
export const register = (options: {
  readonly kinds?: Partial<Record<Kind, KindSupport>> | undefined
  readonly store?: StoreSupport | undefined
}): void => {
  if (options.store !== undefined) support.store = options.store
  for (const [kind, given] of Object.entries(options.kinds ?? {}) as Array<[Kind, KindSupport]>) {
    support.kinds.set(kind, { ...support.kinds.get(kind), ...given })
  }
}

/** A path or `file:` URL; any other URL (`http(s)://`, `s3://`...) is remote. */
const isLocal = (uri: string): boolean => uri.startsWith("file:") || !/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)

/** How many values are checked (or ingested) at once on write. */
export const PREPARE_CONCURRENCY = 8

/**
 * The reference to store for a value given to a media column of `kind`
 * (already checked to be a string, a URL, a handle or bytes): bytes are
 * ingested; a local reference is checked when the kind has a validator; a
 * remote one (any URL but `file:`) is stored as it is (checked when first
 * read, as downloading on write would make inserts as slow as the network).
 */
export const prepare = (kind: Kind, value: string | Uint8Array): Effect.Effect<string, MediaError> => {
  const given = support.kinds.get(kind)
  if (value instanceof Uint8Array) {
    return given?.ingest !== undefined
      ? given.ingest(value)
      : Effect.fail(
          new MediaError({
            reason: "InvalidArgument",
            path: `(${value.length} bytes)`,
            message: `${kind} values are paths or URLs${kind === "Image" ? " (bytes need @tessera/media: import it)" : ""}, got ${value.length} bytes`
          })
        )
  }
  if (!isLocal(value) || given?.validate === undefined) return Effect.succeed(value)
  return Effect.as(given.validate(value), value)
}

/** The reference a written value stands for, before `prepare`: bytes stay bytes. */
export const referenceOf = (value: unknown): string | Uint8Array | undefined => {
  if (typeof value === "string") return value.length > 0 ? value : undefined
  if (value instanceof URL) return value.href
  if (value instanceof MediaRef) return value.uri
  if (value instanceof Uint8Array) return value
  return undefined
}

// ---------------------------------------------------------------------------
// File lifecycle
// ---------------------------------------------------------------------------

/** Counts, per media-store file, the running operations that produced or read it. */
const pins = new Map<string, number>()

/** What one operation wrote to the media store. */
class Journal {
  readonly pinned = new Set<string>()
  readonly created = new Set<string>()

  pin(path: string): void {
    if (this.pinned.has(path)) return
    this.pinned.add(path)
    pins.set(path, (pins.get(path) ?? 0) + 1)
  }

  release(): void {
    for (const path of this.pinned) {
      const n = (pins.get(path) ?? 1) - 1
      if (n <= 0) pins.delete(path)
      else pins.set(path, n)
    }
    this.pinned.clear()
  }
}

const CurrentJournal = Context.Reference<Journal | undefined>("@tessera/core/Media/CurrentJournal", {
  defaultValue: () => undefined
})

/**
 * For media stores: marks files the running operation is about to produce or
 * use, so that no other operation collects them until it ends. Call it before
 * checking whether a content-addressed file exists.
 */
export const pin = (paths: Iterable<string>): Effect.Effect<void> =>
  Effect.map(Effect.service(CurrentJournal), (journal) => {
    if (journal !== undefined) for (const path of paths) journal.pin(path)
  })

/** For media stores: records that the running operation created `path` (it did not exist). */
export const created = (path: string): Effect.Effect<void> =>
  Effect.map(Effect.service(CurrentJournal), (journal) => {
    if (journal === undefined) return
    journal.pin(path)
    journal.created.add(path)
  })

/**
 * Runs an operation that may write media-store files (an insert, a backfill,
 * an update): its files are pinned while it runs; if it fails (or is
 * interrupted), those it created that nothing references are removed. Nested
 * operations belong to the outermost one.
 */
export const track = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.service(CurrentJournal), (outer) => {
    if (outer !== undefined) return effect
    const journal = new Journal()
    return effect.pipe(
      Effect.provideService(CurrentJournal, journal),
      Effect.onExit((exit) => {
        journal.release()
        return Exit.isFailure(exit) ? Effect.asVoid(collectGarbage(journal.created)) : Effect.void
      })
    )
  })

/**
 * Removes the media-store files among `candidates` that no row of any table
 * references (live or in an older version), that no running operation of
 * this process has pinned, and that belong to the media store in context;
 * forgets cached function results that point at them. Returns how many files
 * it removed. Never fails: what cannot be checked is kept (and logged).
 */
export const collectGarbage: (candidates: Iterable<string>) => Effect.Effect<number> = Effect.fn(
  "Media.collectGarbage"
)(
  function* (candidates: Iterable<string>) {
    const files = yield* support.store.files
    const owned = [...new Set(candidates)].filter((path) => files.owns(path) && !pins.has(path))
    if (owned.length === 0) return 0
    const store = yield* Effect.serviceOption(Store)
    if (store._tag === "None") return 0
    const used = yield* store.value.mediaInUse(owned)
    const orphans = owned.filter((path) => !used.has(path))
    if (orphans.length === 0) return 0
    const cache = yield* Effect.serviceOption(ResultCache)
    if (cache._tag === "Some") yield* cache.value.forget(orphans)
    return yield* Effect.sync(() => {
      let removed = 0
      for (const path of orphans) {
        if (pins.has(path)) continue
        files.remove(path)
        removed++
      }
      return removed
    })
  },
  Effect.catchCause((cause) =>
    Effect.as(Effect.logWarning("Tessera: unreferenced media files were kept (could not check them)", cause), 0)
  )
)
