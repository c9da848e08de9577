/**
 * Video: metadata, single frames, clips, audio tracks and a frame iterator,
 * over ffmpeg/ffprobe (see `Ffmpeg` for which binaries run). References are
 * local paths or URLs (remote ones are downloaded once by `MediaStore`).
 *
 * `frames` runs ONE ffmpeg decoder per video and streams encoded images; the
 * process belongs to the stream's scope, so ending or interrupting the
 * stream kills it. Frame times are relative to the first decoded frame (the
 * stream's start for ordinary files), computed from the exact pts and time
 * base ffmpeg logs. Frame selection:
 * - no option: every decoded frame;
 * - `fps: f` (> 0): for each target time k/f (k = 0, 1, ...), the first
 *   decoded frame at or after it, each frame at most once; i.e. frame i is
 *   kept when floor(time_i * f) > floor(time_{i-1} * f), the first frame
 *   always. At or above the native rate this is every frame; a 15 s, 30 fps
 *   video gives 15 frames at 1 fps (times 0..14) and 8 at 0.5 fps;
 * - `numFrames: n` (integer >= 1): the same with f = n / duration, i.e. the
 *   targets k * duration / n for k < n: n evenly spaced frames (fewer when
 *   the video has fewer frames);
 * - `keyframesOnly: true`: the keyframes only, without decoding the others;
 *   their `index` is then round(time * fps), exact for constant frame rates.
 * At most one option may be given.
 */
import { Column, ColumnType, Expr, Fn, Iterator, type Media } from "@tessera/core"
import { type Cause, Effect, Queue, Schema, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"
import * as Audio from "./Audio.ts"
import * as Ffmpeg from "./Ffmpeg.ts"
import { ImageSplitter } from "./internal/ffmpegImages.ts"
import * as Io from "./internal/ffmpegIo.ts"
import * as Process from "./internal/ffmpegProcess.ts"
import * as MediaStore from "./MediaStore.ts"

export class VideoError extends Schema.TaggedError<VideoError>()("VideoError", {
  reason: Schema.Literals(["InvalidOptions", "NoVideoStream", "NoFrame", "InvalidOutput"]),
  path: Schema.String,
  message: Schema.String
}) {
  get isRetryable(): boolean {
    return false
  }
}

export const VideoMetadata = Schema.Struct({
  /** Seconds. */
  duration: Schema.Number,
  /** Average frame rate (frames per second). */
  fps: Schema.Number,
  width: Schema.Number,
  height: Schema.Number,
  codec: Schema.String,
  /** Frames in the video stream (from the container, else counted). */
  frameCount: Schema.Number,
  /** The video stream's first timestamp, in seconds. */
  startTime: Schema.Number,
  pixelFormat: Schema.NullOr(Schema.String),
  hasAudio: Schema.Boolean
})
export type VideoMetadata = typeof VideoMetadata.Type

export type ImageFormat = "png" | "jpeg"

export interface Frame {
  /** The frame's position among the video's decoded frames (0-based). */
  readonly index: number
  /** Its presentation timestamp, in the stream's time base. */
  readonly pts: number
  /** Seconds since the first decoded frame. */
  readonly time: number
  readonly keyframe: boolean
  /** The encoded image (PNG by default, or JPEG). */
  readonly image: Uint8Array
}

export interface FramesOptions {
  readonly fps?: number | undefined
  readonly numFrames?: number | undefined
  readonly keyframesOnly?: boolean | undefined
  readonly format?: ImageFormat | undefined
}

// ---------------------------------------------------------------------------
// probing

/** `ffprobe -show_format -show_streams` of a local file, decoded. */
export const probe = Io.probe

interface VideoInfo extends VideoMetadata {
  readonly timeBase: number
}

const videoInfo = Effect.fnUntraced(function* (path: string) {
  const probed = yield* Io.probe(path)
  const streams = probed.streams ?? []
  const video = streams.find((s) => s.codec_type === "video")
  if (video === undefined) {
    return yield* new VideoError({ reason: "NoVideoStream", path, message: `${path} has no video stream` })
  }
  const fps = Io.parseRate(video.avg_frame_rate) || Io.parseRate(video.r_frame_rate)
  const duration = Io.num(video.duration) ?? Io.num(probed.format?.duration) ?? 0
  let frameCount = Io.num(video.nb_frames)
  if (frameCount === undefined || frameCount === 0) {
    // Containers like Matroska do not record it: count packets (demuxing only, no decoding).
    const counted = yield* Io.probe(path, ["-count_packets", "-select_streams", "v:0"])
    frameCount = Io.num(counted.streams?.[0]?.nb_read_packets) ?? Math.round(duration * fps)
  }
  return {
    duration,
    fps,
    width: video.width ?? 0,
    height: video.height ?? 0,
    codec: video.codec_name ?? "unknown",
    frameCount,
    startTime: Io.num(video.start_time) ?? 0,
    pixelFormat: video.pix_fmt ?? null,
    hasAudio: streams.some((s) => s.codec_type === "audio"),
    timeBase: Io.parseRate(video.time_base)
  } satisfies VideoInfo
})

const toMetadata = ({ timeBase: _, ...metadata }: VideoInfo): VideoMetadata => metadata

/** Duration, frame rate, size, codec and frame count of a video. */
const metadataEffect = Effect.fn("Video.metadata")(function* (ref: string | URL) {
  return toMetadata(yield* videoInfo(yield* Io.localPath(ref)))
})

// ---------------------------------------------------------------------------
// frames

const encoderArgs = (format: ImageFormat): ReadonlyArray<string> =>
  format === "png" ? ["-vcodec", "png"] : ["-vcodec", "mjpeg", "-q:v", "2"]

/** Frames pass through timestamps unchanged (`-vsync` was renamed `-fps_mode` in ffmpeg 5.1). */
const passthroughArgs = (version: string): ReadonlyArray<string> => {
  const v = Ffmpeg.parseVersion(version)
  return v._tag === "Release" && (v.parts[0]! > 5 || (v.parts[0] === 5 && v.parts[1]! >= 1))
    ? ["-fps_mode", "passthrough"]
    : ["-vsync", "0"]
}

const validateFrames = (ref: string, options: FramesOptions): Effect.Effect<void, VideoError> => {
  const given = [
    options.fps !== undefined && "fps",
    options.numFrames !== undefined && "numFrames",
    options.keyframesOnly === true && "keyframesOnly"
  ].filter((x) => x !== false)
  const invalid = (message: string) => Effect.fail(new VideoError({ reason: "InvalidOptions", path: ref, message }))
  if (given.length > 1)
    return invalid(`frames: give at most one of fps, numFrames, keyframesOnly (got ${given.join(", ")})`)
  if (options.fps !== undefined && !(Number.isFinite(options.fps) && options.fps > 0)) {
    return invalid(`frames: fps must be a positive number (got ${options.fps})`)
  }
  if (options.numFrames !== undefined && !(Number.isInteger(options.numFrames) && options.numFrames >= 1)) {
    return invalid(`frames: numFrames must be a positive integer (got ${options.numFrames})`)
  }
  return Effect.void
}

/** The `select` filter keeping the first frame at or after each k / rate (times relative to the first frame). */
const selectByRate = (rate: number): string => {
  const bucket = (t: string) => `floor((${t}-start_t)*${rate}+1e-6)`
  return `select='if(isnan(prev_selected_t),1,gt(${bucket("t")},${bucket("prev_selected_t")}))'`
}

// ffmpeg logs every frame the select filter sees at debug level, in two parts:
// `[Parsed_select_0 @ 0x...] n:12.000000 pts:6144.000000 t:0.400000 key:0 ...` then
// ` -> select:1.000000 select_out:0`. Decoder threads may log in between (even
// mid-line), but the filter sees frames one at a time, so the parts alternate.
const SELECT_FRAME = /n:(\d+)(?:\.\d+)? pts:(-?[\d.]+) t:(-?[\d.]+) key:(\d)/
// The filter graph's input, configured before the first frame: `... tb:1/15360 fr:30/1 ...`.
const GRAPH_INPUT = /\[graph \d+ input from stream [^\]]*\] .*tb:(\d+)\/(\d+) fr:(\d+)\/(\d+)/
const SELECT_OUT = /select_out:(-?\d+)/

interface SelectedFrame {
  readonly n: number
  readonly pts: number
  readonly time: number
  readonly key: boolean
}

/**
 * A stream of a video's frames as encoded images, from one ffmpeg process
 * (see the module comment for which frames).
 */
export const frames = (
  ref: string | URL,
  options: FramesOptions = {}
): Stream.Stream<Frame, VideoError | Ffmpeg.FfmpegError | MediaStore.MediaError> =>
  Stream.unwrap(
    Process.withPlatform(
      Effect.gen(function* () {
        const name = String(ref)
        yield* validateFrames(name, options)
        const binaries = yield* Ffmpeg.current
        const path = yield* Io.localPath(ref)
        // Only numFrames needs ffprobe first (its rate depends on the
        // duration); timestamps come from ffmpeg's own log.
        let rate = options.fps
        if (options.numFrames !== undefined) {
          const { duration } = yield* videoInfo(path)
          rate = duration > 0 ? options.numFrames / duration : undefined
        }
        const format = options.format ?? "png"
        const keyframesOnly = options.keyframesOnly === true
        const args = [
          "-hide_banner",
          "-nostdin",
          "-nostats",
          "-loglevel",
          "debug",
          ...(keyframesOnly ? ["-skip_frame", "nokey"] : []),
          "-i",
          path,
          "-map",
          "0:v:0",
          "-an",
          "-sn",
          "-dn",
          "-vf",
          rate === undefined ? "select=1" : selectByRate(rate),
          ...passthroughArgs(binaries.version),
          "-f",
          "image2pipe",
          ...encoderArgs(format),
          "-"
        ]
        const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
        const handle = yield* spawner
          .spawn(
            // SIGKILL: a decoder writing to a pipe has nothing to save, and on SIGTERM ffmpeg
            // tries to finish writing to a pipe nobody reads any more, and never exits.
            ChildProcess.make(binaries.ffmpeg, args, { stdin: "ignore", killSignal: "SIGKILL" })
          )
          .pipe(
            Effect.mapError(
              (cause) =>
                new Ffmpeg.FfmpegError({
                  reason: "SpawnFailed",
                  binary: binaries.ffmpeg,
                  message: `cannot run ${binaries.ffmpeg}: ${cause.message}`,
                  cause
                })
            )
          )

        // stderr is read to its end concurrently (never blocking ffmpeg); the
        // selected frames' descriptions queue up for the images to take.
        const selected = yield* Queue.unbounded<SelectedFrame, Cause.Done>()
        const recent: Array<string> = []
        let pending: SelectedFrame | undefined
        let timeBase: number | undefined
        let frameRate = 0
        let firstPts: number | undefined
        let firstT = 0
        yield* handle.stderr.pipe(
          Stream.decodeText(),
          Stream.splitLines,
          Stream.runForEach((line) => {
            const described = SELECT_FRAME.exec(line)
            if (described !== null) {
              const pts = Number(described[2])
              if (firstPts === undefined) {
                firstPts = pts
                firstT = Number(described[3])
              }
              const time = timeBase === undefined ? Number(described[3]) - firstT : (pts - firstPts) * timeBase
              pending = { n: Number(described[1]), pts, time, key: described[4] === "1" }
            }
            const out = SELECT_OUT.exec(line)
            if (out !== null) {
              const frame = pending
              pending = undefined
              return out[1] === "-1" || frame === undefined ? Effect.void : Queue.offer(selected, frame)
            }
            if (described !== null) return Effect.void
            const input = GRAPH_INPUT.exec(line)
            if (input !== null) {
              timeBase = Number(input[1]) / Number(input[2])
              frameRate = Number(input[4]) === 0 ? 0 : Number(input[3]) / Number(input[4])
            }
            if (!line.startsWith("[") || /error/i.test(line)) {
              recent.push(line)
              if (recent.length > 20) recent.shift()
            }
            return Effect.void
          }),
          Effect.ignore,
          Effect.ensuring(Queue.end(selected)),
          Effect.forkScoped
        )

        const failed = (reason: "InvalidOutput", message: string) =>
          new Ffmpeg.FfmpegError({ reason, binary: binaries.ffmpeg, message })
        const checkExit = Effect.gen(function* () {
          const code = yield* handle.exitCode.pipe(
            Effect.mapError((cause) => failed("InvalidOutput", `ffmpeg ended abnormally: ${cause.message}`))
          )
          if (code !== 0 && recent.some((line) => line.includes("matches no streams"))) {
            return yield* new VideoError({
              reason: "NoVideoStream",
              path: name,
              message: `${name} has no video stream`
            })
          }
          if (code !== 0) {
            return yield* new Ffmpeg.FfmpegError({
              reason: "ProcessFailed",
              binary: binaries.ffmpeg,
              exitCode: code,
              message: `ffmpeg exited with code ${code} decoding ${name}: ${Process.tail(recent.join("\n"))}`
            })
          }
        })

        const splitter = new ImageSplitter(format)
        const toFrame = (image: Uint8Array) =>
          Queue.take(selected).pipe(
            Effect.mapError(() =>
              failed("InvalidOutput", `ffmpeg produced an image without a frame description (${name})`)
            ),
            Effect.map(
              (frame): Frame => ({
                index: keyframesOnly ? Math.round(frame.time * frameRate) : frame.n,
                pts: frame.pts,
                time: frame.time,
                keyframe: frame.key,
                image
              })
            )
          )
        const images = handle.stdout.pipe(
          Stream.mapError((cause) => failed("InvalidOutput", `reading ffmpeg's output failed: ${cause.message}`)),
          Stream.map((chunk) => splitter.push(chunk)),
          Stream.flattenIterable,
          Stream.mapEffect(toFrame)
        )
        const limited = options.numFrames === undefined ? images : Stream.take(images, options.numFrames)
        return Stream.concat(limited, Stream.fromEffectDrain(checkExit))
      })
    )
  )

// ---------------------------------------------------------------------------
// single frames, clips, audio

/** The first frame at or after `seconds` (from the stream's start), encoded as PNG (default) or JPEG. */
export const extractFrame = Effect.fn("Video.extractFrame")(function* (
  ref: string | URL,
  seconds: number,
  options: { readonly format?: ImageFormat | undefined } = {}
) {
  const name = String(ref)
  if (!(Number.isFinite(seconds) && seconds >= 0)) {
    return yield* new VideoError({ reason: "InvalidOptions", path: name, message: `invalid time ${seconds}` })
  }
  const path = yield* Io.localPath(ref)
  const output = yield* Ffmpeg.exec("ffmpeg", [
    "-hide_banner",
    "-nostdin",
    "-loglevel",
    "error",
    "-ss",
    String(seconds),
    "-i",
    path,
    "-map",
    "0:v:0",
    "-frames:v",
    "1",
    "-f",
    "image2pipe",
    ...encoderArgs(options.format ?? "png"),
    "-"
  ])
  if (output.stdout.length === 0) {
    return yield* new VideoError({ reason: "NoFrame", path: name, message: `${name} has no frame at ${seconds} s` })
  }
  return output.stdout
})

/** `extractFrame`, written to the media store (content-addressed); returns the file's path. */
export const extractFrameToStore = Effect.fn("Video.extractFrameToStore")(function* (
  ref: string | URL,
  seconds: number,
  options: { readonly format?: ImageFormat | undefined } = {}
) {
  const format = options.format ?? "png"
  const bytes = yield* extractFrame(ref, seconds, { format })
  const store = yield* MediaStore.Current
  return yield* store.put(bytes, format === "png" ? "png" : "jpg")
})

export interface ClipOptions {
  /** Where to write the clip (default: the media store, as `.mp4`). */
  readonly output?: string | undefined
  /**
   * Copy the streams instead of re-encoding: fast, but the clip starts at the
   * keyframe before `start`. Default false (frame-exact, re-encoded H.264/AAC).
   */
  readonly copy?: boolean | undefined
}

/** The part of a video from `start` to `end` seconds; returns the clip's path. */
export const clip = Effect.fn("Video.clip")(function* (
  ref: string | URL,
  start: number,
  end: number,
  options: ClipOptions = {}
) {
  const name = String(ref)
  if (!(Number.isFinite(start) && Number.isFinite(end) && start >= 0 && end > start)) {
    return yield* new VideoError({
      reason: "InvalidOptions",
      path: name,
      message: `clip: need 0 <= start < end (got ${start}, ${end})`
    })
  }
  const path = yield* Io.localPath(ref)
  const codec = options.copy === true ? ["-c", "copy"] : ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"]
  return yield* Io.writeOutput("mp4", options.output, (file) => [
    "-ss",
    String(start),
    "-i",
    path,
    "-t",
    String(end - start),
    ...codec,
    file
  ])
})

/** The video's audio track as a file (default WAV, see `Audio.convert` for the options). */
export const extractAudio = (ref: string | URL, options: Audio.ConvertOptions = {}) =>
  Audio.convert(ref, { format: "wav", ...options })

// ---------------------------------------------------------------------------
// Tessera functions

/** A Tessera function: a video's metadata (Json). */
export const metadataFn = Fn.effect({
  name: "tessera.video.metadata",
  version: 1,
  params: { video: Column.Video },
  returns: Column.Json(VideoMetadata),
  run: ({ video }) => metadataEffect(video)
})

/** A Tessera function: the frame at `seconds`, written to the media store as PNG (an Image path). */
export const frameAtFn = Fn.effect({
  name: "tessera.video.frameAt",
  version: 1,
  params: { video: Column.Video, seconds: Column.Float },
  returns: Column.Image,
  run: ({ video, seconds }) => extractFrameToStore(video, seconds)
})

/**
 * A video's metadata: with a reference (path or URL), an Effect; with an
 * expression (`t.c.video`), the `Call` expression of `metadataFn`.
 */
export function metadata(
  ref: string | URL
): Effect.Effect<VideoMetadata, VideoError | Ffmpeg.FfmpegError | MediaStore.MediaError>
export function metadata(video: Expr.Expr<string> | Expr.Expr<string | null>): Expr.Expr<VideoMetadata>
export function metadata(input: string | URL | Expr.Expr<string> | Expr.Expr<string | null>): unknown {
  return Expr.isExpr(input) ? metadataFn({ video: input as Expr.Expr<string> }) : metadataEffect(input as string | URL)
}

/** The frame of `video` at `seconds` as an Image column value (a PNG in the media store). */
export const frameAt = (video: Expr.Input<string | null>, seconds: Expr.Input<number | null>): Media.ImageExpr =>
  frameAtFn({ video, seconds })

// ---------------------------------------------------------------------------
// iterator views

/**
 * The frames iterator: an iterator view with one row per selected frame of
 * each video, `Table.createView(path, videos, { iterator: Video.frameIterator(videos.c.video, { fps: 1 }) })`.
 * Its columns, beside `pos`: `frameIndex`, `pts`, `time`, `keyframe` and
 * `frame` (the image, written to the media store). One decoder per video.
 */
export const frameIteratorDefinition = Iterator.make({
  name: "tessera.video.frames.iterator",
  params: { video: Column.Video, options: Column.Json() },
  outputs: {
    frameIndex: Column.Int,
    pts: Column.Float,
    time: Column.Float,
    keyframe: Column.Bool,
    frame: Column.Image
  },
  check: ({ options }) => validateFrames("frames view", (options ?? {}) as FramesOptions),
  run: ({ video, options }) =>
    Effect.gen(function* () {
      const store = yield* MediaStore.Current
      const opts = (options ?? {}) as FramesOptions
      return frames(video, opts).pipe(
        Stream.mapEffect((f) =>
          Effect.map(store.put(f.image, opts.format === "jpeg" ? "jpg" : "png"), (path) => ({
            frameIndex: f.index,
            pts: f.pts,
            time: f.time,
            keyframe: f.keyframe,
            frame: path
          }))
        )
      )
    }).pipe(Stream.unwrap)
})

/** `Video.frameIterator(t.c.video, { fps: 1 })`: the `iterator` option of a frames view. */
export const frameIterator = (video: Expr.Input<string | null>, options: FramesOptions = {}) =>
  frameIteratorDefinition({ video, options: Expr.lit<unknown>(options, ColumnType.Json()) })
