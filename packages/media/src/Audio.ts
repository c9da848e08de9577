/**
 * Audio: metadata, conversion (format, sample rate, channels) and fixed-length
 * segments with overlap, over ffmpeg/ffprobe (see `Ffmpeg`). Works on audio
 * files and on the audio track of videos. Outputs go to the media store
 * (content-addressed) unless a path is given.
 *
 * Segments of `duration` seconds start every `duration - overlap` seconds,
 * from 0 until one reaches the end of the audio; the last is cut at the end
 * (so it may be shorter), and together they cover the whole audio.
 */
import { Column, ColumnType, Expr, Fn, Iterator } from "@tessera/core"
import { Effect, Schema, Stream } from "effect"
import type * as Ffmpeg from "./Ffmpeg.ts"
import * as Io from "./internal/ffmpegIo.ts"
import type * as MediaStore from "./MediaStore.ts"

export class AudioError extends Schema.TaggedError<AudioError>()("AudioError", {
  reason: Schema.Literals(["InvalidOptions", "NoAudioStream"]),
  path: Schema.String,
  message: Schema.String
}) {
  get isRetryable(): boolean {
    return false
  }
}

export const AudioMetadata = Schema.Struct({
  /** Seconds. */
  duration: Schema.Number,
  sampleRate: Schema.Number,
  channels: Schema.Number,
  codec: Schema.String,
  /** Bits per second, when known. */
  bitRate: Schema.NullOr(Schema.Number)
})
export type AudioMetadata = typeof AudioMetadata.Type

export type Format = "wav" | "mp3" | "flac" | "ogg" | "m4a"

const codecs: Record<Format, ReadonlyArray<string>> = {
  wav: ["-c:a", "pcm_s16le"],
  mp3: ["-c:a", "libmp3lame", "-q:a", "2"],
  flac: ["-c:a", "flac"],
  ogg: ["-c:a", "libvorbis"],
  m4a: ["-c:a", "aac"]
}

export interface ConvertOptions {
  readonly format?: Format | undefined
  /** Resample to this rate (Hz). */
  readonly sampleRate?: number | undefined
  /** Mix to this many channels (1 = mono). */
  readonly channels?: number | undefined
  /** Where to write (default: the media store). */
  readonly output?: string | undefined
}

const metadataOfPath = Effect.fnUntraced(function* (path: string) {
  const probed = yield* Io.probe(path)
  const audio = probed.streams?.find((s) => s.codec_type === "audio")
  if (audio === undefined) {
    return yield* new AudioError({ reason: "NoAudioStream", path, message: `${path} has no audio stream` })
  }
  return {
    duration: Io.num(audio.duration) ?? Io.num(probed.format?.duration) ?? 0,
    sampleRate: Io.num(audio.sample_rate) ?? 0,
    channels: audio.channels ?? 0,
    codec: audio.codec_name ?? "unknown",
    bitRate: Io.num(audio.bit_rate) ?? Io.num(probed.format?.bit_rate) ?? null
  } satisfies AudioMetadata
})

const metadataEffect = Effect.fn("Audio.metadata")(function* (ref: string | URL) {
  return yield* metadataOfPath(yield* Io.localPath(ref))
})

const validRate = (name: string, value: number | undefined) =>
  value === undefined || (Number.isInteger(value) && value > 0)
    ? Effect.void
    : Effect.fail(new AudioError({ reason: "InvalidOptions", path: name, message: `invalid value ${value}` }))

const outputArgs = (options: ConvertOptions): ReadonlyArray<string> => [
  "-vn",
  "-sn",
  "-dn",
  ...(options.sampleRate === undefined ? [] : ["-ar", String(options.sampleRate)]),
  ...(options.channels === undefined ? [] : ["-ac", String(options.channels)]),
  ...codecs[options.format ?? "wav"]
]

/** The audio (of an audio file or a video) in another format, rate or channel count; returns its path. */
export const convert = Effect.fn("Audio.convert")(function* (ref: string | URL, options: ConvertOptions = {}) {
  const name = String(ref)
  yield* validRate(name, options.sampleRate)
  yield* validRate(name, options.channels)
  const path = yield* Io.localPath(ref)
  yield* metadataOfPath(path)
  const format = options.format ?? "wav"
  return yield* Io.writeOutput(format, options.output, (file) => [
    "-i",
    path,
    "-map",
    "0:a:0",
    ...outputArgs(options),
    file
  ])
})

export interface SegmentOptions {
  /** Seconds per segment (> 0). */
  readonly duration: number
  /** Seconds shared by consecutive segments (0 <= overlap < duration; default 0). */
  readonly overlap?: number | undefined
  /** Output format, rate and channels of the segments (default WAV, unchanged rate and channels). */
  readonly format?: Format | undefined
  readonly sampleRate?: number | undefined
  readonly channels?: number | undefined
  /** Segments extracted at once (default 2); they are emitted in order. */
  readonly concurrency?: number | undefined
}

export interface Segment {
  readonly index: number
  /** Seconds. */
  readonly start: number
  readonly end: number
  /** The segment's file in the media store. */
  readonly path: string
}

/** The segments' bounds for audio of `total` seconds (see the module comment). */
export const segmentBounds = (
  total: number,
  duration: number,
  overlap: number
): ReadonlyArray<{ readonly start: number; readonly end: number }> => {
  const step = duration - overlap
  const out: Array<{ start: number; end: number }> = []
  for (let k = 0; ; k++) {
    // Multiplying (not accumulating) keeps the bounds exact for decimal steps.
    const start = Math.round(k * step * 1e6) / 1e6
    if (start >= total && k > 0) break
    const end = Math.min(total, Math.round((start + duration) * 1e6) / 1e6)
    out.push({ start, end })
    if (end >= total) break
  }
  return out
}

const validateSegments = (name: string, options: SegmentOptions): Effect.Effect<void, AudioError> => {
  const overlap = options.overlap ?? 0
  const invalid = (message: string) =>
    Effect.fail(new AudioError({ reason: "InvalidOptions", path: name, message: `segments: ${message}` }))
  if (!(Number.isFinite(options.duration) && options.duration > 0)) {
    return invalid(`duration must be positive (got ${options.duration})`)
  }
  if (!(Number.isFinite(overlap) && overlap >= 0 && overlap < options.duration)) {
    return invalid(`need 0 <= overlap < duration (got ${overlap})`)
  }
  return Effect.void
}

/** Splits audio into fixed-length, possibly overlapping segments, each written to the media store. */
export const segments = (
  ref: string | URL,
  options: SegmentOptions
): Stream.Stream<Segment, AudioError | Ffmpeg.FfmpegError | MediaStore.MediaError> =>
  Stream.unwrap(
    Effect.gen(function* () {
      yield* validateSegments(String(ref), options)
      const path = yield* Io.localPath(ref)
      const info = yield* metadataOfPath(path)
      const format = options.format ?? "wav"
      const extract = ({ start, end }: { readonly start: number; readonly end: number }, index: number) =>
        Effect.map(
          Io.writeOutput(format, undefined, (file) => [
            "-ss",
            String(start),
            "-i",
            path,
            "-t",
            String(end - start),
            "-map",
            "0:a:0",
            ...outputArgs(options),
            file
          ]),
          (out): Segment => ({ index, start, end, path: out })
        )
      return Stream.fromIterable(segmentBounds(info.duration, options.duration, options.overlap ?? 0)).pipe(
        Stream.zipWithIndex,
        Stream.mapEffect(([bounds, index]) => extract(bounds, index), { concurrency: options.concurrency ?? 2 })
      )
    })
  )

// ---------------------------------------------------------------------------
// Tessera functions

/** A Tessera function: an audio file's (or a video's audio track's) metadata (Json). */
export const metadataFn = Fn.effect({
  name: "tessera.audio.metadata",
  version: 1,
  params: { audio: Column.Audio },
  returns: Column.Json(AudioMetadata),
  run: ({ audio }) => metadataEffect(audio)
})

/**
 * Audio metadata: with a reference (path or URL), an Effect; with an
 * expression (`t.c.audio`), the `Call` expression of `metadataFn`.
 */
export function metadata(
  ref: string | URL
): Effect.Effect<AudioMetadata, AudioError | Ffmpeg.FfmpegError | MediaStore.MediaError>
export function metadata(audio: Expr.Expr<string> | Expr.Expr<string | null>): Expr.Expr<AudioMetadata>
export function metadata(input: string | URL | Expr.Expr<string> | Expr.Expr<string | null>): unknown {
  return Expr.isExpr(input) ? metadataFn({ audio: input as Expr.Expr<string> }) : metadataEffect(input as string | URL)
}

// ---------------------------------------------------------------------------
// iterator views

/**
 * The segments iterator: an iterator view with one row per segment of each
 * audio file (or video's audio track), `Table.createView(path, clips, {
 * iterator: Audio.segmentIterator(clips.c.audio, { duration: 30, overlap: 5 }) })`.
 * Its columns, beside `pos`: `start`, `end` (seconds) and `segment` (the
 * segment's file, in the media store). Options are those of `segments`.
 */
export const segmentIteratorDefinition = Iterator.make({
  name: "tessera.audio.segments.iterator",
  params: { audio: Column.Audio, options: Column.Json() },
  outputs: { start: Column.Float, end: Column.Float, segment: Column.Audio },
  check: ({ options }) => validateSegments("segments view", (options ?? {}) as SegmentOptions),
  run: ({ audio, options }) =>
    Stream.map(segments(audio, options as SegmentOptions), (s) => ({ start: s.start, end: s.end, segment: s.path }))
})

/** `Audio.segmentIterator(t.c.audio, { duration: 30, overlap: 5 })`: the `iterator` option of a segments view. */
export const segmentIterator = (audio: Expr.Input<string | null>, options: SegmentOptions) =>
  segmentIteratorDefinition({ audio, options: Expr.lit<unknown>(options, ColumnType.Json()) })
