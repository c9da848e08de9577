import { assert } from "@effect/vitest"
import { Catalog, Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect, Exit } from "effect"
import * as NodeFs from "node:fs"
import { afterAll } from "vitest"
import { MediaStore, Video } from "../src/index.ts"
import { generate } from "./fixtures/ffmpegFixtures.ts"

// 15 s at 30 fps: 450 frames, a keyframe every 60 frames (0, 60, ..., 420).
const fx = generate("tessera-frame-counts-")
afterAll(() => NodeFs.rmSync(fx.dir, { recursive: true, force: true }))
const FRAMES = 15 * 30
const KEYFRAMES = Math.ceil(FRAMES / 60)

const range = (n: number, step: number) => Array.from({ length: n }, (_, k) => k * step)

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown })?.error : undefined
  })

Harness.forEachBackend("Frame counts through views", (test) => {
  test("frames views of a 15 s, 30 fps video: all / fps 1 / fps 0.5 / numFrames 10 / fps 1000 / keyframesOnly", () =>
    Effect.gen(function* () {
      const home = yield* Harness.tempDir()
      yield* Effect.gen(function* () {
        const videos = yield* Table.create("videos", { name: Column.String, video: Column.Video })
        yield* videos.insert([{ name: "testsrc", video: fx.video }])
        const frameIndexes = Effect.fnUntraced(function* (name: string, options: Video.FramesOptions) {
          const view = yield* Table.createView(
            name,
            videos.select((c) => ({ name: c.name })),
            { iterator: Video.frameIterator(videos.c.video, { ...options, format: "jpeg" }) }
          )
          const rows = yield* view.orderBy("pos").collect()
          assert.deepStrictEqual(
            rows.map((r) => r.pos),
            range(rows.length, 1),
            name
          )
          return rows
        })

        const all = yield* frameIndexes("frames_all", {})
        assert.strictEqual(all.length, FRAMES)
        assert.deepStrictEqual(
          all.map((r) => r.frameIndex),
          range(FRAMES, 1)
        )
        assert.deepStrictEqual(
          all.filter((r) => r.keyframe).map((r) => r.frameIndex),
          range(KEYFRAMES, 60)
        )

        const fps1 = yield* frameIndexes("frames_fps1", { fps: 1 })
        assert.deepStrictEqual(
          fps1.map((r) => [r.frameIndex, r.time]),
          range(15, 1).map((k) => [30 * k, k])
        )

        const half = yield* frameIndexes("frames_fps05", { fps: 0.5 })
        assert.deepStrictEqual(
          half.map((r) => [r.frameIndex, r.time]),
          range(8, 2).map((t) => [30 * t, t])
        )

        const ten = yield* frameIndexes("frames_num10", { numFrames: 10 })
        assert.deepStrictEqual(
          ten.map((r) => r.frameIndex),
          range(10, 45)
        )

        const fast = yield* frameIndexes("frames_fps1000", { fps: 1000 })
        assert.strictEqual(fast.length, FRAMES)
        assert.deepStrictEqual(
          fast.map((r) => String(r.frame)),
          all.map((r) => String(r.frame)),
          "fps above the native rate keeps every frame, the same images"
        )

        const keys = yield* frameIndexes("frames_keys", { keyframesOnly: true })
        assert.deepStrictEqual(
          keys.map((r) => [r.frameIndex, r.time, r.keyframe]),
          range(KEYFRAMES, 2).map((t) => [30 * t, t, true])
        )

        assert.deepStrictEqual(
          yield* Effect.forEach(
            ["frames_all", "frames_fps1", "frames_fps05", "frames_num10", "frames_fps1000", "frames_keys"],
            (name) => Effect.flatMap(Table.get(name), (t) => t.count())
          ),
          [450, 15, 8, 10, 450, 8]
        )
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))

  test("fps: 0 and fps with numFrames fail building the view, even over an empty base, and leave no view", () =>
    Effect.gen(function* () {
      const videos = yield* Table.create("videos", { video: Column.Video })
      const cases: ReadonlyArray<readonly [Video.FramesOptions, string]> = [
        [{ fps: 0 }, "frames: fps must be a positive number (got 0)"],
        [{ fps: 1, numFrames: 10 }, "frames: give at most one of fps, numFrames, keyframesOnly (got fps, numFrames)"]
      ]
      for (const [options, message] of cases) {
        const error = yield* failure(
          Table.createView("frames", videos, { iterator: Video.frameIterator(videos.c.video, options) })
        )
        assert.instanceOf(error, Catalog.CatalogError, JSON.stringify(options))
        assert.strictEqual((error as Catalog.CatalogError).reason, "InvalidDefinition")
        assert.include((error as Catalog.CatalogError).message, message)
        assert.include((error as Catalog.CatalogError).message, "tessera.video.frames.iterator")
      }
      // Nothing was made: the name is free.
      assert.deepStrictEqual(yield* Table.list(), ["videos"])
    }))
})
