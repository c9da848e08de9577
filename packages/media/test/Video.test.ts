import { assert, describe, it, layer } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Database } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Stream } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import sharp from "sharp"
import { TestClock } from "effect/testing"
import { afterAll } from "vitest"
import * as Ffmpeg from "../src/Ffmpeg.ts"
import * as MediaStore from "../src/MediaStore.ts"
import * as Video from "../src/Video.ts"
import { generate } from "./fixtures/ffmpegFixtures.ts"

const fx = generate("tessera-video-test-")
const home = NodePath.join(fx.dir, "home")
afterAll(() => NodeFs.rmSync(fx.dir, { recursive: true, force: true }))

const npm = {
  ffmpeg: NodePath.resolve("node_modules/@ffmpeg-installer/linux-x64/ffmpeg"),
  ffprobe: NodePath.resolve("node_modules/@ffprobe-installer/linux-x64/ffprobe")
}
const hasNpm = NodeFs.existsSync(npm.ffmpeg) && NodeFs.existsSync(npm.ffprobe)

/** ffmpeg processes decoding the fixture (by their command lines). */
const decoders = (): ReadonlyArray<string> =>
  NodeChildProcess.execFileSync("ps", ["-eo", "pid=,args="])
    .toString()
    .split("\n")
    .filter((line) => line.includes(fx.video) && line.includes("image2pipe"))

const imageInfo = (bytes: Uint8Array) => Effect.promise(() => sharp(bytes).metadata())

const collect = (options: Video.FramesOptions) => Stream.runCollect(Video.frames(fx.video, options))

const failure = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown })?.error : undefined
  })

describe("Ffmpeg binaries", () => {
  it("versions: releases compare by number, a git build is older than any release", () => {
    const v = Ffmpeg.parseVersion
    assert.isAbove(Ffmpeg.compareVersions(v("5.1.9-0+deb12u1"), v("N-47683-g0e8eb07980-static")), 0)
    assert.isAbove(Ffmpeg.compareVersions(v("6.0"), v("5.1.9")), 0)
    assert.isAbove(Ffmpeg.compareVersions(v("n7.1"), v("7.0.2")), 0)
    assert.isBelow(Ffmpeg.compareVersions(v("N-100-gabc"), v("N-200-gdef")), 0)
    assert.isBelow(Ffmpeg.compareVersions(v("weird"), v("N-1-g0")), 0)
    assert.strictEqual(Ffmpeg.compareVersions(v("5.1"), v("5.1.0")), 0)
  })

  it.effect("the default is the system ffmpeg (a 5.1 release beats npm's git build)", () =>
    Effect.gen(function* () {
      const binaries = yield* Ffmpeg.current
      assert.strictEqual(binaries.source, "system")
      assert.match(binaries.version, /^\d+\.\d+/)
      assert.strictEqual(NodePath.dirname(binaries.ffprobe), NodePath.dirname(binaries.ffmpeg))
    })
  )

  it.effect("TESSERA_FFMPEG / TESSERA_FFPROBE win", () =>
    Effect.gen(function* () {
      const binaries = yield* Ffmpeg.current
      assert.deepStrictEqual(binaries, { ...npm, version: binaries.version, source: "config" })
      assert.match(binaries.version, /^N-/)
    }).pipe(
      Effect.provide(
        ConfigProvider.layer(ConfigProvider.fromUnknown({ TESSERA_FFMPEG: npm.ffmpeg, TESSERA_FFPROBE: npm.ffprobe }))
      )
    )
  )

  it.effect("a missing ffmpeg is a NotFound error that says how to install it", () =>
    Effect.gen(function* () {
      const error = yield* failure(Ffmpeg.resolve)
      assert.instanceOf(error, Ffmpeg.FfmpegError)
      const e = error as Ffmpeg.FfmpegError
      assert.strictEqual(e.reason, "NotFound")
      assert.include(e.message, "apt-get install ffmpeg")
      assert.include(e.message, "npm install @ffmpeg-installer/ffmpeg")
    }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ TESSERA_FFMPEG: "/nonexistent/ffmpeg" }))))
  )
})

const suites: ReadonlyArray<readonly [string, Layer.Layer<Ffmpeg.Ffmpeg, Ffmpeg.FfmpegError>]> = [
  ["system ffmpeg", Ffmpeg.Ffmpeg.layer],
  ...(hasNpm ? [["npm ffmpeg", Ffmpeg.Ffmpeg.layerPaths(npm)] as const] : [])
]

for (const [name, binaries] of suites) {
  layer(Layer.merge(binaries, MediaStore.layer(home)), { timeout: 120_000 })(`Video [${name}]`, (it) => {
    it.effect("metadata: exact values from ffprobe", () =>
      Effect.gen(function* () {
        assert.deepStrictEqual(yield* Video.metadata(fx.video), {
          duration: 15,
          fps: 30,
          width: 320,
          height: 240,
          codec: "h264",
          frameCount: 450,
          startTime: 0,
          pixelFormat: "yuv420p",
          hasAudio: true
        })
      })
    )

    it.effect("frames: every frame, then fps 1 / 0.5 / 1000 and numFrames 10 as documented", () =>
      Effect.gen(function* () {
        const all = yield* collect({})
        assert.strictEqual(all.length, 450)
        assert.deepStrictEqual(
          all.map((f) => f.index),
          Array.from({ length: 450 }, (_, i) => i)
        )
        for (let i = 1; i < all.length; i++) assert.isAbove(all[i]!.time, all[i - 1]!.time)
        assert.deepStrictEqual(
          all.filter((f) => f.keyframe).map((f) => f.index),
          [0, 60, 120, 180, 240, 300, 360, 420]
        )

        const fps1 = yield* collect({ fps: 1 })
        assert.deepStrictEqual(
          fps1.map((f) => f.index),
          Array.from({ length: 15 }, (_, k) => 30 * k)
        )
        assert.deepStrictEqual(
          fps1.map((f) => f.time),
          Array.from({ length: 15 }, (_, k) => k)
        )
        assert.deepStrictEqual(
          fps1.map((f) => f.pts),
          Array.from({ length: 15 }, (_, k) => 15360 * k)
        )

        const half = yield* collect({ fps: 0.5 })
        assert.deepStrictEqual(
          half.map((f) => f.index),
          [0, 60, 120, 180, 240, 300, 360, 420]
        )

        const ten = yield* collect({ numFrames: 10 })
        assert.deepStrictEqual(
          ten.map((f) => f.index),
          Array.from({ length: 10 }, (_, k) => 45 * k)
        )

        const fast = yield* collect({ fps: 1000 })
        assert.strictEqual(fast.length, 450)
        assert.deepStrictEqual(
          fast.map((f) => f.index),
          all.map((f) => f.index)
        )
      })
    )

    it.effect("frames: images are PNGs (or JPEGs) of the video's size; keyframesOnly gives the 8 keyframes", () =>
      Effect.gen(function* () {
        const [png] = yield* Stream.runCollect(Stream.take(Video.frames(fx.video, { fps: 1 }), 1))
        const pngInfo = yield* imageInfo(png!.image)
        assert.deepStrictEqual([pngInfo.format, pngInfo.width, pngInfo.height], ["png", 320, 240])

        const jpegs = yield* collect({ fps: 1, format: "jpeg" })
        assert.strictEqual(jpegs.length, 15)
        for (const f of [jpegs[0]!, jpegs[14]!]) {
          const info = yield* imageInfo(f.image)
          assert.deepStrictEqual([info.format, info.width, info.height], ["jpeg", 320, 240])
        }

        const keys = yield* collect({ keyframesOnly: true })
        assert.deepStrictEqual(
          keys.map((f) => [f.index, f.time, f.keyframe]),
          [0, 2, 4, 6, 8, 10, 12, 14].map((t) => [t * 30, t, true])
        )
      })
    )

    it.effect("frames: invalid options are VideoErrors", () =>
      Effect.gen(function* () {
        for (const options of [
          { fps: 0 },
          { fps: -1 },
          { fps: 1, numFrames: 3 },
          { numFrames: 2.5 },
          { fps: 1, keyframesOnly: true }
        ]) {
          const error = yield* failure(collect(options))
          assert.instanceOf(error, Video.VideoError, JSON.stringify(options))
          assert.strictEqual((error as Video.VideoError).reason, "InvalidOptions")
        }
        const missing = yield* failure(Video.metadata(NodePath.join(fx.dir, "missing.mp4")))
        assert.instanceOf(missing, MediaStore.MediaError)
        const notVideo = yield* failure(Video.metadata(fx.tone))
        assert.strictEqual((notVideo as Video.VideoError).reason, "NoVideoStream")
      })
    )

    // Live clock: stopping a child process waits for it with real timeouts.
    it.effect("frames: ending the stream early or interrupting its fiber kills the decoder", () =>
      TestClock.withLive(
        Effect.gen(function* () {
          const three = yield* Stream.runCollect(Stream.take(Video.frames(fx.video), 3))
          assert.strictEqual(three.length, 3)
          assert.deepStrictEqual(decoders(), [])

          const first = yield* Deferred.make<void>()
          const fiber = yield* Video.frames(fx.video).pipe(
            Stream.runForEach(() => Effect.andThen(Deferred.succeed(first, undefined), Effect.sleep("10 seconds"))),
            Effect.forkChild
          )
          yield* Deferred.await(first)
          assert.strictEqual(decoders().length, 1, "the decoder runs while the stream is read")
          yield* Fiber.interrupt(fiber)
          assert.deepStrictEqual(decoders(), [])
        })
      )
    )

    it.effect("extractFrame, clip and extractAudio", () =>
      Effect.gen(function* () {
        const png = yield* Video.extractFrame(fx.video, 2)
        const info = yield* imageInfo(png)
        assert.deepStrictEqual([info.format, info.width, info.height], ["png", 320, 240])
        // The frame at 2 s is frame 60: the same image the iterator gives.
        const [at2] = yield* Stream.runCollect(Stream.drop(Stream.take(Video.frames(fx.video, { fps: 0.5 }), 2), 1))
        assert.deepStrictEqual(png, at2!.image)

        const noFrame = yield* failure(Video.extractFrame(fx.video, 60))
        assert.strictEqual((noFrame as Video.VideoError).reason, "NoFrame")

        const clip = yield* Video.clip(fx.video, 3, 6)
        assert.isTrue(clip.startsWith(NodePath.join(home, "media")))
        const meta = yield* Video.metadata(clip)
        assert.strictEqual(meta.frameCount, 90)
        assert.closeTo(meta.duration, 3, 0.05)
        const output = NodePath.join(fx.dir, `clip-${name.replace(" ", "-")}.mp4`)
        assert.strictEqual(yield* Video.clip(fx.video, 0, 1, { output }), output)
        assert.strictEqual((yield* Video.metadata(output)).frameCount, 30)

        const wav = yield* Video.extractAudio(fx.video, { sampleRate: 16000, channels: 1 })
        assert.isTrue(wav.endsWith(".wav"))
        const probed = yield* Video.probe(wav)
        const audio = probed.streams![0]!
        assert.deepStrictEqual([audio.codec_name, audio.sample_rate, audio.channels], ["pcm_s16le", "16000", 1])
        assert.closeTo(Number(probed.format!.duration), 15, 0.05)
      })
    )
  })
}

Harness.forEachBackend("Video functions in computed columns", (test) => {
  test("metadata (Json) and frameAt (an Image in the media store) per row", () =>
    Effect.gen(function* () {
      const { home } = yield* Database.Database
      const t = yield* Table.create("videos", { name: Column.String, video: Column.Video, at: Column.Float })
      const t2 = yield* t.addComputedColumn("meta", Video.metadata(t.c.video))
      const t3 = yield* t2.addComputedColumn("thumb", Video.frameAt(t2.c.video, t2.c.at), { onError: "record" })
      yield* t3.insert([
        { name: "a", video: fx.video, at: 1 },
        { name: "b", video: fx.video, at: 14.5 }
      ])
      const rows = yield* t3
        .select((c) => ({ name: c.name, meta: c.meta, thumb: c.thumb }))
        .orderBy("name")
        .collect()
      assert.strictEqual(rows.length, 2)
      for (const row of rows) {
        assert.strictEqual(row.meta!.frameCount, 450)
        assert.strictEqual(row.meta!.width, 320)
        assert.isTrue(row.thumb!.uri.startsWith(NodePath.join(home, "media")), row.thumb!.uri)
        const info = yield* Effect.promise(() => sharp(row.thumb!.uri).metadata())
        assert.deepStrictEqual([info.format, info.width, info.height], ["png", 320, 240])
      }
      assert.notStrictEqual(rows[0]!.thumb!.uri, rows[1]!.thumb!.uri)
      // Content-addressed: the same frame is the same file.
      assert.strictEqual(yield* Video.extractFrameToStore(fx.video, 1), rows[0]!.thumb!.uri)
    }).pipe((body) =>
      Effect.flatMap(Effect.service(Database.Database), ({ home }) => body.pipe(Effect.provide(MediaStore.layer(home))))
    ))
})
