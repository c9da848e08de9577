/**
 * The adapter boundary the provider modules share: sends one SDK request
 * under the function's pool, reports every answer's rate-limit headers to the
 * pool (and a 429's `retry-after` as a pool-wide pause), and maps whatever
 * the SDK threw to a `ProviderError`, once. The API key is scrubbed from
 * every message that leaves here.
 */
import { Pool } from "@tessera/core"
import { Clock, Duration, Effect, Result, Schema } from "effect"
import * as ProviderError from "../ProviderError.ts"
import * as RateLimitHeaders from "./headers.ts"

type ErrorClass = abstract new (...args: ReadonlyArray<any>) => Error

/** The error classes of an SDK (OpenAI's and Anthropic's have the same shape). */
export interface SdkErrors {
  /** The SDK's base class: thrown before anything was sent (bad options). */
  readonly Base: ErrorClass
  /** An HTTP answer with an error status; carries `status`, `headers` and the body as `error`. */
  readonly Api: ErrorClass
  readonly Connection: ErrorClass
  readonly ConnectionTimeout: ErrorClass
}

export interface Endpoint {
  readonly provider: string
  readonly operation: string
  readonly model: string
  readonly errors: SdkErrors
  readonly rateLimits: (headers: Headers, now: number) => Pool.RateLimitInfo
}

/** When a 429 says nothing about when to come back. */
const DEFAULT_BACKOFF_MS = 1000

const scrub = (text: string, secret: string): string =>
  secret.length >= 4 ? text.split(secret).join("[redacted]") : text

/** The provider's own message from an error body (`{error: {message}}`, or the body itself). */
const bodyMessage = (body: unknown): string | undefined => {
  if (typeof body !== "object" || body === null) return undefined
  const nested = (body as { error?: unknown }).error
  const fromNested =
    typeof nested === "object" && nested !== null ? (nested as { message?: unknown }).message : undefined
  if (typeof fromNested === "string" && fromNested !== "") return fromNested
  const direct = (body as { message?: unknown }).message
  return typeof direct === "string" && direct !== "" ? direct : undefined
}

const bodyCode = (body: unknown): string | undefined => {
  if (typeof body !== "object" || body === null) return undefined
  const nested = (body as { error?: unknown }).error
  const source = typeof nested === "object" && nested !== null ? nested : body
  const code = (source as { code?: unknown }).code ?? (source as { type?: unknown }).type
  return typeof code === "string" ? code : undefined
}

interface Classified {
  readonly reason: ProviderError.Reason
  readonly headers: Headers | undefined
}

const classify = (endpoint: Endpoint, cause: unknown, now: number): Classified => {
  const { errors } = endpoint
  if (cause instanceof errors.ConnectionTimeout) {
    return { reason: new ProviderError.Timeout({ message: cause.message }), headers: undefined }
  }
  if (cause instanceof errors.Connection) {
    return { reason: new ProviderError.Unavailable({ message: cause.message }), headers: undefined }
  }
  if (cause instanceof errors.Api) {
    const { status, headers, error } = cause as unknown as {
      readonly status: number | undefined
      readonly headers: Headers | undefined
      readonly error: unknown
    }
    if (status === undefined) {
      return { reason: new ProviderError.Unavailable({ message: cause.message }), headers }
    }
    const text = bodyMessage(error)
    const message = text === undefined ? cause.message : `${status} ${text}`
    const code = bodyCode(error)
    if (code === "content_filter" || code === "content_policy_violation") {
      return { reason: new ProviderError.ContentFiltered({ status, message }), headers }
    }
    const retryAfter = headers === undefined ? undefined : RateLimitHeaders.retryAfter(headers, now)
    return { reason: ProviderError.reasonFromStatus(status, message, retryAfter), headers }
  }
  if (cause instanceof SyntaxError) {
    return {
      reason: new ProviderError.InvalidOutput({ message: `malformed response body: ${cause.message}` }),
      headers: undefined
    }
  }
  if (cause instanceof errors.Base) {
    return { reason: new ProviderError.BadRequest({ message: cause.message }), headers: undefined }
  }
  const message = cause instanceof Error ? cause.message : String(cause)
  return { reason: new ProviderError.InvalidOutput({ message }), headers: undefined }
}

/** Rebuilds a reason with the secret removed from its message. */
const scrubReason = (reason: ProviderError.Reason, secret: string): ProviderError.Reason => {
  const message = scrub(reason.message, secret)
  if (message === reason.message) return reason
  switch (reason._tag) {
    case "RateLimited":
      return new ProviderError.RateLimited({ ...reason, message })
    case "Timeout":
      return new ProviderError.Timeout({ ...reason, message })
    case "Unavailable":
      return new ProviderError.Unavailable({ ...reason, message })
    case "BadRequest":
      return new ProviderError.BadRequest({ ...reason, message })
    case "Auth":
      return new ProviderError.Auth({ ...reason, message })
    case "ContentFiltered":
      return new ProviderError.ContentFiltered({ ...reason, message })
    case "InvalidOutput":
      return new ProviderError.InvalidOutput({ ...reason, message })
  }
}

/** Fails with a `ProviderError` for this endpoint. */
export const fail = (endpoint: Endpoint, reason: ProviderError.Reason, secret = "") =>
  Effect.fail(
    new ProviderError.ProviderError({
      provider: endpoint.provider,
      operation: endpoint.operation,
      model: endpoint.model,
      reason: scrubReason(reason, secret)
    })
  )

/**
 * Sends one request. `request` gets an `AbortSignal` (interruption aborts the
 * HTTP call) and returns the SDK's `.withResponse()`.
 */
export const send = Effect.fnUntraced(function* <A>(
  endpoint: Endpoint,
  secret: string,
  request: (signal: AbortSignal) => Promise<{ readonly data: A; readonly response: Response }>
) {
  const pool = yield* Pool.CurrentPool
  const result = yield* Effect.result(Effect.tryPromise({ try: request, catch: (cause) => cause }))
  const now = yield* Clock.currentTimeMillis
  if (Result.isSuccess(result)) {
    // Always observed, even without headers: it also ends the pool's learning phase.
    yield* pool.observe(endpoint.rateLimits(result.success.response.headers, now))
    return result.success.data
  }
  const { reason, headers } = classify(endpoint, result.failure, now)
  if (headers !== undefined) yield* pool.observe(endpoint.rateLimits(headers, now))
  if (reason._tag === "RateLimited") {
    yield* pool.backoff(reason.retryAfter === undefined ? DEFAULT_BACKOFF_MS : Duration.toMillis(reason.retryAfter))
  }
  return yield* fail(endpoint, reason, secret)
})

/** Decodes the part of an answer a function reads; a mismatch is `InvalidOutput`. */
export const decode = <S extends Schema.Codec<any, unknown>>(endpoint: Endpoint, schema: S) => {
  const decodeUnknown = Schema.decodeUnknownEffect(schema)
  return (data: unknown): Effect.Effect<S["Type"], ProviderError.ProviderError> =>
    Effect.catch(decodeUnknown(data) as Effect.Effect<S["Type"], Schema.SchemaError>, (error) =>
      fail(endpoint, new ProviderError.InvalidOutput({ message: `unexpected response: ${error.message}` }))
    )
}
