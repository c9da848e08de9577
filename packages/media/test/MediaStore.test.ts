import { assert, describe, it } from "@effect/vitest"
import { Pool } from "@tessera/core"
import { Effect, Exit } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import sharp from "sharp"
import * as Image from "../src/Image.ts"
import * as MediaStore from "../src/MediaStore.ts"

const tempHome = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-media-store-"))),
  (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
)

const failure = <A>(effect: Effect.Effect<A, MediaStore.MediaError>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(effect)
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    assert.isDefined(reason, "expected a typed failure")
    return (reason as { error: MediaStore.MediaError }).error
  })

/** A loopback server with fixed bodies per path; counts requests per path. */
const server = (files: Record<string, Uint8Array>) =>
  Effect.acquireRelease(
    Effect.promise(
      () =>
        new Promise<{ url: string; requests: Map<string, number>; close: () => Promise<void> }>((resolve) => {
          const requests = new Map<string, number>()
          const http = NodeHttp.createServer((req, res) => {
            const path = req.url ?? "/"
            requests.set(path, (requests.get(path) ?? 0) + 1)
            const body = files[path.split("?")[0]!]
            if (body === undefined) {
              res.writeHead(404).end("not found")
              return
            }
            res.writeHead(200, { "content-type": "application/octet-stream" }).end(body)
          })
          http.listen(0, "127.0.0.1", () => {
            const { port } = http.address() as NodeNet.AddressInfo
            resolve({
              url: `http://127.0.0.1:${port}`,
              requests,
              close: () => new Promise<void>((done) => http.close(() => done()))
            })
          })
        })
    ),
    (s) => Effect.promise(() => s.close())
  )

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) % 256)

describe("MediaStore.put", () => {
  it.effect("writes content-addressed files under <home>/media, once per content", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const store = yield* MediaStore.make({ home })
      const data = bytes(1000, 1)
      const hash = NodeCrypto.createHash("sha256").update(data).digest("hex")
      const path = yield* store.put(data, "png")
      assert.strictEqual(path, NodePath.join(home, "media", hash.slice(0, 2), hash.slice(2, 4), `${hash}.png`))
      assert.deepStrictEqual(new Uint8Array(NodeFs.readFileSync(path)), data)
      const mtime = NodeFs.statSync(path).mtimeMs
      assert.strictEqual(yield* store.put(data, ".PNG"), path)
      assert.strictEqual(NodeFs.statSync(path).mtimeMs, mtime)
      // Concurrent puts of the same bytes leave one complete file and no temporaries.
      const paths = yield* Effect.forEach(Array.from({ length: 8 }), () => store.put(bytes(5000, 2), "jpg"), {
        concurrency: "unbounded"
      })
      assert.strictEqual(new Set(paths).size, 1)
      assert.strictEqual(NodeFs.readFileSync(paths[0]!).length, 5000)
      const all = NodeFs.readdirSync(NodePath.join(home, "media"), { recursive: true }) as Array<string>
      assert.deepStrictEqual(
        all.filter((f) => f.endsWith(".tmp")),
        []
      )
      const error = yield* failure(store.put(data, "../x"))
      assert.strictEqual(error.reason, "InvalidArgument")
    })
  )
})

describe("MediaStore.localPath", () => {
  it.effect("local paths and file:// URLs are returned in place; missing ones are NotFound naming them", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const store = yield* MediaStore.make({ home })
      const file = NodePath.join(home, "a.jpg")
      NodeFs.writeFileSync(file, "x")
      assert.strictEqual(yield* store.localPath(file), file)
      assert.strictEqual(yield* store.localPath(NodeUrl.pathToFileURL(file).href), file)
      assert.strictEqual(yield* store.localPath(NodeUrl.pathToFileURL(file)), file)
      const missing = NodePath.join(home, "nope.jpg")
      const error = yield* failure(store.localPath(missing))
      assert.strictEqual(error.reason, "NotFound")
      assert.strictEqual(error.path, missing)
      assert.include(error.message, missing)
      const dir = yield* failure(store.localPath(home))
      assert.strictEqual(dir.reason, "Unreadable")
    })
  )

  it.effect("http(s) media is downloaded once: the second use is a cache hit", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const png = yield* Effect.promise(() =>
        sharp({ create: { width: 30, height: 20, channels: 3, background: "#00ff00" } })
          .png()
          .toBuffer()
      )
      const http = yield* server({ "/img/cat.png": png })
      const store = yield* MediaStore.make({ home })
      const url = `${http.url}/img/cat.png`
      const first = yield* store.localPath(url)
      assert.isTrue(first.startsWith(NodePath.join(home, "cache") + NodePath.sep))
      assert.isTrue(first.endsWith(".png"))
      assert.deepStrictEqual(NodeFs.readFileSync(first), png)
      const second = yield* store.localPath(url)
      assert.strictEqual(second, first)
      assert.strictEqual(http.requests.get("/img/cat.png"), 1)
      // Concurrent first uses share one download.
      const other = `${http.url}/img/cat.png?size=2`
      http.requests.clear()
      const paths = yield* Effect.forEach(Array.from({ length: 5 }), () => store.localPath(other), {
        concurrency: "unbounded"
      })
      assert.strictEqual(new Set(paths).size, 1)
      assert.strictEqual(http.requests.get("/img/cat.png?size=2"), 1)
      const stats = yield* store.cacheStats
      assert.deepStrictEqual([stats.files, stats.misses, stats.hits], [2, 2, 1])

      // Image functions read remote media through the cache.
      http.requests.clear()
      const meta = yield* Image.functions.metadata.definition
        .invoke([[url]])
        .pipe(
          Effect.provide(MediaStore.layer(home)),
          Effect.provideService(Pool.CurrentPool, new Pool.Pool("store-test"))
        )
      assert.deepStrictEqual((meta[0] as Image.Metadata).width, 30)
      assert.strictEqual(http.requests.size, 0)

      // A new process (store) finds the files cached by the previous one.
      const again = yield* MediaStore.make({ home })
      assert.strictEqual(yield* again.localPath(url), first)
      assert.strictEqual(http.requests.size, 0)
    })
  )

  it.effect("a failed download is a Download error naming the URL, with its status", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const http = yield* server({})
      const store = yield* MediaStore.make({ home })
      const url = `${http.url}/missing.jpg`
      const error = yield* failure(store.localPath(url))
      assert.strictEqual(error.reason, "Download")
      assert.strictEqual(error.status, 404)
      assert.strictEqual(error.path, url)
      assert.include(error.message, url)
      assert.isFalse(error.isRetryable)
      const refused = yield* failure(store.localPath("http://127.0.0.1:1/x.png"))
      assert.strictEqual(refused.reason, "Download")
      assert.isTrue(refused.isRetryable)
      assert.strictEqual((yield* store.cacheStats).files, 0)
    })
  )

  it.effect("the cache evicts least recently used files beyond its byte budget", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const files: Record<string, Uint8Array> = {}
      for (const name of ["a", "b", "c", "d"]) files[`/${name}.bin`] = bytes(1000, name.charCodeAt(0))
      const http = yield* server(files)
      const store = yield* MediaStore.make({ home, cacheMaxBytes: 2500 })
      const get = (name: string) => store.localPath(`${http.url}/${name}.bin`)
      const a = yield* get("a")
      const b = yield* get("b")
      yield* get("a") // a is now more recently used than b
      const c = yield* get("c") // 3000 bytes > 2500: b goes
      assert.isTrue(NodeFs.existsSync(a))
      assert.isFalse(NodeFs.existsSync(b))
      assert.isTrue(NodeFs.existsSync(c))
      let stats = yield* store.cacheStats
      assert.deepStrictEqual([stats.files, stats.bytes, stats.evictions], [2, 2000, 1])
      yield* get("d") // a goes (c was used after it)
      assert.isFalse(NodeFs.existsSync(a))
      yield* get("b") // downloaded again
      assert.strictEqual(http.requests.get("/b.bin"), 2)
      assert.strictEqual(http.requests.get("/a.bin"), 1)
      stats = yield* store.cacheStats
      assert.isAtMost(stats.bytes, 2500)
      const onDisk = NodeFs.readdirSync(NodePath.join(home, "cache"))
      assert.strictEqual(onDisk.length, stats.files)
    })
  )
})

describe("MediaStore layers", () => {
  it.effect("layer(home) provides the service and the store image functions use", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const service = yield* Effect.service(MediaStore.MediaStore).pipe(Effect.provide(MediaStore.layer(home)))
      const current = yield* Effect.service(MediaStore.Current).pipe(Effect.provide(MediaStore.layer(home)))
      assert.strictEqual(service.root, NodePath.join(home, "media"))
      assert.strictEqual(current, service)
    })
  )

  it.effect("layerFromHome reads TESSERA_HOME", () =>
    Effect.gen(function* () {
      const home = yield* tempHome
      const previous = process.env.TESSERA_HOME
      process.env.TESSERA_HOME = home
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          if (previous === undefined) delete process.env.TESSERA_HOME
          else process.env.TESSERA_HOME = previous
        })
      )
      const store = yield* Effect.service(MediaStore.MediaStore).pipe(Effect.provide(MediaStore.layerFromHome))
      assert.strictEqual(store.home, home)
    })
  )
})
