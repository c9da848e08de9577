/**
 * ProviderError: how a call to a model provider failed, mapped once from the
 * SDK's error at the adapter boundary (`OpenAI`, `Anthropic`).
 *
 * The `reason` says what happened and whether trying again can help:
 * `RateLimited` (with the provider's `retry-after`), `Timeout` and
 * `Unavailable` are retryable; `BadRequest`, `Auth`, `ContentFiltered` and
 * `InvalidOutput` are not. A computed column records the reason itself, so a
 * failed cell's `errorType` is e.g. `BadRequest` and its `errorMessage` the
 * provider's message. `retry` is the default schedule of provider functions:
 * it retries only retryable reasons and never sooner than `retry-after`.
 * Messages never contain the API key.
 */
import { Duration, Effect, Predicate, Schedule, Schema } from "effect"

const TypeId = "~@tessera/providers/ProviderError" as const
const ReasonTypeId = "~@tessera/providers/ProviderError/Reason" as const

const ReasonFields = {
  message: Schema.String,
  /** The HTTP status of the provider's answer, when there was one. */
  status: Schema.optional(Schema.Number)
}

/** 429: the provider's rate limit; `retryAfter` is how long it asked us to wait. */
export class RateLimited extends Schema.TaggedError<RateLimited>("@tessera/providers/ProviderError/RateLimited")(
  "RateLimited",
  { ...ReasonFields, retryAfter: Schema.optional(Schema.Duration) }
) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return true
  }
}

/** No answer in time (client timeout or 408). */
export class Timeout extends Schema.TaggedError<Timeout>("@tessera/providers/ProviderError/Timeout")(
  "Timeout",
  ReasonFields
) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return true
  }
}

/** 5xx, overloaded, or the connection failed. */
export class Unavailable extends Schema.TaggedError<Unavailable>("@tessera/providers/ProviderError/Unavailable")(
  "Unavailable",
  ReasonFields
) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return true
  }
}

/** Another 4xx: the request itself is wrong (input too long, unknown model, ...). */
export class BadRequest extends Schema.TaggedError<BadRequest>("@tessera/providers/ProviderError/BadRequest")(
  "BadRequest",
  ReasonFields
) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return false
  }
}

/** 401 / 403, or no API key configured. */
export class Auth extends Schema.TaggedError<Auth>("@tessera/providers/ProviderError/Auth")("Auth", ReasonFields) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return false
  }
}

/** The provider refused the content (content filter, refusal). */
export class ContentFiltered extends Schema.TaggedError<ContentFiltered>(
  "@tessera/providers/ProviderError/ContentFiltered"
)("ContentFiltered", ReasonFields) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return false
  }
}

/** The answer could not be read: malformed JSON or an unexpected shape. */
export class InvalidOutput extends Schema.TaggedError<InvalidOutput>("@tessera/providers/ProviderError/InvalidOutput")(
  "InvalidOutput",
  ReasonFields
) {
  readonly [ReasonTypeId] = ReasonTypeId
  get isRetryable(): boolean {
    return false
  }
}

export type Reason = RateLimited | Timeout | Unavailable | BadRequest | Auth | ContentFiltered | InvalidOutput

export const Reason: Schema.Union<
  [
    typeof RateLimited,
    typeof Timeout,
    typeof Unavailable,
    typeof BadRequest,
    typeof Auth,
    typeof ContentFiltered,
    typeof InvalidOutput
  ]
> = Schema.Union([RateLimited, Timeout, Unavailable, BadRequest, Auth, ContentFiltered, InvalidOutput])

/** A provider call failed; `reason` says how. */
export class ProviderError extends Schema.TaggedError<ProviderError>("@tessera/providers/ProviderError")(
  "ProviderError",
  {
    /** `openai`, `anthropic`. */
    provider: Schema.String,
    /** The API called, e.g. `chat.completions`. */
    operation: Schema.String,
    model: Schema.String,
    reason: Reason
  }
) {
  readonly [TypeId] = TypeId

  override readonly cause = this.reason

  override get message(): string {
    return `${this.provider} ${this.operation} (${this.model}): ${this.reason._tag}: ${this.reason.message}`
  }

  get isRetryable(): boolean {
    return this.reason.isRetryable
  }

  get retryAfter(): Duration.Duration | undefined {
    return this.reason._tag === "RateLimited" ? this.reason.retryAfter : undefined
  }
}

export const isProviderError = (u: unknown): u is ProviderError => Predicate.hasProperty(u, TypeId)

export const isReason = (u: unknown): u is Reason => Predicate.hasProperty(u, ReasonTypeId)

/** Whether a failure (a `ProviderError` or one of its reasons) is worth retrying. */
export const isRetryable = (u: unknown): boolean => (isProviderError(u) || isReason(u)) && u.isRetryable

/** The `retry-after` a failure carries, if any. */
export const retryAfterOf = (u: unknown): Duration.Duration | undefined =>
  isProviderError(u) ? u.retryAfter : isReason(u) && u._tag === "RateLimited" ? u.retryAfter : undefined

/** The reason for an HTTP error status (before any provider-specific refinement). */
export const reasonFromStatus = (
  status: number,
  message: string,
  retryAfter?: Duration.Duration | undefined
): Reason => {
  if (status === 429) return new RateLimited({ status, message, retryAfter })
  if (status === 408) return new Timeout({ status, message })
  if (status === 401 || status === 403) return new Auth({ status, message })
  if (status >= 500) return new Unavailable({ status, message })
  return new BadRequest({ status, message })
}

export interface RetryOptions {
  /** Retries at most this many times (default 6). */
  readonly times?: number | undefined
  /** The first backoff delay, doubled each retry (default 500 ms). */
  readonly base?: Duration.Input | undefined
  /** The longest backoff delay (default 30 s); a longer `retry-after` still wins. */
  readonly cap?: Duration.Input | undefined
}

/**
 * The default retry schedule of provider functions: exponential backoff with
 * jitter, only for retryable failures, each delay at least the failure's
 * `retry-after`.
 */
export const retry = (options?: RetryOptions): Schedule.Schedule<Duration.Duration, unknown> => {
  const times = options?.times ?? 6
  const cap = Duration.fromInputUnsafe(options?.cap ?? "30 seconds")
  return Schedule.exponential(options?.base ?? "500 millis").pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, cap))),
    Schedule.jittered,
    Schedule.while(({ attempt, input }) => attempt <= times && isRetryable(input)),
    Schedule.modifyDelay(({ duration, input }) => {
      const after = retryAfterOf(input)
      return Effect.succeed(after === undefined ? duration : Duration.max(duration, after))
    })
  )
}
