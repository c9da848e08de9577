/**
 * ResultCache: persisted results of deterministic functions, keyed by
 * (function, version, hash of the inputs), so that the same input is never
 * sent to a paid or slow model twice: a re-inserted row, an unchanged chunk of
 * an edited document, a column dropped and added again, a recompute after a
 * crash.
 *
 * On by default for functions declared deterministic, off for others, and
 * configurable per column (`addComputedColumn(..., { cache })`). The store
 * keeps it bounded, evicting the least recently used entries.
 */
import { Context, type Effect } from "effect"
import { createHash } from "node:crypto"
import type { StoreError } from "./Store.ts"

export interface Stats {
  readonly hits: number
  readonly misses: number
  readonly writes: number
}

export class ResultCache extends Context.Service<
  ResultCache,
  {
    /** The cached results among `keys` (by key). */
    readonly get: (
      fn: string,
      version: number,
      keys: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyMap<string, unknown>, StoreError>
    readonly put: (
      fn: string,
      version: number,
      entries: ReadonlyArray<{ readonly key: string; readonly value: unknown }>
    ) => Effect.Effect<void, StoreError>
    /** Drops the cached results whose value is one of `values` (e.g. media files that were removed). */
    readonly forget: (values: ReadonlyArray<string>) => Effect.Effect<void, StoreError>
    /** Hits, misses and writes of this process. */
    readonly stats: Effect.Effect<Stats>
  }
>()("@tessera/core/ResultCache") {}

/** A JSON form of a value that keeps typed arrays, dates and bytes apart from plain JSON. */
export const encodeValue = (value: unknown): unknown => {
  if (value instanceof Float32Array) return { $f32: Array.from(value) }
  if (value instanceof Date) return { $date: value.toISOString() }
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") }
  if (Array.isArray(value)) return value.map(encodeValue)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(value).sort()) out[key] = encodeValue((value as Record<string, unknown>)[key])
    return out
  }
  return value
}

/** The inverse of `encodeValue`. */
export const decodeValue = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(decodeValue)
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>
    if (Array.isArray(record.$f32) && Object.keys(record).length === 1)
      return Float32Array.from(record.$f32 as Array<number>)
    if (typeof record.$date === "string" && Object.keys(record).length === 1) return new Date(record.$date)
    if (typeof record.$bytes === "string" && Object.keys(record).length === 1) {
      return new Uint8Array(Buffer.from(record.$bytes, "base64"))
    }
    const out: Record<string, unknown> = {}
    for (const [key, v] of Object.entries(record)) out[key] = decodeValue(v)
    return out
  }
  return value
}

/** The cache key of one invocation's arguments. */
export const keyOf = (args: ReadonlyArray<unknown>): string =>
  createHash("sha256")
    .update(JSON.stringify(encodeValue(args)))
    .digest("base64url")
