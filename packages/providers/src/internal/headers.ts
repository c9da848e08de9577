/**
 * Reading providers' rate-limit headers into `Pool.RateLimitInfo`, and
 * `retry-after` into a duration.
 */
import { Pool } from "@tessera/core"
import { Duration } from "effect"

const count = (headers: Headers, name: string): number | undefined => {
  const value = headers.get(name)
  if (value === null || value === "") return undefined
  const n = Number(value)
  return Number.isFinite(n) ? n : undefined
}

/** Milliseconds from `now` until an RFC 3339 time (Anthropic's `-reset`). */
const untilTime = (headers: Headers, name: string, now: number): number | undefined => {
  const value = headers.get(name)
  if (value === null || value === "") return undefined
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

/** OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as durations (`6m0s`). */
export const openAI = (headers: Headers): Pool.RateLimitInfo => ({
  limitRequests: count(headers, "x-ratelimit-limit-requests"),
  remainingRequests: count(headers, "x-ratelimit-remaining-requests"),
  resetRequestsMs: Pool.parseDuration(headers.get("x-ratelimit-reset-requests")),
  limitTokens: count(headers, "x-ratelimit-limit-tokens"),
  remainingTokens: count(headers, "x-ratelimit-remaining-tokens"),
  resetTokensMs: Pool.parseDuration(headers.get("x-ratelimit-reset-tokens"))
})

/** Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, resets as RFC 3339 times. */
export const anthropic = (headers: Headers, now: number): Pool.RateLimitInfo => ({
  limitRequests: count(headers, "anthropic-ratelimit-requests-limit"),
  remainingRequests: count(headers, "anthropic-ratelimit-requests-remaining"),
  resetRequestsMs: untilTime(headers, "anthropic-ratelimit-requests-reset", now),
  limitTokens: count(headers, "anthropic-ratelimit-tokens-limit"),
  remainingTokens: count(headers, "anthropic-ratelimit-tokens-remaining"),
  resetTokensMs: untilTime(headers, "anthropic-ratelimit-tokens-reset", now)
})

/** `retry-after-ms`, else `retry-after` (seconds or an HTTP date). */
export const retryAfter = (headers: Headers, now: number): Duration.Duration | undefined => {
  const ms = count(headers, "retry-after-ms")
  if (ms !== undefined && ms >= 0) return Duration.millis(ms)
  const value = headers.get("retry-after")
  if (value === null || value === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return seconds >= 0 ? Duration.millis(seconds * 1000) : undefined
  const at = Date.parse(value)
  return Number.isFinite(at) ? Duration.millis(Math.max(0, at - now)) : undefined
}
