import { assert } from "@effect/vitest"
import { Catalog, Column, Fn, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect, Exit } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { afterAll } from "vitest"
import { Audio, MediaStore } from "../src/index.ts"
import { generate, generator } from "./fixtures/ffmpegFixtures.ts"

// A 10 s tone from the fixtures, and a 4 s one beside it.
const fx = generate("tessera-audio-view-")
const short = NodePath.join(fx.dir, "sine-4s-16000-mono.wav")
NodeChildProcess.execFileSync(generator, [
  ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"],
  ...["-i", "sine=frequency=440:sample_rate=16000:duration=4", "-c:a", "pcm_s16le", short]
])
afterAll(() => NodeFs.rmSync(fx.dir, { recursive: true, force: true }))

let unique = 0

Harness.forEachBackend("Audio segments view", (test) => {
  test("one row per segment with exact bounds; a computed column over segments; follows its base", () =>
    Effect.gen(function* () {
      const home = yield* Harness.tempDir()
      const calls = { n: 0 }
      const seen = Fn.make({
        name: `segmentSeen_${process.pid}_${unique++}`,
        params: { segment: Column.Audio },
        returns: Column.String,
        run: ({ segment }) => {
          calls.n++
          return NodePath.extname(segment)
        }
      })
      yield* Effect.gen(function* () {
        const clips = yield* Table.create("clips", { name: Column.String, audio: Column.Audio })
        yield* clips.insert([{ name: "tone", audio: fx.tone }])
        const segments = yield* Table.createView(
          "segments",
          clips.select((c) => ({ name: c.name })),
          { iterator: Audio.segmentIterator(clips.c.audio, { duration: 3, overlap: 1 }) }
        )
        const withExt = yield* segments.addComputedColumn("ext", seen({ segment: segments.c.segment }), {
          cache: false
        })
        const withMeta = yield* withExt.addComputedColumn("meta", Audio.metadata(segments.c.segment))
        const rows = yield* withMeta.orderBy("pos").collect()
        assert.deepStrictEqual(
          rows.map((r) => [r.pos, r.start, r.end]),
          [
            [0, 0, 3],
            [1, 2, 5],
            [2, 4, 7],
            [3, 6, 9],
            [4, 8, 10]
          ]
        )
        for (const r of rows) {
          assert.isTrue(String(r.segment).startsWith(NodePath.join(home, "media")), String(r.segment))
          assert.deepStrictEqual([r.meta!.codec, r.meta!.sampleRate, r.meta!.channels], ["pcm_s16le", 44100, 1])
          assert.closeTo(r.meta!.duration, r.end! - r.start!, 0.001)
          assert.strictEqual(r.ext, ".wav")
        }
        assert.strictEqual(calls.n, 5)

        yield* clips.insert([{ name: "short", audio: short }])
        assert.strictEqual(yield* withMeta.count(), 7)
        assert.strictEqual(calls.n, 7, "only the new file's segments were computed")
        const added = yield* withMeta
          .where((c) => c.name.eq("short"))
          .orderBy("pos")
          .collect()
        assert.deepStrictEqual(
          added.map((r) => [r.pos, r.start, r.end, r.meta!.sampleRate]),
          [
            [0, 0, 3, 16000],
            [1, 2, 4, 16000]
          ]
        )

        yield* clips.delete((c) => c.name.eq("tone"))
        assert.deepStrictEqual(
          (yield* withMeta.collect()).map((r) => r.name),
          ["short", "short"]
        )
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))

  test("overlap >= duration fails building the view, even over an empty base", () =>
    Effect.gen(function* () {
      const clips = yield* Table.create("clips", { audio: Column.Audio })
      const exit = yield* Effect.exit(
        Table.createView("segments", clips, {
          iterator: Audio.segmentIterator(clips.c.audio, { duration: 2, overlap: 2 })
        })
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as { readonly error?: unknown }).error : undefined
      assert.instanceOf(error, Catalog.CatalogError)
      assert.strictEqual((error as Catalog.CatalogError).reason, "InvalidDefinition")
      assert.include((error as Catalog.CatalogError).message, "segments: need 0 <= overlap < duration (got 2)")
      assert.deepStrictEqual(yield* Table.list(), ["clips"])
    }))
})
