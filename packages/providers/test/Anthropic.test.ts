import { assert, describe, it } from "@effect/vitest"
import { Pool } from "@tessera/core"
import { Effect } from "effect"
import { Anthropic, type ProviderError } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-ant-test-0123456789"

let unique = 0
const model = () => `claude-test-${process.pid}-${unique++}`

const invoke = (
  fn: { readonly definition: { readonly invoke: (rows: ReadonlyArray<ReadonlyArray<unknown>>) => any } },
  rows: ReadonlyArray<ReadonlyArray<unknown>>,
  pool: Pool.Pool = new Pool.Pool("test")
): Effect.Effect<ReadonlyArray<unknown>, unknown> =>
  (fn.definition.invoke(rows) as Effect.Effect<ReadonlyArray<unknown>, unknown, Pool.CurrentPool>).pipe(
    Effect.provideService(Pool.CurrentPool, pool)
  )

describe("Anthropic.messages", () => {
  it.live("round-trips through the SDK with max_tokens, system and the answer callback", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        apiKey,
        latency: 5,
        answer: ({ text }) => text.toUpperCase()
      })
      const m = model()
      const messages = Anthropic.messages({ model: m, maxTokens: 64, system: "Shout.", baseURL: fake.url, apiKey })
      assert.match(messages.definition.name, new RegExp(`^anthropic\\.messages/${m}:[0-9a-f]{8}$`))
      assert.strictEqual(messages.definition.pool, `anthropic/${m}`)
      assert.deepStrictEqual(yield* invoke(messages, [["quiet please"]]), ["QUIET PLEASE"])
      const body = fake.requests[0]!.body as { max_tokens: number; system: string; model: string }
      assert.strictEqual(body.max_tokens, 64)
      assert.strictEqual(body.system, "Shout.")
      assert.strictEqual(body.model, m)
      assert.strictEqual(fake.stats.byRoute.messages, 1)
    })
  )

  it.live("anthropic-ratelimit-* headers (RFC 3339 resets) reach the pool", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ requestsPerMinute: 50, tokensPerMinute: 40_000 })
      const pool = new Pool.Pool("anthropic-headers")
      yield* invoke(Anthropic.messages({ model: model(), baseURL: fake.url, apiKey }), [["hi"]], pool)
      assert.strictEqual(pool.stats.limitRequests, 50)
      assert.strictEqual(pool.stats.limitTokens, 40_000)
    })
  )

  it.live("maps 429 with retry-after, 529 overloaded, 400 and refusals", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        fault: ({ text }) =>
          text === "429"
            ? { status: 429, retryAfter: 3 }
            : text === "529"
              ? { status: 529, message: "Overloaded" }
              : text === "400"
                ? { status: 400, message: "prompt is too long: 300000 tokens > 200000 maximum" }
                : text === "refuse"
                  ? { contentFilter: true }
                  : undefined
      })
      const pool = new Pool.Pool("anthropic-errors")
      const messages = Anthropic.messages({ model: model(), baseURL: fake.url, apiKey })
      const reasons: Array<ProviderError.Reason> = []
      for (const text of ["429", "529", "400", "refuse"]) {
        reasons.push((yield* Effect.flip(invoke(messages, [[text]], pool))) as ProviderError.Reason)
      }
      assert.deepStrictEqual(
        reasons.map((r) => [r._tag, r.isRetryable]),
        [
          ["RateLimited", true],
          ["Unavailable", true],
          ["BadRequest", false],
          ["ContentFiltered", false]
        ]
      )
      assert.strictEqual(reasons[1]!.message, "529 Overloaded")
      assert.strictEqual(reasons[2]!.message, "400 prompt is too long: 300000 tokens > 200000 maximum")
      assert.strictEqual(pool.stats.backoffs, 1)
    })
  )
})
