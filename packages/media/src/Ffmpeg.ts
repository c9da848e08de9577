/**
 * Ffmpeg: which ffmpeg and ffprobe binaries media functions run, and how.
 *
 * Selection rule (first that applies):
 * 1. configuration: `TESSERA_FFMPEG` (and `TESSERA_FFPROBE`; without it, the
 *    `ffprobe` beside `TESSERA_FFMPEG`, else the rule below);
 * 2. an `ffmpeg` on `PATH` whose version is at least the npm one's
 *    (`@ffmpeg-installer/ffmpeg`), with the `ffprobe` beside it (else on PATH,
 *    else npm's);
 * 3. the npm binaries (`@ffmpeg-installer/ffmpeg`, `@ffprobe-installer/ffprobe`).
 *
 * Versions compare as: a release (`5.1.9-0+deb12u1`, `n6.0`, `7.1`) by its
 * numbers; a git build (`N-47683-g0e8eb07980`, what the npm package ships)
 * is older than every release, and git builds compare by their `N-` number;
 * anything unparseable is older than both.
 *
 * Tessera functions' `run` effects cannot require services, so nothing here
 * requires the `Ffmpeg` layer: `Ffmpeg.current` uses the provided service, or
 * the default (`DefaultFfmpeg`, a `Context.Reference`) that resolves by the
 * rule above once per process and configuration.
 */
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { Config, Context, Effect, Exit, FileSystem, Layer, Option, Path, Schema } from "effect"
import * as Process from "./internal/ffmpegProcess.ts"

export class FfmpegError extends Schema.TaggedError<FfmpegError>()("FfmpegError", {
  reason: Schema.Literals(["NotFound", "SpawnFailed", "ProcessFailed", "InvalidOutput"]),
  binary: Schema.String,
  message: Schema.String,
  exitCode: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Defect())
}) {
  /** Only a binary that could not be started might be transient; ffmpeg failing on an input is not. */
  get isRetryable(): boolean {
    return this.reason === "SpawnFailed"
  }
}

export const installHint =
  "install ffmpeg (Debian/Ubuntu: `apt-get install ffmpeg`; macOS: `brew install ffmpeg`), " +
  "or the npm binaries (`npm install @ffmpeg-installer/ffmpeg @ffprobe-installer/ffprobe`), " +
  "or set TESSERA_FFMPEG / TESSERA_FFPROBE to their paths"

export interface Binaries {
  readonly ffmpeg: string
  readonly ffprobe: string
  /** The version ffmpeg reports (`ffmpeg -version`), e.g. `5.1.9-0+deb12u1` or `N-47683-g0e8eb07980-static`. */
  readonly version: string
  readonly source: "config" | "system" | "npm"
}

export class Ffmpeg extends Context.Service<Ffmpeg, Binaries>()("@tessera/media/Ffmpeg") {
  /** Resolves the binaries by the module's rule (configuration, PATH, npm). */
  static readonly layer: Layer.Layer<Ffmpeg, FfmpegError> = Layer.effect(
    Ffmpeg,
    Effect.suspend(() => resolve)
  )
  /** Uses given binaries, checking that ffmpeg runs. */
  static readonly layerPaths = (paths: { readonly ffmpeg: string; readonly ffprobe: string }) =>
    Layer.effect(
      Ffmpeg,
      Effect.map(
        Process.withPlatform(versionOf(paths.ffmpeg)),
        (version): Binaries => ({ ...paths, version, source: "config" })
      )
    )
}

// ---------------------------------------------------------------------------
// versions

export type Version =
  | { readonly _tag: "Release"; readonly parts: ReadonlyArray<number>; readonly raw: string }
  | { readonly _tag: "Git"; readonly n: number; readonly raw: string }
  | { readonly _tag: "Unknown"; readonly raw: string }

export const parseVersion = (raw: string): Version => {
  const git = /^N-(\d+)/.exec(raw)
  if (git) return { _tag: "Git", n: Number(git[1]), raw }
  const release = /^n?(\d+)\.(\d+)(?:\.(\d+))?/.exec(raw)
  if (release) {
    return { _tag: "Release", parts: [release[1], release[2], release[3] ?? "0"].map(Number), raw }
  }
  return { _tag: "Unknown", raw }
}

const rank = { Unknown: 0, Git: 1, Release: 2 } as const

/** Negative when `a` is older than `b`, 0 when equal, positive when newer. */
export const compareVersions = (a: Version, b: Version): number => {
  if (a._tag !== b._tag) return rank[a._tag] - rank[b._tag]
  if (a._tag === "Git" && b._tag === "Git") return a.n - b.n
  if (a._tag === "Release" && b._tag === "Release") {
    for (let i = 0; i < 3; i++) {
      const d = a.parts[i]! - b.parts[i]!
      if (d !== 0) return d
    }
  }
  return 0
}

// ---------------------------------------------------------------------------
// resolution

const versionOf = Effect.fnUntraced(function* (binary: string) {
  const output = yield* Process.run(binary, ["-hide_banner", "-version"]).pipe(
    Effect.mapError(
      (failure) =>
        new FfmpegError({
          reason: "NotFound",
          binary,
          message: `cannot run ${binary}: ${installHint}`,
          cause: failure.cause
        })
    )
  )
  const text = new TextDecoder().decode(output.stdout)
  const match = /version\s+(\S+)/.exec(text)
  if (output.exitCode !== 0 || match === null) {
    return yield* new FfmpegError({
      reason: "NotFound",
      binary,
      message: `${binary} -version did not report a version (exit ${output.exitCode}): ${installHint}`
    })
  }
  return match[1]!
})

const npmBinary = (pkg: string): string | undefined => {
  try {
    const path = (createRequire(import.meta.url)(pkg) as { readonly path?: unknown }).path
    return typeof path === "string" ? path : undefined
  } catch {
    // The package is absent or does not support this platform.
    return undefined
  }
}

/** The first executable `name` on PATH, if any. */
const onPath = Effect.fnUntraced(function* (name: string) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  for (const dir of (process.env.PATH ?? "").split(NodePath.delimiter)) {
    if (dir === "") continue
    const candidate = path.join(dir, name)
    if (yield* fs.exists(candidate).pipe(Effect.orElseSucceed(() => false))) return Option.some(candidate)
  }
  return Option.none<string>()
})

const besideOrElse = Effect.fnUntraced(function* (ffmpeg: string, fallback: () => Option.Option<string>) {
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const sibling = path.join(path.dirname(ffmpeg), "ffprobe")
  if (path.isAbsolute(ffmpeg) && (yield* fs.exists(sibling).pipe(Effect.orElseSucceed(() => false)))) {
    return sibling
  }
  const other = fallback()
  if (Option.isSome(other)) return other.value
  return yield* new FfmpegError({ reason: "NotFound", binary: "ffprobe", message: `ffprobe not found: ${installHint}` })
})

interface Settings {
  readonly ffmpeg: Option.Option<string>
  readonly ffprobe: Option.Option<string>
}

const settings = Effect.gen(function* () {
  const ffmpeg = yield* Config.option(Config.String("TESSERA_FFMPEG"))
  const ffprobe = yield* Config.option(Config.String("TESSERA_FFPROBE"))
  return { ffmpeg, ffprobe } satisfies Settings
}).pipe(Effect.orElseSucceed((): Settings => ({ ffmpeg: Option.none(), ffprobe: Option.none() })))

const resolveWith = Effect.fnUntraced(function* (config: Settings) {
  const npmFfmpeg = npmBinary("@ffmpeg-installer/ffmpeg")
  const npmFfprobe = Option.fromNullishOr(npmBinary("@ffprobe-installer/ffprobe"))
  const systemFfprobe = yield* onPath("ffprobe")
  const probeFallback = () => Option.orElse(systemFfprobe, () => npmFfprobe)

  if (Option.isSome(config.ffmpeg)) {
    const ffmpeg = config.ffmpeg.value
    const version = yield* versionOf(ffmpeg)
    const ffprobe = Option.isSome(config.ffprobe) ? config.ffprobe.value : yield* besideOrElse(ffmpeg, probeFallback)
    return { ffmpeg, ffprobe, version, source: "config" } satisfies Binaries
  }

  const system = yield* onPath("ffmpeg")
  const systemVersion = Option.isSome(system)
    ? yield* versionOf(system.value).pipe(Effect.option)
    : Option.none<string>()
  const npmVersion = npmFfmpeg === undefined ? Option.none<string>() : yield* versionOf(npmFfmpeg).pipe(Effect.option)

  const useSystem =
    Option.isSome(system) &&
    Option.isSome(systemVersion) &&
    (Option.isNone(npmVersion) ||
      compareVersions(parseVersion(systemVersion.value), parseVersion(npmVersion.value)) >= 0)
  const ffprobeOverride = config.ffprobe
  if (useSystem) {
    const ffmpeg = system.value
    const ffprobe = Option.isSome(ffprobeOverride) ? ffprobeOverride.value : yield* besideOrElse(ffmpeg, probeFallback)
    return { ffmpeg, ffprobe, version: systemVersion.value, source: "system" } satisfies Binaries
  }
  if (npmFfmpeg !== undefined && Option.isSome(npmVersion)) {
    const ffprobe = Option.isSome(ffprobeOverride)
      ? ffprobeOverride.value
      : yield* besideOrElse(npmFfmpeg, () => Option.orElse(npmFfprobe, () => systemFfprobe))
    return { ffmpeg: npmFfmpeg, ffprobe, version: npmVersion.value, source: "npm" } satisfies Binaries
  }
  return yield* new FfmpegError({ reason: "NotFound", binary: "ffmpeg", message: `ffmpeg not found: ${installHint}` })
})

const resolved = new Map<string, Binaries>()

/**
 * Resolves the binaries by the module's rule. Successes are remembered per
 * configuration for the life of the process (a missing ffmpeg is looked for
 * again next time).
 */
export const resolve: Effect.Effect<Binaries, FfmpegError> = Effect.gen(function* () {
  const config = yield* settings
  const key = `${Option.getOrElse(config.ffmpeg, () => "")}\u0000${Option.getOrElse(config.ffprobe, () => "")}`
  const cached = resolved.get(key)
  if (cached !== undefined) return cached
  const exit = yield* Effect.exit(Process.withPlatform(resolveWith(config)))
  if (Exit.isSuccess(exit)) resolved.set(key, exit.value)
  return yield* exit
})

/** The binaries used when no `Ffmpeg` service is provided. */
export const DefaultFfmpeg = Context.Reference<Effect.Effect<Binaries, FfmpegError>>("@tessera/media/Ffmpeg/Default", {
  defaultValue: () => resolve
})

/** The provided `Ffmpeg` service, or the default resolution. */
export const current: Effect.Effect<Binaries, FfmpegError> = Effect.flatMap(
  Effect.serviceOption(Ffmpeg),
  Option.match({ onSome: Effect.succeed, onNone: () => Effect.flatten(Effect.service(DefaultFfmpeg)) })
)

// ---------------------------------------------------------------------------
// running

export type Output = Process.Output

/**
 * Runs ffmpeg or ffprobe (the current binaries) to completion; a non-zero
 * exit fails with `ProcessFailed` carrying the end of stderr.
 */
export const exec = Effect.fnUntraced(function* (tool: "ffmpeg" | "ffprobe", args: ReadonlyArray<string>) {
  const binaries = yield* current
  const binary = binaries[tool]
  const output = yield* Process.withPlatform(Process.run(binary, args)).pipe(
    Effect.mapError(
      (failure) =>
        new FfmpegError({
          reason: "SpawnFailed",
          binary,
          message: `cannot run ${binary}: ${String(failure.cause)}`,
          cause: failure.cause
        })
    )
  )
  if (output.exitCode !== 0) {
    return yield* new FfmpegError({
      reason: "ProcessFailed",
      binary,
      exitCode: output.exitCode,
      message: `${tool} exited with code ${output.exitCode}: ${Process.tail(output.stderr)}`
    })
  }
  return output
})
