import { assert } from "@effect/vitest"
import { Column, Fn, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodePath from "node:path"
import { MediaStore, Video } from "../src/index.ts"
import { generateLong } from "./fixtures/ffmpegFixtures.ts"

let unique = 0

Harness.forEachBackend("Frames view", (test) => {
  test("a frames view has one row per selected frame; a new video adds exactly its frames, computed once", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const home = yield* Harness.tempDir()
      const first = NodePath.join(dir, "a.mp4")
      const second = NodePath.join(dir, "b.mp4")
      generateLong(first, 4, "160x120", 10)
      generateLong(second, 3, "160x120", 10)
      const calls = { n: 0 }
      const seen = Fn.make({
        name: `frameSeen_${process.pid}_${unique++}`,
        params: { frame: Column.Image },
        returns: Column.String,
        run: ({ frame }) => {
          calls.n++
          return NodePath.extname(frame)
        }
      })
      yield* Effect.gen(function* () {
        const videos = yield* Table.create("videos", { name: Column.String, video: Column.Video })
        yield* videos.insert([{ name: "a", video: first }])
        const frames = yield* Table.createView(
          "frames",
          videos.select((c) => ({ name: c.name })),
          {
            iterator: Video.frameIterator(videos.c.video, { fps: 1 })
          }
        )
        const withSeen = yield* frames.addComputedColumn("ext", seen({ frame: frames.c.frame }), { cache: false })
        assert.strictEqual(yield* withSeen.count(), 4)
        assert.strictEqual(calls.n, 4)
        const rows = yield* withSeen.orderBy("pos").collect()
        assert.deepStrictEqual(
          rows.map((r) => [r.pos, r.frameIndex, r.time]),
          [
            [0, 0, 0],
            [1, 10, 1],
            [2, 20, 2],
            [3, 30, 3]
          ]
        )
        assert.isTrue(rows.every((r) => r.ext === ".png" && r.frame!.uri.startsWith(NodePath.join(home, "media"))))

        yield* videos.insert([{ name: "b", video: second }])
        assert.strictEqual(yield* withSeen.count(), 7)
        assert.strictEqual(calls.n, 7, "only the new video's frames were computed")
        yield* videos.delete((c) => c.name.eq("a"))
        assert.deepStrictEqual([...new Set((yield* withSeen.collect()).map((r) => r.name))], ["b"])
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))
})
