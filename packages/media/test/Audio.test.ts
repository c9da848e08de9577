import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Layer, Stream } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll } from "vitest"
import * as Audio from "../src/Audio.ts"
import * as Ffmpeg from "../src/Ffmpeg.ts"
import * as MediaStore from "../src/MediaStore.ts"
import * as Video from "../src/Video.ts"
import { generate } from "./fixtures/ffmpegFixtures.ts"

const fx = generate("tessera-audio-test-")
const home = NodePath.join(fx.dir, "home")
afterAll(() => NodeFs.rmSync(fx.dir, { recursive: true, force: true }))

const npm = {
  ffmpeg: NodePath.resolve("node_modules/@ffmpeg-installer/linux-x64/ffmpeg"),
  ffprobe: NodePath.resolve("node_modules/@ffprobe-installer/linux-x64/ffprobe")
}
const hasNpm = NodeFs.existsSync(npm.ffmpeg) && NodeFs.existsSync(npm.ffprobe)

const failure = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown })?.error : undefined
  })

const suites: ReadonlyArray<readonly [string, Layer.Layer<Ffmpeg.Ffmpeg, Ffmpeg.FfmpegError>]> = [
  ["system ffmpeg", Ffmpeg.Ffmpeg.layer],
  ...(hasNpm ? [["npm ffmpeg", Ffmpeg.Ffmpeg.layerPaths(npm)] as const] : [])
]

for (const [name, binaries] of suites) {
  layer(Layer.merge(binaries, MediaStore.layer(home)), { timeout: 120_000 })(`Audio [${name}]`, (it) => {
    it.effect("metadata: exact values for a WAV and for a video's audio track", () =>
      Effect.gen(function* () {
        assert.deepStrictEqual(yield* Audio.metadata(fx.tone), {
          duration: 10,
          sampleRate: 44100,
          channels: 1,
          codec: "pcm_s16le",
          bitRate: 705600
        })
        const track = yield* Audio.metadata(fx.video)
        assert.deepStrictEqual([track.codec, track.sampleRate, track.channels], ["aac", 44100, 2])
        assert.closeTo(track.duration, 15, 0.05)
      })
    )

    it.effect("convert: to mp3 and to 16 kHz mono WAV", () =>
      Effect.gen(function* () {
        const mp3 = yield* Audio.convert(fx.tone, { format: "mp3", sampleRate: 22050 })
        assert.isTrue(mp3.endsWith(".mp3") && mp3.startsWith(NodePath.join(home, "media")), mp3)
        const m = yield* Audio.metadata(mp3)
        assert.deepStrictEqual([m.codec, m.sampleRate, m.channels], ["mp3", 22050, 1])
        assert.closeTo(m.duration, 10, 0.1)

        const output = NodePath.join(fx.dir, `tone-16k-${name.replace(" ", "-")}.wav`)
        assert.strictEqual(yield* Audio.convert(fx.video, { sampleRate: 16000, channels: 1, output }), output)
        const w = yield* Audio.metadata(output)
        assert.deepStrictEqual([w.codec, w.sampleRate, w.channels], ["pcm_s16le", 16000, 1])

        const noAudio = yield* failure(Audio.metadata(NodePath.join(fx.dir, "home")))
        assert.isDefined(noAudio)
      })
    )

    it.effect("segments: 3 s with 1 s overlap cover the 10 s tone exactly", () =>
      Effect.gen(function* () {
        const segments = yield* Stream.runCollect(Audio.segments(fx.tone, { duration: 3, overlap: 1 }))
        assert.deepStrictEqual(
          segments.map((s) => [s.index, s.start, s.end]),
          [
            [0, 0, 3],
            [1, 2, 5],
            [2, 4, 7],
            [3, 6, 9],
            [4, 8, 10]
          ]
        )
        for (let i = 1; i < segments.length; i++) {
          // Consecutive segments share exactly the overlap.
          assert.strictEqual(segments[i - 1]!.end - segments[i]!.start, 1)
        }
        for (const s of segments) {
          const m = yield* Audio.metadata(s.path)
          assert.deepStrictEqual([m.codec, m.sampleRate, m.channels], ["pcm_s16le", 44100, 1])
          assert.closeTo(m.duration, s.end - s.start, 0.001)
        }

        const plain = yield* Stream.runCollect(Audio.segments(fx.tone, { duration: 4 }))
        assert.deepStrictEqual(
          plain.map((s) => [s.start, s.end]),
          [
            [0, 4],
            [4, 8],
            [8, 10]
          ]
        )
        assert.deepStrictEqual(Audio.segmentBounds(1, 0.4, 0.1), [
          { start: 0, end: 0.4 },
          { start: 0.3, end: 0.7 },
          { start: 0.6, end: 1 }
        ])

        for (const options of [{ duration: 0 }, { duration: 2, overlap: 2 }, { duration: 2, overlap: -1 }]) {
          const error = yield* failure(Stream.runCollect(Audio.segments(fx.tone, options)))
          assert.instanceOf(error, Audio.AudioError)
          assert.strictEqual((error as Audio.AudioError).reason, "InvalidOptions")
        }
        const notAudio = yield* failure(Stream.runCollect(Audio.segments(fx.dir, { duration: 1 })))
        assert.isDefined(notAudio)
      })
    )

    it.effect("a video's audio track through Video.extractAudio", () =>
      Effect.gen(function* () {
        const mp3 = yield* Video.extractAudio(fx.video, { format: "mp3" })
        const m = yield* Audio.metadata(mp3)
        assert.deepStrictEqual([m.codec, m.sampleRate, m.channels], ["mp3", 44100, 2])
      })
    )
  })
}
