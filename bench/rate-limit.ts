/**
 * Rate-limit pacing: N rows through a computed column calling the fake
 * provider's chat completions (50 ms latency) on the embedded backend.
 *
 * (a) the fake enforces and advertises R requests/minute (a token bucket of
 *     capacity R refilling R/60 per second, like OpenAI's): backfill time vs
 *     the floor that bucket implies, (N - R) / (R / 60) s plus one latency,
 *     and the number of 429s the fake sent (target: ratio <= 1.15, few 429s).
 * (b) no limit advertised, concurrency 64: rows per second vs the ideal
 *     64 / 50 ms, and vs the bare SDK sending the same requests at the same
 *     concurrency (the fake, the SDK and the engine share one thread, so the
 *     bare SDK is the practical ceiling here).
 *
 * ratio = (a)'s time / floor. The pool holds back 5% of the bucket as
 * headroom, which costs a fixed 3 s of refill whatever the limit: short runs
 * (`--quick`, floor 6 s) show a higher ratio than the full one (floor 40 s).
 */
import { Column, Dir, Pool, Table } from "@tessera/core"
import { OpenAI } from "@tessera/providers"
import { FakeProvider } from "@tessera/providers/testing"
import { Tessera } from "@tessera/sql"
import { Effect } from "effect"
import OpenAIClient from "openai"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

const LATENCY_MS = 50
const CONCURRENCY = 64

interface Run {
  readonly seconds: number
  /** First request received to last answered, at the fake. */
  readonly spanSeconds: number
  readonly requests: number
  readonly rateLimited: number
  readonly maxInFlight: number
  readonly pool: Pool.PoolStats | undefined
}

const run = (name: string, rows: number, fake: FakeProvider.FakeProvider) =>
  Effect.gen(function* () {
    const model = `bench-${name}-${process.pid}`
    const chat = OpenAI.chat({ model, baseURL: `${fake.url}/v1`, apiKey: "sk-bench", concurrency: CONCURRENCY })
    const t = yield* Table.create(`bench/rate_${name}`, { text: Column.String }, { ifExists: "replace" })
    yield* t.insert(Array.from({ length: rows }, (_, i) => ({ text: `row ${i}` })))
    const start = performance.now()
    const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.text }), { onError: "record" })
    const seconds = (performance.now() - start) / 1000
    const failed = yield* t2.where((c) => c.answer.errorType.isNotNull()).count()
    if (failed > 0) throw new Error(`${name}: ${failed} cells failed`)
    const log = fake.requests
    const first = Math.min(...log.map((r) => r.receivedAt))
    const last = Math.max(...log.map((r) => r.answeredAt ?? r.receivedAt))
    const pools = yield* Pool.Pools
    return {
      seconds,
      spanSeconds: (last - first) / 1000,
      requests: fake.stats.total,
      rateLimited: fake.stats.byStatus["429"] ?? 0,
      maxInFlight: fake.stats.maxInFlight,
      pool: pools.stats.find((p) => p.name === `openai/${model}`)
    } satisfies Run
  })

/** The same chat requests through the bare SDK (no engine), `concurrency` at a time: rows per second. */
const bareSdk = (rows: number, fake: FakeProvider.FakeProvider) =>
  Effect.gen(function* () {
    const client = new OpenAIClient({ apiKey: "sk-bench", baseURL: `${fake.url}/v1`, maxRetries: 0 })
    const start = performance.now()
    yield* Effect.forEach(
      Array.from({ length: rows }, (_, i) => i),
      (i) =>
        Effect.promise(() =>
          client.chat.completions
            .create({ model: "bench-bare", messages: [{ role: "user", content: `row ${i}` }] })
            .withResponse()
        ),
      { concurrency: CONCURRENCY, discard: true }
    )
    return rows / ((performance.now() - start) / 1000)
  })

export const main = async (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  // Quick: a bucket of 600 and 660 rows (floor 6 s); full: 1,200 and 2,000 rows (floor 40 s).
  const rows = quick ? 660 : 2000
  const limit = quick ? 600 : 1200
  const refillPerSecond = limit / 60
  const floor = Math.max(0, rows - limit) / refillPerSecond + LATENCY_MS / 1000
  const ideal = CONCURRENCY / (LATENCY_MS / 1000)
  const home = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-bench-"))
  try {
    const [a, b, bare] = await Effect.runPromise(
      Effect.gen(function* () {
        yield* Dir.create("bench", { ifExists: "ignore" })
        // Warm up the SDK, the fake and the JIT before measuring.
        const warm = yield* FakeProvider.make({ latency: LATENCY_MS })
        yield* bareSdk(Math.min(rows, 500), warm)
        const bareFake = yield* FakeProvider.make({ latency: LATENCY_MS })
        const bare = yield* bareSdk(rows, bareFake)
        const open = yield* FakeProvider.make({ latency: LATENCY_MS })
        const b = yield* run("open", rows, open)
        const limited = yield* FakeProvider.make({ latency: LATENCY_MS, requestsPerMinute: limit })
        const a = yield* run("limited", rows, limited)
        return [a, b, bare] as const
      }).pipe(Effect.scoped, Effect.provide(Tessera.layerEmbedded({ home })))
    )
    const ratioA = a.seconds / floor
    const rowsPerSecond = rows / b.seconds
    const ratioB = rowsPerSecond / ideal
    console.log(
      `(a) ${rows} rows, ${limit} requests/min enforced and advertised: ${a.seconds.toFixed(2)} s ` +
        `(fake saw ${a.spanSeconds.toFixed(2)} s) vs floor ${floor.toFixed(2)} s, ratio ${ratioA.toFixed(3)}; ` +
        `${a.requests} requests, ${a.rateLimited} 429s, max ${a.maxInFlight} in flight; ` +
        `pacing wait ${Math.round((a.pool?.waitedMs ?? 0) / a.requests)} ms per request on average, ${a.pool?.backoffs ?? 0} backoffs`
    )
    console.log(
      `(b) ${rows} rows, no limit, concurrency ${CONCURRENCY}: ${b.seconds.toFixed(2)} s, ` +
        `${Math.round(rowsPerSecond)} rows/s vs ideal ${Math.round(ideal)} rows/s, ratio ${ratioB.toFixed(3)}; ` +
        `bare SDK ${Math.round(bare)} rows/s (Tessera/bare ${(rowsPerSecond / bare).toFixed(3)}); ` +
        `(fake saw ${b.spanSeconds.toFixed(2)} s) ${b.requests} requests, max ${b.maxInFlight} in flight, pacing wait ${Math.round((b.pool?.waitedMs ?? 0) / b.requests)} ms per request`
    )
    console.log(
      `BENCH rate-limit rows=${rows} limit_rpm=${limit} a_seconds=${a.seconds.toFixed(2)} a_floor_seconds=${floor.toFixed(2)} ` +
        `a_429s=${a.rateLimited} b_rows_per_s=${Math.round(rowsPerSecond)} b_ideal_rows_per_s=${Math.round(ideal)} ` +
        `b_ratio=${ratioB.toFixed(3)} b_bare_sdk_rows_per_s=${Math.round(bare)} b_vs_bare=${(rowsPerSecond / bare).toFixed(3)} ` +
        `ratio=${ratioA.toFixed(3)}`
    )
  } finally {
    NodeFs.rmSync(home, { recursive: true, force: true })
  }
}
