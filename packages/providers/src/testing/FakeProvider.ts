/**
 * FakeProvider: a loopback HTTP server speaking enough of the OpenAI
 * (`POST /v1/chat/completions`, `POST /v1/embeddings`) and Anthropic
 * (`POST /v1/messages`) APIs for the real SDKs, so provider functions are
 * tested end to end without the internet.
 *
 * Answers are deterministic (chat: `echo: <last user text>`, JSON for
 * `response_format`, tool calls for `tools`; embeddings: unit vectors from a
 * hash of the text). Latency, faults chosen by a rule over each request, and a
 * provider-style rate limit (token buckets refilling continuously, advertised
 * in the providers' headers, 429 with `retry-after` when empty) are
 * configurable. Everything it saw is counted and logged, with the times of
 * 429s and of the retries that followed, for tests and benchmarks to assert on.
 */
import { Clock, Effect, FiberSet, type Scope } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"

export type Route = "chat" | "embeddings" | "messages"

/** One request as a fault rule, `answer` and `latency` see it. */
export interface Request {
  /** 1 for the first request the server received, 2 for the next, ... (429s included). */
  readonly n: number
  readonly route: Route
  readonly body: Readonly<Record<string, unknown>>
  /** The last user message's text (chat, messages), or the inputs joined by newlines (embeddings). */
  readonly text: string
  /** The embedding inputs (for chat and messages: `[text]`). */
  readonly inputs: ReadonlyArray<string>
  /** Image URLs (or `data:` URLs) in the last user message. */
  readonly images: ReadonlyArray<string>
}

/** What to do instead of answering normally. */
export type Fault =
  | { readonly status: 429; readonly retryAfter?: number | undefined }
  | { readonly status: 400 | 401 | 403 | 404 | 422 | 500 | 502 | 503 | 529; readonly message?: string | undefined }
  /** Never answer: the client gives up by its own timeout. */
  | { readonly timeout: true }
  /** Answer 200 with a body that is not JSON. */
  | { readonly malformed: true }
  /** Answer 200 but withheld: `finish_reason: "content_filter"` / `stop_reason: "refusal"`. */
  | { readonly contentFilter: true }

export interface Options {
  /** Milliseconds before each answer (429s are answered at once). */
  readonly latency?: number | ((request: Request) => number) | undefined
  /** The text of a chat or messages answer (default `echo: <text>`, or JSON for `response_format`). */
  readonly answer?: ((request: Request) => string) | undefined
  /** Embedding length when the request does not say (`dimensions`); default 8. */
  readonly dimensions?: number | undefined
  /** Chooses a fault per request (after the rate limit let it through). */
  readonly fault?: ((request: Request) => Fault | undefined) | undefined
  /** A request bucket of this capacity, refilling continuously at this many per minute. */
  readonly requestsPerMinute?: number | undefined
  /** A token bucket likewise (a request costs its estimated prompt tokens plus its max tokens). */
  readonly tokensPerMinute?: number | undefined
  /** Send the rate-limit headers (default true; the limits are enforced either way). */
  readonly advertiseLimits?: boolean | undefined
  /** When set, other keys (Bearer or `x-api-key`) get a 401. */
  readonly apiKey?: string | undefined
}

export interface LoggedRequest extends Request {
  /** Milliseconds (`Clock`) when it arrived. */
  readonly receivedAt: number
  /** The status answered; `"timeout"` if the client gave up first; undefined while in flight. */
  readonly status: number | "timeout" | undefined
  readonly answeredAt: number | undefined
}

/** A 429 and the retry that followed it (the next request with the same route and text). */
export interface RateLimitedRequest {
  readonly n: number
  readonly route: Route
  readonly text: string
  /** When the 429 was sent. */
  readonly at: number
  readonly retryAfterMs: number | undefined
  readonly retry: { readonly n: number; readonly at: number } | undefined
}

export interface Stats {
  readonly total: number
  readonly byRoute: Readonly<Record<Route, number>>
  /** Answers by status (`"429"`, `"200"`, ..., `"timeout"`). */
  readonly byStatus: Readonly<Record<string, number>>
  readonly inFlight: number
  readonly maxInFlight: number
}

export interface FakeProvider {
  /** The base URL: `${url}/v1` for OpenAI's `baseURL`, `url` for Anthropic's. */
  readonly url: string
  readonly stats: Stats
  readonly requests: ReadonlyArray<LoggedRequest>
  readonly rateLimited: ReadonlyArray<RateLimitedRequest>
}

/** The fake's token estimate: 4 characters a token, at least 1. */
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

/** The embedding the fake returns for a text: deterministic, unit length. */
export const embed = (text: string, dimensions: number): Float32Array => {
  let state = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    state ^= text.charCodeAt(i)
    state = Math.imul(state, 0x01000193)
  }
  const vector = new Float32Array(dimensions)
  let norm = 0
  for (let i = 0; i < dimensions; i++) {
    // mulberry32
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    const x = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5
    vector[i] = x
    norm += x * x
  }
  const scale = norm === 0 ? 0 : 1 / Math.sqrt(norm)
  for (let i = 0; i < dimensions; i++) vector[i] = vector[i]! * scale
  return vector
}

/** OpenAI's duration format: `20ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`. */
export const formatDuration = (ms: number): string => {
  if (ms < 1000) return `${Math.ceil(ms)}ms`
  const hours = Math.floor(ms / 3_600_000)
  const minutes = Math.floor((ms % 3_600_000) / 60_000)
  const seconds = Number(((ms % 60_000) / 1000).toFixed(3))
  return `${hours > 0 ? `${hours}h` : ""}${hours > 0 || minutes > 0 ? `${minutes}m` : ""}${seconds}s`
}

/** A token bucket of `capacity`, refilling continuously by `capacity` a minute. */
class Bucket {
  readonly capacity: number
  private tokens: number
  private updatedAt: number | undefined
  private readonly rate: number
  constructor(capacity: number) {
    this.capacity = capacity
    this.tokens = capacity
    this.rate = capacity / 60_000
  }
  private refill(now: number) {
    if (this.updatedAt !== undefined) {
      this.tokens = Math.min(this.capacity, this.tokens + (now - this.updatedAt) * this.rate)
    }
    this.updatedAt = now
  }
  /** Milliseconds until `amount` is available (0: it is). */
  waitFor(amount: number, now: number): number {
    this.refill(now)
    const needed = Math.min(amount, this.capacity)
    return this.tokens >= needed ? 0 : Math.ceil((needed - this.tokens) / this.rate)
  }
  take(amount: number) {
    this.tokens -= amount
  }
  remaining(): number {
    return Math.max(0, Math.floor(this.tokens))
  }
  /** Milliseconds until full. */
  resetMs(): number {
    return Math.max(0, (this.capacity - this.tokens) / this.rate)
  }
}

type Json = Readonly<Record<string, unknown>>

const isRecord = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

const asArray = (u: unknown): ReadonlyArray<unknown> => (Array.isArray(u) ? u : [])

/** Text and image URLs of a message's content (a string or typed parts, OpenAI or Anthropic). */
const contentOf = (content: unknown): { text: string; images: Array<string> } => {
  if (typeof content === "string") return { text: content, images: [] }
  const texts: Array<string> = []
  const images: Array<string> = []
  for (const part of asArray(content)) {
    if (!isRecord(part)) continue
    if (part.type === "text" && typeof part.text === "string") texts.push(part.text)
    if (part.type === "image_url" && isRecord(part.image_url) && typeof part.image_url.url === "string") {
      images.push(part.image_url.url)
    }
    if (part.type === "image" && isRecord(part.source)) {
      const source = part.source
      if (typeof source.url === "string") images.push(source.url)
      else if (typeof source.data === "string") images.push(`data:${String(source.media_type)};base64,${source.data}`)
    }
  }
  return { text: texts.join("\n"), images }
}

const lastUser = (messages: unknown) => {
  const user = asArray(messages).filter((m) => isRecord(m) && m.role === "user")
  const last = user[user.length - 1]
  return contentOf(isRecord(last) ? last.content : "")
}

const allText = (body: Json): string => {
  const parts = asArray(body.messages).map((m) => (isRecord(m) ? contentOf(m.content).text : ""))
  if (typeof body.system === "string") parts.push(body.system)
  return parts.join("\n")
}

const embeddingInputs = (input: unknown): Array<string> =>
  typeof input === "string" ? [input] : asArray(input).map((x) => (typeof x === "string" ? x : JSON.stringify(x)))

/** A value of a JSON schema's shape, filled from the text (for json_schema and tool arguments). */
const sample = (schema: unknown, text: string): unknown => {
  if (!isRecord(schema)) return text
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
  const options = asArray(schema.anyOf ?? schema.oneOf)
  if (options.length > 0) return sample(options[0], text)
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type
  switch (type) {
    case "object":
      return Object.fromEntries(
        Object.entries(isRecord(schema.properties) ? schema.properties : {}).map(([k, v]) => [k, sample(v, text)])
      )
    case "array":
      return [sample(schema.items, text)]
    case "number":
    case "integer":
      return text.length
    case "boolean":
      return text.length % 2 === 0
    case "null":
      return null
    default:
      return text
  }
}

const ROUTES: Record<string, Route> = {
  "/v1/chat/completions": "chat",
  "/v1/embeddings": "embeddings",
  "/v1/messages": "messages"
}

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  headers,
  body: JSON.stringify(body)
})

const errorAnswer = (route: Route, status: number, message: string, headers: Record<string, string> = {}): Answer => {
  if (route === "messages") {
    const type =
      status === 429
        ? "rate_limit_error"
        : status === 401
          ? "authentication_error"
          : status === 403
            ? "permission_error"
            : status === 404
              ? "not_found_error"
              : status === 529
                ? "overloaded_error"
                : status >= 500
                  ? "api_error"
                  : "invalid_request_error"
    return json(status, { type: "error", error: { type, message } }, headers)
  }
  const type =
    status === 429
      ? "rate_limit_exceeded"
      : status === 401
        ? "invalid_api_key"
        : status >= 500
          ? "server_error"
          : "invalid_request_error"
  return json(status, { error: { message, type, param: null, code: type } }, headers)
}

class Server implements FakeProvider {
  url = ""
  private readonly log: Array<{ -readonly [K in keyof LoggedRequest]: LoggedRequest[K] }> = []
  private readonly retryAfterByN = new Map<number, number | undefined>()
  private inFlight = 0
  private maxInFlight = 0
  private readonly requestBucket: Bucket | undefined
  private readonly tokenBucket: Bucket | undefined
  private readonly options: Options

  constructor(options: Options) {
    this.options = options
    this.requestBucket = options.requestsPerMinute === undefined ? undefined : new Bucket(options.requestsPerMinute)
    this.tokenBucket = options.tokensPerMinute === undefined ? undefined : new Bucket(options.tokensPerMinute)
  }

  get stats(): Stats {
    const byRoute: Record<Route, number> = { chat: 0, embeddings: 0, messages: 0 }
    const byStatus: Record<string, number> = {}
    for (const r of this.log) {
      byRoute[r.route]++
      if (r.status !== undefined) byStatus[String(r.status)] = (byStatus[String(r.status)] ?? 0) + 1
    }
    return { total: this.log.length, byRoute, byStatus, inFlight: this.inFlight, maxInFlight: this.maxInFlight }
  }

  get requests(): ReadonlyArray<LoggedRequest> {
    return this.log.map((r) => ({ ...r }))
  }

  get rateLimited(): ReadonlyArray<RateLimitedRequest> {
    const out: Array<RateLimitedRequest> = []
    this.log.forEach((r, i) => {
      if (r.status !== 429) return
      const next = this.log.slice(i + 1).find((later) => later.route === r.route && later.text === r.text)
      out.push({
        n: r.n,
        route: r.route,
        text: r.text,
        at: r.answeredAt ?? r.receivedAt,
        retryAfterMs: this.retryAfterByN.get(r.n),
        retry: next === undefined ? undefined : { n: next.n, at: next.receivedAt }
      })
    })
    return out
  }

  /** The rate-limit headers of a route's provider, as they stand now. */
  private limitHeaders(route: Route, now: number): Record<string, string> {
    if (this.options.advertiseLimits === false) return {}
    const headers: Record<string, string> = {}
    const family = route === "messages" ? "anthropic" : "openai"
    for (const [kind, bucket] of [
      ["requests", this.requestBucket],
      ["tokens", this.tokenBucket]
    ] as const) {
      if (bucket === undefined) continue
      if (family === "openai") {
        headers[`x-ratelimit-limit-${kind}`] = String(bucket.capacity)
        headers[`x-ratelimit-remaining-${kind}`] = String(bucket.remaining())
        headers[`x-ratelimit-reset-${kind}`] = formatDuration(bucket.resetMs())
      } else {
        headers[`anthropic-ratelimit-${kind}-limit`] = String(bucket.capacity)
        headers[`anthropic-ratelimit-${kind}-remaining`] = String(bucket.remaining())
        headers[`anthropic-ratelimit-${kind}-reset`] = new Date(now + bucket.resetMs()).toISOString()
      }
    }
    return headers
  }

  private rateLimitedAnswer(route: Route, n: number, retryAfterMs: number, message: string, now: number): Answer {
    this.retryAfterByN.set(n, retryAfterMs)
    return errorAnswer(route, 429, message, {
      ...this.limitHeaders(route, now),
      "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
      "retry-after-ms": String(Math.ceil(retryAfterMs))
    })
  }

  private tokenCost(route: Route, body: Json, request: Request): number {
    if (route === "embeddings") return request.inputs.reduce((sum, t) => sum + estimateTokens(t), 0)
    const max = body.max_completion_tokens ?? body.max_tokens
    return estimateTokens(allText(body)) + (typeof max === "number" ? max : 0)
  }

  private answerText(request: Request, body: Json): string {
    if (this.options.answer !== undefined) return this.options.answer(request)
    const format = isRecord(body.response_format) ? body.response_format : undefined
    if (format?.type === "json_object") return JSON.stringify({ echo: request.text })
    if (format?.type === "json_schema" && isRecord(format.json_schema)) {
      return JSON.stringify(sample(format.json_schema.schema, request.text))
    }
    return `echo: ${request.text}`
  }

  private success(request: Request, body: Json, filtered: boolean): Answer {
    const model = typeof body.model === "string" ? body.model : "fake"
    const promptTokens = request.route === "embeddings" ? 0 : estimateTokens(allText(body))
    switch (request.route) {
      case "embeddings": {
        const dimensions = typeof body.dimensions === "number" ? body.dimensions : (this.options.dimensions ?? 8)
        const base64 = body.encoding_format === "base64"
        const tokens = request.inputs.reduce((sum, t) => sum + estimateTokens(t), 0)
        return json(200, {
          object: "list",
          model,
          data: request.inputs.map((text, index) => {
            const vector = embed(text, dimensions)
            return {
              object: "embedding",
              index,
              embedding: base64
                ? Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString("base64")
                : Array.from(vector)
            }
          }),
          usage: { prompt_tokens: tokens, total_tokens: tokens }
        })
      }
      case "chat": {
        const tools = asArray(body.tools).filter(isRecord)
        const choice = body.tool_choice
        if (!filtered && tools.length > 0 && choice !== "none") {
          const wanted =
            isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === "string"
              ? choice.function.name
              : undefined
          const tool = tools.find((t) => isRecord(t.function) && t.function.name === wanted) ?? tools[0]!
          const fn = isRecord(tool.function) ? tool.function : {}
          return json(200, {
            id: `chatcmpl-${request.n}`,
            object: "chat.completion",
            created: 0,
            model,
            choices: [
              {
                index: 0,
                finish_reason: "tool_calls",
                message: {
                  role: "assistant",
                  content: null,
                  refusal: null,
                  tool_calls: [
                    {
                      id: `call_${request.n}`,
                      type: "function",
                      function: {
                        name: String(fn.name),
                        arguments: JSON.stringify(sample(fn.parameters, request.text))
                      }
                    }
                  ]
                }
              }
            ],
            usage: { prompt_tokens: promptTokens, completion_tokens: 8, total_tokens: promptTokens + 8 }
          })
        }
        const content = filtered ? null : this.answerText(request, body)
        const completion = content === null ? 0 : estimateTokens(content)
        return json(200, {
          id: `chatcmpl-${request.n}`,
          object: "chat.completion",
          created: 0,
          model,
          choices: [
            {
              index: 0,
              finish_reason: filtered ? "content_filter" : "stop",
              message: { role: "assistant", content, refusal: null }
            }
          ],
          usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion }
        })
      }
      case "messages": {
        const text = filtered ? "" : this.answerText(request, body)
        return json(200, {
          id: `msg_${request.n}`,
          type: "message",
          role: "assistant",
          model,
          content: filtered ? [] : [{ type: "text", text, citations: null }],
          stop_reason: filtered ? "refusal" : "end_turn",
          stop_sequence: null,
          usage: { input_tokens: promptTokens, output_tokens: filtered ? 0 : estimateTokens(text) }
        })
      }
    }
  }

  private authorized(req: Http.IncomingMessage): boolean {
    if (this.options.apiKey === undefined) return true
    const bearer = req.headers.authorization
    const key = req.headers["x-api-key"]
    return bearer === `Bearer ${this.options.apiKey}` || key === this.options.apiKey
  }

  /** Handles one HTTP request, from reading its body to the end of the answer. */
  handle(req: Http.IncomingMessage, res: Http.ServerResponse): Effect.Effect<void> {
    const self = this
    return Effect.gen(function* () {
      const raw = yield* readBody(req)
      const now = yield* Clock.currentTimeMillis
      const route = req.method === "POST" ? ROUTES[(req.url ?? "").split("?")[0]!] : undefined
      if (route === undefined) {
        write(res, json(404, { error: { message: `no route ${req.method} ${req.url}`, type: "not_found" } }))
        return
      }
      const body = parseBody(raw)
      const user = route === "embeddings" ? undefined : lastUser(body.messages)
      const inputs = user === undefined ? embeddingInputs(body.input) : [user.text]
      const request: Request = {
        n: self.log.length + 1,
        route,
        body,
        text: user === undefined ? inputs.join("\n") : user.text,
        inputs,
        images: user?.images ?? []
      }
      const entry: (typeof self.log)[number] = { ...request, receivedAt: now, status: undefined, answeredAt: undefined }
      self.log.push(entry)
      self.inFlight++
      self.maxInFlight = Math.max(self.maxInFlight, self.inFlight)
      const finish = (status: number | "timeout") =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          entry.status = status
          entry.answeredAt = at
        })
      const respond = (answer: Answer) =>
        Effect.flatMap(finish(answer.status), () => Effect.sync(() => write(res, answer)))
      yield* Effect.gen(function* () {
        if (!self.authorized(req)) {
          return yield* respond(errorAnswer(route, 401, "Incorrect API key provided."))
        }
        // The provider's own limits come first, and answer at once.
        const cost = self.tokenCost(route, body, request)
        const waitRequests = self.requestBucket?.waitFor(1, now) ?? 0
        const waitTokens = self.tokenBucket?.waitFor(cost, now) ?? 0
        if (waitRequests > 0 || waitTokens > 0) {
          const kind = waitRequests >= waitTokens ? "requests" : "tokens"
          return yield* respond(
            self.rateLimitedAnswer(
              route,
              request.n,
              Math.max(waitRequests, waitTokens),
              `Rate limit reached for ${kind} per minute. Please try again later.`,
              now
            )
          )
        }
        self.requestBucket?.take(1)
        self.tokenBucket?.take(cost)
        const limits = self.limitHeaders(route, now)
        const fault = self.options.fault?.(request)
        if (fault !== undefined && "status" in fault && fault.status === 429) {
          return yield* respond(
            self.rateLimitedAnswer(
              route,
              request.n,
              (fault.retryAfter ?? 1) * 1000,
              "Rate limit reached. Please try again later.",
              now
            )
          )
        }
        const latency =
          typeof self.options.latency === "function" ? self.options.latency(request) : (self.options.latency ?? 0)
        if (fault !== undefined && "timeout" in fault) {
          yield* closed(res)
          return yield* finish("timeout")
        }
        if (latency > 0) yield* Effect.sleep(latency)
        if (fault === undefined || "contentFilter" in fault) {
          const answer = self.success(request, body, fault !== undefined)
          return yield* respond({ ...answer, headers: { ...limits, ...answer.headers } })
        }
        if ("malformed" in fault) {
          return yield* respond({ status: 200, headers: limits, body: '{"id": "truncated", "choices": [' })
        }
        return yield* respond(errorAnswer(route, fault.status, fault.message ?? `fake ${fault.status}`, limits))
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            self.inFlight--
          })
        )
      )
    }).pipe(Effect.onInterrupt(() => Effect.sync(() => res.destroy())))
  }
}

const parseBody = (raw: string): Json => {
  try {
    const parsed: unknown = JSON.parse(raw)
    return isRecord(parsed) ? parsed : {}
  } catch {
    return {}
  }
}

const readBody = (req: Http.IncomingMessage): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    req.on("error", () => resume(Effect.succeed("")))
  })

/** Waits until the client closes the connection (it gave up). */
const closed = (res: Http.ServerResponse): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if (res.destroyed || res.socket === null || res.socket.destroyed) return resume(Effect.void)
    res.on("close", () => resume(Effect.void))
  })

const write = (res: Http.ServerResponse, answer: Answer): void => {
  if (res.destroyed || res.writableEnded) return
  res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
  res.end(answer.body)
}

/** Starts a fake provider on 127.0.0.1 (a free port); it stops when the scope closes. */
export const make = (options: Options = {}): Effect.Effect<FakeProvider, never, Scope.Scope> =>
  Effect.gen(function* () {
    const server = new Server(options)
    const http = yield* Effect.acquireRelease(
      Effect.callback<Http.Server>((resume) => {
        const http = Http.createServer()
        http.listen(0, "127.0.0.1", () => resume(Effect.succeed(http)))
      }),
      (http) =>
        Effect.callback<void>((resume) => {
          http.closeAllConnections()
          http.close(() => resume(Effect.void))
        })
    )
    // Handlers are fibers of this scope: closing it interrupts the ones still waiting.
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    http.on("request", (req, res) => {
      run(server.handle(req, res))
    })
    server.url = `http://127.0.0.1:${(http.address() as Net.AddressInfo).port}`
    return server
  })
