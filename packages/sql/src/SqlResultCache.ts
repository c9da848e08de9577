/**
 * SqlResultCache: the result cache of deterministic functions in the
 * `tessera.results` table, bounded to `maxEntries` by evicting the least
 * recently used entries.
 */
import { PgTypes } from "@effect/sql-pg"
import { ResultCache, Store } from "@tessera/core"
import { Config, Effect, Layer, Result } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

export interface Options {
  /** The most entries kept (default: `TESSERA_CACHE_MAX_ENTRIES`, else 1,000,000). */
  readonly maxEntries?: number | undefined
}

const textArray = (values: ReadonlyArray<string>) => {
  const parameter = PgTypes.array(values, PgTypes.OID.text)
  return Result.isSuccess(parameter) ? parameter.success : null
}

export const make = (options?: Options) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const maxEntries =
      options?.maxEntries ??
      (yield* Config.Int("TESSERA_CACHE_MAX_ENTRIES").pipe(
        Config.withDefault(1_000_000),
        Effect.orElseSucceed(() => 1_000_000)
      ))
    const stats = { hits: 0, misses: 0, writes: 0 }
    let writesSinceCheck = 0
    const failure = (what: string) => (cause: SqlError.SqlError) =>
      new Store.StoreError({ message: `${what}: ${cause.message}`, cause })

    const evict = Effect.gen(function* () {
      const rows = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM tessera.results`
      const excess = Number(rows[0]!.n) - maxEntries
      if (excess > 0) {
        yield* sql`DELETE FROM tessera.results WHERE ctid IN (
          SELECT ctid FROM tessera.results ORDER BY used_at LIMIT ${excess})`
      }
    })

    return ResultCache.ResultCache.of({
      get: (fn, version, keys) =>
        keys.length === 0
          ? Effect.succeed(new Map())
          : sql<{ key: string; value: unknown }>`
              UPDATE tessera.results SET used_at = now()
              WHERE fn = ${fn} AND version = ${version} AND key = ANY(${textArray(keys)}::text[])
              RETURNING key, value`.pipe(
              Effect.map((rows) => {
                stats.hits += rows.length
                stats.misses += keys.length - rows.length
                return new Map(rows.map((r) => [r.key, r.value]))
              }),
              Effect.mapError(failure("reading the result cache"))
            ),
      put: (fn, version, entries) =>
        entries.length === 0
          ? Effect.void
          : Effect.gen(function* () {
              yield* sql`INSERT INTO tessera.results (fn, version, key, value)
                SELECT ${fn}, ${version}, u.k, u.v::jsonb
                FROM unnest(${textArray(entries.map((e) => e.key))}::text[],
                            ${textArray(entries.map((e) => JSON.stringify(e.value)))}::text[]) AS u (k, v)
                ON CONFLICT (fn, version, key) DO UPDATE SET value = excluded.value, used_at = now()`
              stats.writes += entries.length
              writesSinceCheck += entries.length
              if (writesSinceCheck >= Math.max(100, Math.floor(maxEntries / 100))) {
                writesSinceCheck = 0
                yield* evict
              }
            }).pipe(Effect.mapError(failure("writing the result cache"))),
      forget: (values) =>
        values.length === 0
          ? Effect.void
          : sql`DELETE FROM tessera.results
              WHERE value IN (SELECT to_jsonb(v) FROM unnest(${textArray(values)}::text[]) AS v)`.pipe(
              Effect.asVoid,
              Effect.mapError(failure("forgetting cached results"))
            ),
      stats: Effect.sync(() => ({ ...stats }))
    })
  })

/** The result cache on the database in context. */
export const layer = (options?: Options): Layer.Layer<ResultCache.ResultCache, never, SqlClient.SqlClient> =>
  Layer.effect(ResultCache.ResultCache, make(options))
