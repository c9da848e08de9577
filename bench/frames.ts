/**
 * Frame extraction: 1 frame per second from a generated 1280x720, 30 fps
 * H.264 test pattern (60 s; `--quick`: 10 s), through a frames view on the
 * embedded database (`createView` with `Video.frameIterator(..., { fps: 1 })`
 * over a table holding the video: one ffmpeg decoder streaming PNGs into the
 * media store, one view row per frame) vs the bare ffmpeg command writing
 * the same frames as PNG files (`ffmpeg -i in.mp4 -vf fps=1 out_%03d.png`),
 * with the same binary, in the same run. `Video.frames` alone (frames
 * collected in memory) is timed too. Each runs 3 times, in turn; the best
 * time counts.
 *
 * ratio = frames view time / bare ffmpeg time (target <= 1.3).
 */
import { Column, Table } from "@tessera/core"
import { Ffmpeg, MediaStore, Video } from "@tessera/media"
import { Tessera } from "@tessera/sql"
import { Effect, Layer, Stream } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { generateLong } from "../packages/media/test/fixtures/ffmpegFixtures.ts"

const ROUNDS = 3

export const main = async (args: ReadonlyArray<string>) => {
  const seconds = args.includes("--quick") ? 10 : 60
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-bench-frames-"))
  try {
    const video = NodePath.join(dir, `testsrc-${seconds}s-1280x720-30fps.mp4`)
    const generated = performance.now()
    generateLong(video, seconds)
    console.log(`generated ${video} in ${((performance.now() - generated) / 1000).toFixed(1)} s`)
    const binaries = await Effect.runPromise(Ffmpeg.current)
    console.log(`ffmpeg: ${binaries.ffmpeg} (${binaries.version}, ${binaries.source})`)

    const bare = (round: number) => {
      const out = NodePath.join(dir, `bare-${round}`)
      NodeFs.mkdirSync(out)
      const start = performance.now()
      NodeChildProcess.execFileSync(binaries.ffmpeg, [
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        video,
        "-vf",
        "fps=1",
        NodePath.join(out, "out_%03d.png")
      ])
      const ms = performance.now() - start
      return { ms, frames: NodeFs.readdirSync(out).length }
    }
    const ours = async () => {
      const start = performance.now()
      const frames = await Effect.runPromise(Stream.runCollect(Video.frames(video, { fps: 1 })))
      const ms = performance.now() - start
      return { ms, frames: frames.length, bytes: frames.reduce((n, f) => n + f.image.length, 0) }
    }

    const home = NodePath.join(dir, "home")
    const layer = Layer.merge(Tessera.layerOn(Tessera.databaseEmbedded({ home })), MediaStore.layer(home))
    const viaView = (round: number) =>
      Effect.gen(function* () {
        const videos = yield* Table.create(`videos_${round}`, { video: Column.Video })
        yield* videos.insert([{ video }])
        const start = performance.now()
        const view = yield* Table.createView(`frames_${round}`, videos, {
          iterator: Video.frameIterator(videos.c.video, { fps: 1 })
        })
        const ms = performance.now() - start
        return { ms, frames: yield* view.count() }
      })

    const bareTimes: Array<number> = []
    const ourTimes: Array<number> = []
    const viewTimes: Array<number> = []
    let viewFrames = 0
    let bareFrames = 0
    let ourFrames = 0
    let bytes = 0
    const views = await Effect.runPromise(
      Effect.gen(function* () {
        const results: Array<{ ms: number; frames: number }> = []
        for (let round = 0; round < ROUNDS; round++) {
          const b = bare(round)
          const o = yield* Effect.promise(ours)
          const v = yield* viaView(round)
          results.push(v)
          bareTimes.push(b.ms)
          ourTimes.push(o.ms)
          bareFrames = b.frames
          ourFrames = o.frames
          bytes = o.bytes
          console.log(
            `round ${round + 1}: bare ffmpeg ${b.ms.toFixed(0)} ms (${b.frames} files), frames view ${v.ms.toFixed(0)} ms (${v.frames} rows), Video.frames ${o.ms.toFixed(0)} ms (${o.frames} frames, ${(o.bytes / 1e6).toFixed(1)} MB)`
          )
        }
        return results
      }).pipe(Effect.provide(layer))
    )
    for (const v of views) viewTimes.push(v.ms)
    viewFrames = views[0]!.frames
    const bareBest = Math.min(...bareTimes)
    const ourBest = Math.min(...ourTimes)
    const viewBest = Math.min(...viewTimes)
    const ratio = viewBest / bareBest
    console.log(
      `best: bare ffmpeg ${bareBest.toFixed(0)} ms, frames view ${viewBest.toFixed(0)} ms (ratio ${ratio.toFixed(2)}), Video.frames ${ourBest.toFixed(0)} ms (ratio ${(ourBest / bareBest).toFixed(2)})`
    )
    console.log(
      `BENCH frames seconds=${seconds} size=1280x720 fps=1 frames=${viewFrames} bare_frames=${bareFrames} stream_frames=${ourFrames} ` +
        `bare_ms=${bareBest.toFixed(0)} view_ms=${viewBest.toFixed(0)} stream_ms=${ourBest.toFixed(0)} mb=${(bytes / 1e6).toFixed(1)} ratio=${ratio.toFixed(2)}`
    )
  } finally {
    NodeFs.rmSync(dir, { recursive: true, force: true })
  }
}
