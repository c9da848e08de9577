/**
 * What Video and Audio share: probing a file with ffprobe (decoded with
 * Schema), resolving a media reference to a local file, and running an
 * ffmpeg command that writes one output file.
 */
import { Effect, FileSystem, Path, Schema } from "effect"
import * as Ffmpeg from "../Ffmpeg.ts"
import * as MediaStore from "../MediaStore.ts"
import * as Process from "./ffmpegProcess.ts"

/** A local file for a media reference (URLs are downloaded once by the media store). */
export const localPath = (ref: string | URL) =>
  Effect.flatMap(Effect.service(MediaStore.Current), (store) => store.localPath(ref))

const ProbeStream = Schema.Struct({
  codec_type: Schema.optional(Schema.String),
  codec_name: Schema.optional(Schema.String),
  width: Schema.optional(Schema.Number),
  height: Schema.optional(Schema.Number),
  pix_fmt: Schema.optional(Schema.String),
  r_frame_rate: Schema.optional(Schema.String),
  avg_frame_rate: Schema.optional(Schema.String),
  time_base: Schema.optional(Schema.String),
  start_time: Schema.optional(Schema.String),
  duration: Schema.optional(Schema.String),
  nb_frames: Schema.optional(Schema.String),
  nb_read_packets: Schema.optional(Schema.String),
  sample_rate: Schema.optional(Schema.String),
  channels: Schema.optional(Schema.Number),
  bit_rate: Schema.optional(Schema.String)
})

const ProbeJson = Schema.fromJsonString(
  Schema.Struct({
    streams: Schema.optional(Schema.Array(ProbeStream)),
    format: Schema.optional(
      Schema.Struct({
        duration: Schema.optional(Schema.String),
        format_name: Schema.optional(Schema.String),
        bit_rate: Schema.optional(Schema.String)
      })
    )
  })
)
export type Probe = typeof ProbeJson.Type

const decodeProbe = Schema.decodeUnknownEffect(ProbeJson)

/** `ffprobe -show_format -show_streams` of a local file, decoded. */
export const probe = Effect.fnUntraced(function* (path: string, extra: ReadonlyArray<string> = []) {
  const output = yield* Ffmpeg.exec("ffprobe", [
    "-v",
    "error",
    "-print_format",
    "json",
    "-show_format",
    "-show_streams",
    ...extra,
    path
  ])
  return yield* decodeProbe(new TextDecoder().decode(output.stdout)).pipe(
    Effect.mapError(
      (cause) =>
        new Ffmpeg.FfmpegError({
          reason: "InvalidOutput",
          binary: "ffprobe",
          message: `unexpected ffprobe output for ${path}: ${cause.message}`
        })
    )
  )
})

/** `"30000/1001"` as a number (0 when undefined or 0/0). */
export const parseRate = (rate: string | undefined): number => {
  if (rate === undefined) return 0
  const [n, d] = rate.split("/").map(Number)
  if (d === undefined) return Number.isFinite(n) ? n! : 0
  return d === 0 || !Number.isFinite(n! / d) ? 0 : n! / d
}

export const num = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

/**
 * Runs ffmpeg writing one file of extension `ext`, then stores it: at
 * `output` when given, else content-addressed in the media store.
 */
export const writeOutput = (
  ext: string,
  output: string | undefined,
  args: (file: string) => ReadonlyArray<string>
): Effect.Effect<string, Ffmpeg.FfmpegError | MediaStore.MediaError> =>
  Process.withPlatform(
    Effect.scoped(
      Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        const pathApi = yield* Path.Path
        if (output !== undefined) {
          yield* Ffmpeg.exec("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", ...args(output)])
          return output
        }
        const dir = yield* fs.makeTempDirectoryScoped({ prefix: "tessera-ffmpeg-" })
        const file = pathApi.join(dir, `out.${ext}`)
        yield* Ffmpeg.exec("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", ...args(file)])
        const bytes = yield* fs.readFile(file)
        const store = yield* MediaStore.Current
        return yield* store.put(bytes, ext)
      }).pipe(
        Effect.catchTag("PlatformError", (cause) =>
          Effect.fail(
            new MediaStore.MediaError({
              reason: "Unwritable",
              path: output ?? "",
              message: `cannot write ffmpeg output: ${cause.message}`,
              cause
            })
          )
        )
      )
    )
  )
