import { assert } from "@effect/vitest"
import { Column, type Expr, Pool, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import { Anthropic, OpenAI } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-test-rate-limits"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

const texts = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `row ${i}` }))

/**
 * How far the requests the fake received (every status) went beyond a token
 * bucket of `capacity` refilling at `capacity` a minute, starting full: the
 * largest `cost(requests in [a, b]) - (capacity + rate * (b - a))` over all
 * windows. At most 0 when every request found enough left in the bucket; each
 * request sent into an empty bucket (a 429 the pacing should have avoided)
 * adds its cost.
 */
const excess = (
  requests: ReadonlyArray<FakeProvider.LoggedRequest>,
  capacity: number,
  cost: (request: FakeProvider.LoggedRequest) => number
): number => {
  const sorted = [...requests].sort((a, b) => a.receivedAt - b.receivedAt)
  const rate = capacity / 60_000
  let worst = Number.NEGATIVE_INFINITY
  for (let i = 0; i < sorted.length; i++) {
    let used = 0
    for (let j = i; j < sorted.length; j++) {
      used += cost(sorted[j]!)
      worst = Math.max(worst, used - (capacity + rate * (sorted[j]!.receivedAt - sorted[i]!.receivedAt)))
    }
  }
  return worst
}

const poolStats = (name: string) =>
  Effect.map(Pool.stats, (stats) => {
    const pool = stats.find((p) => p.name === name)
    assert.isDefined(pool, `no pool ${name}`)
    return pool!
  })

/**
 * Runs `answer` as a computed column over 300 prompts and checks every row got
 * the fake's echo with no error (no 429 surfaced); returns the fake's 429s,
 * injected (each retried) and from an empty bucket.
 */
const answerAll = (fake: FakeProvider.FakeProvider, answer: (prompt: Expr.Expr<string>) => Expr.Expr<string | null>) =>
  Effect.gen(function* () {
    const t = yield* Table.create("prompts", { text: Column.String })
    yield* t.insert(texts(300))
    const t2 = yield* t.addComputedColumn("answer", answer(t.c.text), { onError: "record" })
    assert.strictEqual(yield* t2.where((c) => c.answer.errorType.isNotNull()).count(), 0)
    const rows = yield* t2.collect()
    assert.strictEqual(rows.length, 300)
    assert.isTrue(rows.every((r) => r.answer === `echo: ${r.text}`))
    const limited = fake.rateLimited
    const injected = limited.filter((r) => r.cause === "fault")
    assert.isAtLeast(injected.length, 5)
    for (const r of injected) assert.isDefined(r.retry, `injected 429 ${r.n} never retried`)
    return { limited, exhausted: limited.filter((r) => r.cause !== "fault") }
  })

Harness.forEachBackend("Pacing by advertised rate limits", (test) => {
  test("OpenAI chat, 300 rows, 270 requests/minute advertised and injected 429s: all done, paced under the limit", () =>
    Effect.gen(function* () {
      const capacity = 270
      const fake = yield* FakeProvider.make({
        latency: 5,
        requestsPerMinute: capacity,
        tokensPerMinute: 1_000_000,
        fault: ({ n }) => (n % 50 === 0 && n <= 250 ? { status: 429, retryAfter: 0.5 } : undefined)
      })
      const m = model("gpt-paced")
      const chat = OpenAI.chat({ model: m, baseURL: `${fake.url}/v1`, apiKey, concurrency: 16 })
      const { limited, exhausted } = yield* answerAll(fake, (prompt) => chat({ prompt }))
      // Pacing: the pool waits for the advertised bucket instead of finding it empty.
      assert.isAtMost(exhausted.length, 3, `${exhausted.length} requests found the bucket empty`)
      assert.isAtMost(
        excess(fake.requests, capacity, () => 1),
        3
      )
      assert.strictEqual(fake.stats.byStatus["200"], 300)
      const pool = yield* poolStats(`openai/${m}`)
      assert.strictEqual(pool.limitRequests, capacity)
      assert.isAbove(pool.waitedMs, 0)
      assert.strictEqual(pool.backoffs, limited.length)
    }))

  test("Anthropic messages, 300 rows, 270k tokens/minute advertised and injected 429s: all done, paced under the limit", () =>
    Effect.gen(function* () {
      const capacity = 270_000
      const maxTokens = 1000
      const fake = yield* FakeProvider.make({
        latency: 5,
        requestsPerMinute: 100_000,
        tokensPerMinute: capacity,
        fault: ({ n }) => (n % 40 === 0 ? { status: 429, retryAfter: 0.5 } : undefined)
      })
      const m = model("claude-paced")
      const messages = Anthropic.messages({ model: m, baseURL: fake.url, apiKey, maxTokens, concurrency: 16 })
      const { exhausted } = yield* answerAll(fake, (prompt) => messages({ prompt }))
      assert.isAtMost(exhausted.length, 3, `${exhausted.length} requests found the token bucket empty`)
      const cost = (r: FakeProvider.LoggedRequest) => FakeProvider.estimateTokens(r.text) + maxTokens
      assert.isAtMost(excess(fake.requests, capacity, cost), 3 * (maxTokens + 10))
      const pool = yield* poolStats(`anthropic/${m}`)
      assert.strictEqual(pool.limitTokens, capacity)
      assert.isAbove(pool.waitedMs, 0)
    }))
})
