import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { ProviderError } from "../src/index.ts"

/** Fails with `reason` `failures` times, recording when each attempt ran. */
const flaky = (reason: ProviderError.Reason, failures: number) => {
  const attempts: Array<number> = []
  const effect = Effect.suspend(() => {
    attempts.push(performance.now())
    return attempts.length <= failures ? Effect.fail(reason) : Effect.succeed("ok")
  })
  return { effect, attempts }
}

describe("ProviderError", () => {
  it("reasons know whether they are retryable; the wrapper's message names provider, reason and text", () => {
    const error = new ProviderError.ProviderError({
      provider: "openai",
      operation: "chat.completions",
      model: "gpt-4o-mini",
      reason: new ProviderError.RateLimited({ status: 429, message: "429 slow down", retryAfter: Duration.seconds(2) })
    })
    assert.strictEqual(error.message, "openai chat.completions (gpt-4o-mini): RateLimited: 429 slow down")
    assert.isTrue(error.isRetryable)
    assert.strictEqual(Duration.toMillis(error.retryAfter!), 2000)
    assert.isTrue(ProviderError.isProviderError(error))
    assert.isTrue(ProviderError.isReason(error.reason))
    assert.deepStrictEqual(
      [429, 408, 401, 403, 500, 503, 529, 400, 404, 422].map((s) => {
        const r = ProviderError.reasonFromStatus(s, "m")
        return [s, r._tag, r.isRetryable]
      }),
      [
        [429, "RateLimited", true],
        [408, "Timeout", true],
        [401, "Auth", false],
        [403, "Auth", false],
        [500, "Unavailable", true],
        [503, "Unavailable", true],
        [529, "Unavailable", true],
        [400, "BadRequest", false],
        [404, "BadRequest", false],
        [422, "BadRequest", false]
      ]
    )
    assert.isFalse(ProviderError.isRetryable(new Error("not ours")))
  })

  it.live("retry: retryable reasons up to `times`, others never", () =>
    Effect.gen(function* () {
      const schedule = ProviderError.retry({ times: 3, base: "1 millis" })
      const transient = flaky(new ProviderError.Timeout({ message: "slow" }), 2)
      assert.strictEqual(yield* Effect.retry(transient.effect, schedule), "ok")
      assert.strictEqual(transient.attempts.length, 3)

      const exhausted = flaky(new ProviderError.Unavailable({ message: "down" }), 10)
      yield* Effect.flip(Effect.retry(exhausted.effect, schedule))
      assert.strictEqual(exhausted.attempts.length, 4)

      const permanent = flaky(new ProviderError.BadRequest({ message: "no" }), 10)
      yield* Effect.flip(Effect.retry(permanent.effect, schedule))
      assert.strictEqual(permanent.attempts.length, 1)
    })
  )

  it.live("retry: never sooner than retry-after", () =>
    Effect.gen(function* () {
      const limited = flaky(new ProviderError.RateLimited({ message: "429", retryAfter: Duration.millis(150) }), 2)
      yield* Effect.retry(limited.effect, ProviderError.retry({ base: "1 millis" }))
      assert.strictEqual(limited.attempts.length, 3)
      assert.isAtLeast(limited.attempts[1]! - limited.attempts[0]!, 149)
      assert.isAtLeast(limited.attempts[2]! - limited.attempts[1]!, 149)
    })
  )
})
