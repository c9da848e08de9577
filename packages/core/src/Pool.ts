/**
 * Pool: resource pools that pace the calls of user functions to providers.
 *
 * A pool is named (by default after the function, e.g. `openai/gpt-4o-mini`)
 * and shared by every column and table in the process that calls into it.
 * It paces requests by what the provider says: after each response the
 * function reports the rate-limit headers it saw (`observe`), and the pool
 * keeps an estimate of the provider's request and token buckets, holding back
 * ~5% headroom and counting requests still in flight. The first request to a
 * header-driven pool runs alone to learn the limits. Without headers, a
 * configured requests/tokens per minute applies. A 429's `retry-after`
 * pauses the whole pool (`backoff`). Concurrency limits are per function (a
 * semaphore each), also shared process-wide.
 */
import { Clock, Context, Effect, Semaphore } from "effect"

/** What a provider's response said about its limits (already parsed). */
export interface RateLimitInfo {
  readonly limitRequests?: number | undefined
  readonly remainingRequests?: number | undefined
  /** Milliseconds until the request bucket is full again. */
  readonly resetRequestsMs?: number | undefined
  readonly limitTokens?: number | undefined
  readonly remainingTokens?: number | undefined
  readonly resetTokensMs?: number | undefined
}

export interface Limits {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
}

export interface PoolStats {
  readonly name: string
  readonly requests: number
  readonly inFlight: number
  readonly maxInFlight: number
  /** Times the pool was paused by a `retry-after`. */
  readonly backoffs: number
  /** Total milliseconds requests waited for the pacing. */
  readonly waitedMs: number
  readonly limitRequests: number | undefined
  readonly limitTokens: number | undefined
}

interface Bucket {
  capacity: number
  tokens: number
  /** Refill per millisecond. */
  rate: number
  updatedAt: number
}

const HEADROOM = 0.05

const refill = (bucket: Bucket, now: number) => {
  bucket.tokens = Math.min(bucket.capacity, bucket.tokens + (now - bucket.updatedAt) * bucket.rate)
  bucket.updatedAt = now
}

const reserveOf = (bucket: Bucket) => Math.max(0, Math.floor(bucket.capacity * HEADROOM))

/** Milliseconds to wait before `amount` can be taken from the bucket (0: take it now). */
const waitFor = (bucket: Bucket, amount: number, now: number): number => {
  refill(bucket, now)
  const needed = amount + reserveOf(bucket)
  if (bucket.tokens >= needed || (bucket.tokens >= amount && amount > bucket.capacity - reserveOf(bucket))) return 0
  if (bucket.rate <= 0) return 1000
  return Math.max(1, Math.ceil((needed - bucket.tokens) / bucket.rate))
}

export class Pool {
  readonly name: string
  private requests = 0
  private inFlight = 0
  private maxInFlight = 0
  private backoffs = 0
  private waitedMs = 0
  private pausedUntil = 0
  private requestsBucket: Bucket | undefined
  private tokensBucket: Bucket | undefined
  /** Header-driven pools learn their limits from the first response. */
  private learning: boolean
  private configured: Limits

  constructor(name: string, limits: Limits = {}) {
    this.name = name
    this.configured = limits
    this.learning = false
    this.configure(limits)
  }

  /** Sets configured limits (used while no headers have been seen). */
  configure(limits: Limits): void {
    this.configured = limits
    if (limits.requestsPerMinute !== undefined) {
      this.requestsBucket = {
        capacity: Math.max(1, limits.requestsPerMinute / 60),
        tokens: Math.max(1, limits.requestsPerMinute / 60),
        rate: limits.requestsPerMinute / 60_000,
        updatedAt: 0
      }
    }
    if (limits.tokensPerMinute !== undefined) {
      this.tokensBucket = {
        capacity: limits.tokensPerMinute,
        tokens: limits.tokensPerMinute,
        rate: limits.tokensPerMinute / 60_000,
        updatedAt: 0
      }
    }
  }

  /** Marks the pool as driven by response headers: its first request runs alone. */
  expectHeaders(): void {
    if (this.requestsBucket === undefined && this.requests === 0) this.learning = true
  }

  /** Runs one request when the pacing allows; `tokens` estimates its token usage. */
  request<A, E, R>(effect: Effect.Effect<A, E, R>, options?: { readonly tokens?: number }): Effect.Effect<A, E, R> {
    const self = this
    const tokens = options?.tokens ?? 0
    const acquire = Effect.gen(function* () {
      const started = yield* Clock.currentTimeMillis
      while (true) {
        const now = yield* Clock.currentTimeMillis
        let wait = Math.max(0, self.pausedUntil - now)
        if (wait === 0 && self.learning && self.inFlight > 0) wait = 10
        if (wait === 0 && self.requestsBucket !== undefined) {
          if (self.requestsBucket.updatedAt === 0) self.requestsBucket.updatedAt = now
          wait = waitFor(self.requestsBucket, 1, now)
        }
        if (wait === 0 && self.tokensBucket !== undefined && tokens > 0) {
          if (self.tokensBucket.updatedAt === 0) self.tokensBucket.updatedAt = now
          wait = waitFor(self.tokensBucket, tokens, now)
        }
        if (wait === 0) break
        yield* Effect.sleep(wait)
      }
      if (self.requestsBucket !== undefined) self.requestsBucket.tokens -= 1
      if (self.tokensBucket !== undefined) self.tokensBucket.tokens -= tokens
      self.requests++
      self.inFlight++
      self.maxInFlight = Math.max(self.maxInFlight, self.inFlight)
      self.waitedMs += (yield* Clock.currentTimeMillis) - started
    })
    return Effect.acquireUseRelease(
      acquire,
      () => effect,
      () =>
        Effect.sync(() => {
          self.inFlight--
        })
    )
  }

  /** Updates the pacing from a response's rate-limit headers. */
  observe(info: RateLimitInfo): Effect.Effect<void> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
      this.learning = false
      const others = Math.max(0, this.inFlight - 1)
      if (info.limitRequests !== undefined && info.remainingRequests !== undefined) {
        this.requestsBucket = bucketFrom(info.limitRequests, info.remainingRequests - others, info.resetRequestsMs, now)
      }
      if (info.limitTokens !== undefined && info.remainingTokens !== undefined) {
        this.tokensBucket = bucketFrom(info.limitTokens, info.remainingTokens, info.resetTokensMs, now)
      }
    })
  }

  /** A `retry-after`: no request of this pool starts before it has passed. */
  backoff(retryAfterMs: number): Effect.Effect<void> {
    return Effect.map(Clock.currentTimeMillis, (now) => {
      this.backoffs++
      this.learning = false
      this.pausedUntil = Math.max(this.pausedUntil, now + retryAfterMs)
      if (this.requestsBucket !== undefined) this.requestsBucket.tokens = Math.min(this.requestsBucket.tokens, 0)
    })
  }

  get stats(): PoolStats {
    return {
      name: this.name,
      requests: this.requests,
      inFlight: this.inFlight,
      maxInFlight: this.maxInFlight,
      backoffs: this.backoffs,
      waitedMs: this.waitedMs,
      limitRequests: this.requestsBucket?.capacity ?? this.configured.requestsPerMinute,
      limitTokens: this.tokensBucket?.capacity ?? this.configured.tokensPerMinute
    }
  }
}

/**
 * A bucket from headers. Limits are per minute (as OpenAI and Anthropic
 * state them); the reset time tells how fast the bucket refills when known.
 */
const bucketFrom = (limit: number, remaining: number, resetMs: number | undefined, now: number): Bucket => {
  const perMinute = limit / 60_000
  const rate =
    resetMs !== undefined && resetMs > 0 && limit > remaining
      ? Math.max(perMinute, (limit - remaining) / resetMs)
      : perMinute
  return { capacity: limit, tokens: Math.max(0, remaining), rate, updatedAt: now }
}

/** The process-wide registry of pools and per-function concurrency limits. */
export class Registry {
  private readonly pools = new Map<string, Pool>()
  private readonly semaphores = new Map<string, { readonly permits: number; readonly semaphore: Semaphore.Semaphore }>()

  /** The pool with this name (created on first use, with `limits` if given). */
  pool(name: string, limits?: Limits): Pool {
    let pool = this.pools.get(name)
    if (pool === undefined) {
      pool = new Pool(name, limits)
      this.pools.set(name, pool)
    }
    return pool
  }

  /** Configures a pool's limits for providers that send no rate-limit headers. */
  configure(name: string, limits: Limits): void {
    this.pool(name).configure(limits)
  }

  /** The concurrency limit of a function, shared by every column and table calling it. */
  semaphore(key: string, permits: number): Semaphore.Semaphore {
    const existing = this.semaphores.get(key)
    if (existing !== undefined && existing.permits === permits) return existing.semaphore
    const semaphore = Semaphore.makeUnsafe(permits)
    this.semaphores.set(key, { permits, semaphore })
    return semaphore
  }

  get stats(): ReadonlyArray<PoolStats> {
    return [...this.pools.values()].map((p) => p.stats)
  }
}

/** The pools of this process (a reference with a process-wide default). */
export const Pools = Context.Reference<Registry>("@tessera/core/Pool/Pools", { defaultValue: () => new Registry() })

/** Configures a pool's limits (requests/tokens per minute) for providers that send no rate-limit headers. */
export const configure = (name: string, limits: Limits): Effect.Effect<void> =>
  Effect.map(Effect.service(Pools), (registry) => registry.configure(name, limits))

/** The pools' statistics (requests, in flight, backoffs, waits). */
export const stats: Effect.Effect<ReadonlyArray<PoolStats>> = Effect.map(
  Effect.service(Pools),
  (registry) => registry.stats
)

/** The pool of the function being invoked: provider functions report headers and 429s to it. */
export class CurrentPool extends Context.Service<CurrentPool, Pool>()("@tessera/core/Pool/CurrentPool") {}

/** Parses OpenAI-style durations (`1s`, `6m0s`, `20ms`, `1h2m3.5s`) into milliseconds. */
export const parseDuration = (text: string | null | undefined): number | undefined => {
  if (text === null || text === undefined || text === "") return undefined
  const numeric = Number(text)
  if (Number.isFinite(numeric)) return numeric * 1000
  let total = 0
  let matched = false
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    matched = true
    const n = Number(m[1])
    total += m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : m[2] === "m" ? n * 60_000 : n * 3_600_000
  }
  return matched ? total : undefined
}
