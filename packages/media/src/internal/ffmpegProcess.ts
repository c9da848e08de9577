/**
 * Running ffmpeg and ffprobe through `effect/process`: the child belongs to a
 * Scope, so interrupting the fiber that reads it kills the process (group).
 * Media functions run inside Tessera functions, whose effects cannot require
 * services: when the platform services are absent, the Node ones are used.
 */
import * as NodeChildProcessSpawner from "@effect/platform-node/NodeChildProcessSpawner"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, FileSystem, Layer, Option, Path, Stream } from "effect"
import { ChildProcess, ChildProcessSpawner } from "effect/process"

export type Platform = ChildProcessSpawner.ChildProcessSpawner | FileSystem.FileSystem | Path.Path

const nodePlatform: Layer.Layer<Platform> = Layer.provideMerge(
  NodeChildProcessSpawner.layer,
  Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
)

/** Runs an effect with the platform services of its context, or Node's when any is missing. */
export const withPlatform = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, Platform>> =>
  Effect.gen(function* () {
    const spawner = yield* Effect.serviceOption(ChildProcessSpawner.ChildProcessSpawner)
    const fs = yield* Effect.serviceOption(FileSystem.FileSystem)
    const path = yield* Effect.serviceOption(Path.Path)
    if (Option.isSome(spawner) && Option.isSome(fs) && Option.isSome(path)) {
      return yield* effect as Effect.Effect<A, E, Exclude<R, Platform>>
    }
    return yield* Effect.provide(effect, nodePlatform) as Effect.Effect<A, E, Exclude<R, Platform>>
  })

export interface Output {
  readonly exitCode: number
  readonly stdout: Uint8Array
  readonly stderr: string
}

/** Failure to start a process, or it ended on a signal: `cause` is the platform error. */
export interface SpawnFailure {
  readonly _tag: "SpawnFailure"
  readonly command: string
  readonly cause: unknown
}

const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 0
  for (const chunk of chunks) length += chunk.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/** Runs a command to completion, collecting stdout (bytes) and stderr (text) concurrently. */
export const run = (
  command: string,
  args: ReadonlyArray<string>
): Effect.Effect<Output, SpawnFailure, ChildProcessSpawner.ChildProcessSpawner> =>
  Effect.scoped(
    Effect.gen(function* () {
      const spawner = yield* ChildProcessSpawner.ChildProcessSpawner
      const handle = yield* spawner.spawn(
        ChildProcess.make(command, args, { stdin: "ignore", forceKillAfter: "2 seconds" })
      )
      const [stdout, stderr] = yield* Effect.all(
        [
          Stream.runCollect(handle.stdout).pipe(Effect.map(concat)),
          Stream.runCollect(handle.stderr).pipe(Effect.map((chunks) => new TextDecoder().decode(concat(chunks))))
        ],
        { concurrency: 2 }
      )
      const exitCode = yield* handle.exitCode
      return { exitCode, stdout, stderr }
    })
  ).pipe(Effect.mapError((cause): SpawnFailure => ({ _tag: "SpawnFailure", command, cause })))

/** The last lines of a process's stderr, for error messages. */
export const tail = (stderr: string, lines = 6): string =>
  stderr
    .split(/\r?\n/)
    .filter((line) => line.trim() !== "")
    .slice(-lines)
    .join("\n")
