/**
 * MediaStore: where media lives on this machine. Generated media (thumbnails,
 * converted images, extracted frames) is written content-addressed under
 * `<home>/media`, so writing the same bytes twice yields the same path and
 * costs one file. Remote media (`http(s)://`) is fetched once into a bounded
 * download cache under `<home>/cache`, evicting the least recently used files
 * beyond a byte budget, so functions over media only ever open local files.
 *
 * User functions cannot require services, so media functions read `Current`:
 * a reference that defaults to the store under `TESSERA_HOME` and that
 * `layer(home)` replaces.
 *
 * Files it writes are pinned by, and recorded as created for, the running
 * Tessera operation (`Media.track`), so that a failed insert or backfill
 * leaves none behind; importing this module makes query handles
 * (`Media.MediaRef`) download through its cache.
 */
import { Media } from "@tessera/core"
import { Config, Context, Deferred, Effect, Layer } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"

/** A missing, unreadable or undecodable media file or URL (defined in core: query handles fail with it too). */
export const MediaError = Media.MediaError
export type MediaError = Media.MediaError

export interface CacheStats {
  readonly files: number
  readonly bytes: number
  readonly maxBytes: number
  readonly hits: number
  readonly misses: number
  readonly evictions: number
}

export interface Options {
  /** The Tessera home: media goes to `<home>/media`, downloads to `<home>/cache`. */
  readonly home: string
  /** The download cache's byte budget (default 1 GiB). */
  readonly cacheMaxBytes?: number | undefined
}

export interface Shape {
  readonly home: string
  /** `<home>/media`: the content-addressed files. */
  readonly root: string
  /** `<home>/cache`: downloaded remote media. */
  readonly cacheDir: string
  /** Stores bytes under their SHA-256 and returns the file's path; idempotent. */
  readonly put: (bytes: Uint8Array, extension: string) => Effect.Effect<string, MediaError>
  /** Whether `path` is one of the store's content-addressed files. */
  readonly owns: (path: string) => boolean
  /**
   * A local file for a media reference: a path or `file://` URL as it is
   * (checked to exist), an `http(s)://` URL downloaded once into the cache.
   */
  readonly localPath: (ref: string | URL) => Effect.Effect<string, MediaError>
  readonly cacheStats: Effect.Effect<CacheStats>
}

export class MediaStore extends Context.Service<MediaStore, Shape>()("@tessera/media/MediaStore") {}

/** The home Tessera uses when `TESSERA_HOME` is not set. */
export const defaultHome = (): string => NodePath.join(NodeOs.homedir(), ".tessera")

export const DEFAULT_CACHE_MAX_BYTES = 1024 * 1024 * 1024

const EXTENSION_RE = /^[a-z0-9]{1,10}$/

const causeMessage = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

const fsError = Media.fileError

const isFile = (stat: NodeFs.Stats) => stat.isFile()
const notFound = () => false

const isRemote = Media.isRemote

const HASH_NAME_RE = /^([0-9a-f]{2})([0-9a-f]{2})[0-9a-f]{60}\.[a-z0-9]{1,10}$/

/** The extension of a URL's last path segment (`bin` when it has none usable). */
const urlExtension = (url: string): string => {
  let pathname: string
  try {
    pathname = new URL(url).pathname
  } catch {
    return "bin"
  }
  const ext = NodePath.extname(pathname).slice(1).toLowerCase()
  return EXTENSION_RE.test(ext) ? ext : "bin"
}

const writeAtomic = Media.writeAtomic

/** Builds a store (no I/O until it is used). */
export const unsafeMake = (options: Options): Shape => {
  const home = NodePath.resolve(options.home)
  const root = NodePath.join(home, "media")
  const cacheDir = NodePath.join(home, "cache")
  const maxBytes = options.cacheMaxBytes ?? DEFAULT_CACHE_MAX_BYTES
  const madeDirs = new Set<string>()

  const ensureDir = (dir: string): Effect.Effect<void, MediaError> =>
    madeDirs.has(dir)
      ? Effect.void
      : Effect.tryPromise({
          try: () => NodeFs.promises.mkdir(dir, { recursive: true }),
          catch: (cause) => fsError(dir, cause, true)
        }).pipe(Effect.tap(() => Effect.sync(() => madeDirs.add(dir))))

  const put = (bytes: Uint8Array, extension: string): Effect.Effect<string, MediaError> =>
    Effect.suspend(() => {
      const ext = extension.replace(/^\./, "").toLowerCase()
      if (!EXTENSION_RE.test(ext)) {
        return Effect.fail(
          new MediaError({
            reason: "InvalidArgument",
            path: root,
            message: `Invalid media file extension ${JSON.stringify(extension)}`
          })
        )
      }
      const path = Media.contentPath(root, bytes, ext)
      const dir = NodePath.dirname(path)
      // Pinned before the existence check, so that no collection can remove it in between.
      return Media.pin([path]).pipe(
        Effect.andThen(Effect.promise(() => NodeFs.promises.stat(path).then(isFile, notFound))),
        Effect.flatMap((exists) =>
          exists
            ? Effect.void
            : ensureDir(dir).pipe(Effect.andThen(writeAtomic(path, bytes)), Effect.andThen(Media.created(path)))
        ),
        Effect.as(path)
      )
    })

  const owns = (path: string): boolean => {
    const relative = NodePath.relative(root, path).split(NodePath.sep)
    const match = relative.length === 3 ? HASH_NAME_RE.exec(relative[2]!) : null
    return match !== null && relative[0] === match[1] && relative[1] === match[2]
  }

  const checkLocal = (path: string, ref: string): Effect.Effect<string, MediaError> =>
    Effect.tryPromise({
      try: () => NodeFs.promises.stat(path),
      catch: (cause) => fsError(ref, cause)
    }).pipe(
      Effect.flatMap((stat) =>
        stat.isFile()
          ? Effect.succeed(path)
          : Effect.fail(new MediaError({ reason: "Unreadable", path: ref, message: `Not a media file: ${ref}` }))
      )
    )

  // The download cache: an insertion-ordered map used as an LRU list (a use
  // moves the file to the end). Files from earlier processes are picked up,
  // oldest modification first, when the cache is first used.
  const entries = new Map<string, number>()
  let cachedBytes = 0
  let loaded = false
  let hits = 0
  let misses = 0
  let evictions = 0
  const inFlight = new Map<string, Deferred.Deferred<string, MediaError>>()

  const load = Effect.suspend(() => {
    if (loaded) return Effect.void
    return Effect.tryPromise({
      try: async () => {
        await NodeFs.promises.mkdir(cacheDir, { recursive: true })
        const names = await NodeFs.promises.readdir(cacheDir)
        const found: Array<{ path: string; size: number; mtime: number }> = []
        for (const name of names) {
          if (name.endsWith(".tmp")) continue
          const path = NodePath.join(cacheDir, name)
          const stat = await NodeFs.promises.stat(path).catch(() => undefined)
          if (stat?.isFile()) found.push({ path, size: stat.size, mtime: stat.mtimeMs })
        }
        return found.sort((a, b) => a.mtime - b.mtime)
      },
      catch: (cause) => fsError(cacheDir, cause, true)
    }).pipe(
      Effect.tap((found) =>
        Effect.sync(() => {
          if (loaded) return
          loaded = true
          for (const f of found) {
            if (!entries.has(f.path)) {
              entries.set(f.path, f.size)
              cachedBytes += f.size
            }
          }
        })
      )
    )
  })

  /** Removes least recently used files until the cache fits its budget (never `keep`). */
  const evict = (keep: string) =>
    Effect.suspend(() => {
      const victims: Array<string> = []
      for (const [path, size] of entries) {
        if (cachedBytes <= maxBytes) break
        if (path === keep) continue
        entries.delete(path)
        cachedBytes -= size
        evictions++
        victims.push(path)
      }
      return victims.length === 0
        ? Effect.void
        : Effect.promise(() => Promise.all(victims.map((path) => NodeFs.promises.rm(path, { force: true }))))
    })

  const touch = (path: string) =>
    Effect.sync(() => {
      const size = entries.get(path)
      if (size === undefined) return
      entries.delete(path)
      entries.set(path, size)
      const now = new Date()
      // Persist recency for the next process; a failure only costs ordering.
      NodeFs.utimes(path, now, now, () => {})
    })

  const download = (url: string, path: string): Effect.Effect<string, MediaError> =>
    Effect.gen(function* () {
      const response = yield* Effect.tryPromise({
        try: (signal) => fetch(url, { signal }),
        catch: (cause) =>
          new MediaError({
            reason: "Download",
            path: url,
            message: `Cannot download ${url}: ${causeMessage(cause)}`,
            cause
          })
      })
      if (!response.ok) {
        yield* Effect.promise(() => response.body?.cancel() ?? Promise.resolve())
        return yield* new MediaError({
          reason: "Download",
          path: url,
          status: response.status,
          message: `Cannot download ${url}: HTTP ${response.status} ${response.statusText}`
        })
      }
      const bytes = yield* Effect.tryPromise({
        try: () => response.arrayBuffer(),
        catch: (cause) =>
          new MediaError({
            reason: "Download",
            path: url,
            message: `Download of ${url} broke off: ${causeMessage(cause)}`,
            cause
          })
      })
      yield* writeAtomic(path, new Uint8Array(bytes))
      misses++
      const previous = entries.get(path)
      if (previous !== undefined) cachedBytes -= previous
      entries.delete(path)
      entries.set(path, bytes.byteLength)
      cachedBytes += bytes.byteLength
      yield* evict(path)
      return path
    })

  const fetchCached = (url: string): Effect.Effect<string, MediaError> =>
    Effect.gen(function* () {
      yield* load
      const hash = NodeCrypto.createHash("sha256").update(url).digest("hex")
      const path = NodePath.join(cacheDir, `${hash}.${urlExtension(url)}`)
      if (entries.has(path)) {
        const present = yield* Effect.promise(() => NodeFs.promises.stat(path).then(isFile, notFound))
        if (present) {
          hits++
          yield* touch(path)
          return path
        }
        // Removed behind our back: forget it and fetch again.
        cachedBytes -= entries.get(path)!
        entries.delete(path)
      }
      const pending = inFlight.get(url)
      if (pending !== undefined) return yield* Deferred.await(pending)
      const deferred = yield* Deferred.make<string, MediaError>()
      inFlight.set(url, deferred)
      return yield* download(url, path).pipe(
        Effect.onExit((exit) =>
          Effect.andThen(
            Effect.sync(() => inFlight.delete(url)),
            Deferred.done(deferred, exit)
          )
        )
      )
    })

  const localPath = (ref: string | URL): Effect.Effect<string, MediaError> => {
    const value = typeof ref === "string" ? ref : ref.href
    if (isRemote(value)) return fetchCached(value)
    if (value.startsWith("file:")) {
      return Effect.try({
        try: () => NodeUrl.fileURLToPath(value),
        catch: (cause) =>
          new MediaError({ reason: "InvalidArgument", path: value, message: `Invalid file URL ${value}`, cause })
      }).pipe(Effect.flatMap((path) => checkLocal(path, value)))
    }
    if (value === "") {
      return Effect.fail(new MediaError({ reason: "NotFound", path: value, message: "Empty media reference" }))
    }
    return checkLocal(value, value)
  }

  const cacheStats = Effect.andThen(
    Effect.ignore(load),
    Effect.sync((): CacheStats => ({ files: entries.size, bytes: cachedBytes, maxBytes, hits, misses, evictions }))
  )

  return { home, root, cacheDir, put, owns, localPath, cacheStats }
}

/** Builds a store under `options.home`. */
export const make = (options: Options): Effect.Effect<Shape> => Effect.sync(() => unsafeMake(options))

const storesByHome = new Map<string, Shape>()

/** One store per home in this process, so that every user shares its download cache. */
const storeFor = (options: Options): Shape => {
  const home = NodePath.resolve(options.home)
  const key = `${home}\u0000${options.cacheMaxBytes ?? ""}`
  let store = storesByHome.get(key)
  if (store === undefined) {
    store = unsafeMake({ ...options, home })
    storesByHome.set(key, store)
  }
  return store
}

const envCacheMaxBytes = (): number | undefined => {
  const raw = process.env.TESSERA_MEDIA_CACHE_MAX_BYTES
  const n = raw === undefined || raw === "" ? Number.NaN : Number(raw)
  return Number.isFinite(n) && n >= 0 ? n : undefined
}

/**
 * The store media functions use. Defaults to the store under `TESSERA_HOME`
 * (read when first used); `layer` and `layerFromHome` replace it.
 */
export const Current = Context.Reference<Shape>("@tessera/media/MediaStore/Current", {
  defaultValue: () => storeFor({ home: process.env.TESSERA_HOME || defaultHome(), cacheMaxBytes: envCacheMaxBytes() })
})

/** The store under `home`, as the `MediaStore` service and as `Current`. */
export const layer = (
  home: string,
  options?: { readonly cacheMaxBytes?: number | undefined }
): Layer.Layer<MediaStore> =>
  Layer.effectContext(
    Effect.sync(() => {
      const store = storeFor({ home, cacheMaxBytes: options?.cacheMaxBytes })
      return Context.make(MediaStore, store).pipe(Context.add(Current, store))
    })
  )

/** The store under `TESSERA_HOME` (default `~/.tessera`), budget `TESSERA_MEDIA_CACHE_MAX_BYTES`. */
export const layerFromHome: Layer.Layer<MediaStore, Config.ConfigError> = Layer.unwrap(
  Effect.gen(function* () {
    const home = yield* Config.String("TESSERA_HOME").pipe(Config.withDefault(defaultHome()))
    const cacheMaxBytes = yield* Config.Int("TESSERA_MEDIA_CACHE_MAX_BYTES").pipe(
      Config.withDefault(DEFAULT_CACHE_MAX_BYTES)
    )
    return layer(home, { cacheMaxBytes })
  })
)

// Query handles resolve through the store in context, and collection removes only its files.
Media.register({
  store: {
    localPath: (uri) => Effect.flatMap(Effect.service(Current), (store) => store.localPath(uri)),
    files: Effect.map(Effect.service(Current), (store) => ({
      owns: store.owns,
      remove: (path: string) => NodeFs.rmSync(path, { force: true })
    }))
  }
})
