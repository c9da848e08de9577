import { assert, describe, it } from "@effect/vitest"
import { Duration } from "effect"
import * as RateLimitHeaders from "../src/internal/headers.ts"

describe("rate-limit headers", () => {
  it("OpenAI x-ratelimit-* with duration resets", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "1200",
      "x-ratelimit-remaining-requests": "1187",
      "x-ratelimit-reset-requests": "650ms",
      "x-ratelimit-limit-tokens": "90000",
      "x-ratelimit-remaining-tokens": "88000",
      "x-ratelimit-reset-tokens": "1m20.5s"
    })
    assert.deepStrictEqual(RateLimitHeaders.openAI(headers), {
      limitRequests: 1200,
      remainingRequests: 1187,
      resetRequestsMs: 650,
      limitTokens: 90000,
      remainingTokens: 88000,
      resetTokensMs: 80_500
    })
    assert.deepStrictEqual(RateLimitHeaders.openAI(new Headers()), {
      limitRequests: undefined,
      remainingRequests: undefined,
      resetRequestsMs: undefined,
      limitTokens: undefined,
      remainingTokens: undefined,
      resetTokensMs: undefined
    })
  })

  it("Anthropic anthropic-ratelimit-* with RFC 3339 resets", () => {
    const now = Date.parse("2025-01-01T00:00:00Z")
    const info = RateLimitHeaders.anthropic(
      new Headers({
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-01-01T00:00:01.200Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2025-01-01T00:00:30Z"
      }),
      now
    )
    assert.deepStrictEqual(info, {
      limitRequests: 50,
      remainingRequests: 49,
      resetRequestsMs: 1200,
      limitTokens: 40000,
      remainingTokens: 39000,
      resetTokensMs: 30_000
    })
  })

  it("retry-after-ms wins over retry-after (seconds or an HTTP date)", () => {
    const now = Date.parse("2025-01-01T00:00:00Z")
    const ms = (headers: Record<string, string>) => {
      const d = RateLimitHeaders.retryAfter(new Headers(headers), now)
      return d === undefined ? undefined : Duration.toMillis(d)
    }
    assert.strictEqual(ms({ "retry-after-ms": "1500", "retry-after": "2" }), 1500)
    assert.strictEqual(ms({ "retry-after": "2" }), 2000)
    assert.strictEqual(ms({ "retry-after": "0.25" }), 250)
    assert.strictEqual(ms({ "retry-after": "Wed, 01 Jan 2025 00:00:05 GMT" }), 5000)
    assert.strictEqual(ms({}), undefined)
  })
})
