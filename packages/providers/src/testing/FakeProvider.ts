/**
 * FakeProvider: a loopback HTTP server speaking enough of the OpenAI
 * (`POST /v1/chat/completions`, `/v1/embeddings`, `/v1/moderations`,
 * `/v1/images/generations`, `/v1/audio/speech`, `/v1/audio/transcriptions`
 * as a multipart upload) and Anthropic (`POST /v1/messages`) APIs for the real
 * SDKs, so provider functions are tested end to end without the internet.
 * `pathPrefix` serves them below another path, as OpenAI-compatible servers
 * (Ollama, vLLM, gateways) do.
 *
 * Answers are deterministic (chat: `echo: <last user text>`, JSON for
 * `response_format`, tool calls for `tools`; embeddings: unit vectors from a
 * hash of the text; moderations: `moderate(text)`; images: a solid PNG whose
 * colour hashes the prompt; speech: audio carrying its text, which
 * transcription reads back). Latency, faults chosen by a rule over each
 * request, and a provider-style rate limit (token buckets refilling
 * continuously, advertised in the providers' headers, 429 with `retry-after`
 * when empty) are configurable. Everything it saw is counted and logged, with
 * the times of 429s (and their cause) and of the retries that followed, for
 * tests and benchmarks to assert on.
 */
import { Clock, Effect, FiberSet, type Scope } from "effect"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Zlib from "node:zlib"

export type Route = "chat" | "embeddings" | "messages" | "moderations" | "images" | "speech" | "transcriptions"

const ROUTE_NAMES: ReadonlyArray<Route> = [
  "chat",
  "embeddings",
  "messages",
  "moderations",
  "images",
  "speech",
  "transcriptions"
]

/** A file of a multipart upload. */
export interface UploadedFile {
  /** The form field (`file`). */
  readonly field: string
  readonly filename: string
  readonly contentType: string | undefined
  readonly bytes: Uint8Array
}

/** One request as a fault rule, `answer` and `latency` see it. */
export interface Request {
  /** 1 for the first request the server received, 2 for the next, ... (429s included). */
  readonly n: number
  readonly route: Route
  /** The JSON body, or a multipart upload's other fields. */
  readonly body: Readonly<Record<string, unknown>>
  /**
   * The last user message's text (chat, messages), the inputs joined by
   * newlines (embeddings, moderations), the prompt (images), the input
   * (speech), the uploaded file's name (transcriptions).
   */
  readonly text: string
  /** The embedding or moderation inputs (otherwise `[text]`). */
  readonly inputs: ReadonlyArray<string>
  /** Image URLs (or `data:` URLs) in the last user message. */
  readonly images: ReadonlyArray<string>
  /** Files of a multipart upload (transcriptions). */
  readonly files: ReadonlyArray<UploadedFile>
}

/** What to do instead of answering normally. */
export type Fault =
  | { readonly status: 429; readonly retryAfter?: number | undefined }
  | { readonly status: 400 | 401 | 403 | 404 | 422 | 500 | 502 | 503 | 529; readonly message?: string | undefined }
  /** Never answer: the client gives up by its own timeout. */
  | { readonly timeout: true }
  /** Answer 200 with a body that is not JSON. */
  | { readonly malformed: true }
  /**
   * Withhold the answer: `finish_reason: "content_filter"` (chat), `stop_reason: "refusal"`
   * (messages), a 400 `content_policy_violation` (other routes).
   */
  | { readonly contentFilter: true }

/** A tool offered in a chat or messages request. */
export interface ToolSpec {
  readonly name: string
  /** Its JSON Schema (`parameters`, or Anthropic's `input_schema`). */
  readonly parameters: unknown
}

/** A tool call the fake model makes. */
export interface ToolCall {
  readonly name: string
  readonly arguments: unknown
}

export interface Options {
  /** Milliseconds before each answer (429s are answered at once). */
  readonly latency?: number | ((request: Request) => number) | undefined
  /** The text of a chat or messages answer (default `echo: <text>`, or JSON for `response_format`). */
  readonly answer?: ((request: Request) => string) | undefined
  /**
   * The tool calls of an answer to a request offering tools (none: a text
   * answer). Default: one call of the tool `tool_choice` names (else the
   * first), arguments of the tool's schema filled from the text.
   */
  readonly toolCalls?: ((request: Request, tools: ReadonlyArray<ToolSpec>) => ReadonlyArray<ToolCall>) | undefined
  /** The text of a transcription (default: the text `speech` put in the audio, else its size). */
  readonly transcribe?: ((file: UploadedFile, request: Request) => string) | undefined
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
  /** Serve every route below this path (e.g. `/ollama`): `url` includes it, other paths get a 404. */
  readonly pathPrefix?: string | undefined
}

export interface LoggedRequest extends Request {
  /** The request's path, as the client sent it. */
  readonly path: string
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
  /** Why: the request or token bucket was empty, or a `fault` rule said so. */
  readonly cause: "requests" | "tokens" | "fault"
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
  /** The base URL (with `pathPrefix`): `${url}/v1` for OpenAI's `baseURL`, `url` for Anthropic's. */
  readonly url: string
  readonly stats: Stats
  readonly requests: ReadonlyArray<LoggedRequest>
  readonly rateLimited: ReadonlyArray<RateLimitedRequest>
}

// ---------------------------------------------------------------------------
// Deterministic answers (exported so tests compute what to expect)
// ---------------------------------------------------------------------------

/** The fake's token estimate: 4 characters a token, at least 1. */
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

const fnv1a = (text: string): number => {
  let state = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    state ^= text.charCodeAt(i)
    state = Math.imul(state, 0x01000193)
  }
  return state
}

/** The embedding the fake returns for a text: deterministic, unit length. */
export const embed = (text: string, dimensions: number): Float32Array => {
  let state = fnv1a(text)
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

/** The moderation categories the fake scores. */
export const MODERATION_CATEGORIES = ["harassment", "hate", "self-harm", "sexual", "violence"] as const

/** The fake's verdict on a text: a category is scored 0.99 when the text names it, low otherwise. */
export const moderate = (
  text: string
): {
  readonly flagged: boolean
  readonly categories: Readonly<Record<string, boolean>>
  readonly scores: Readonly<Record<string, number>>
} => {
  const lower = text.toLowerCase()
  const scores = Object.fromEntries(
    MODERATION_CATEGORIES.map((c) => [
      c,
      lower.includes(c) ? 0.99 : Number((((fnv1a(`${c}:${text}`) >>> 0) % 1000) / 10_000).toFixed(4))
    ])
  )
  const categories = Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, scores[c]! > 0.5]))
  return { flagged: Object.values(categories).some((b) => b), categories, scores }
}

const pngChunk = (type: string, data: Uint8Array): Buffer => {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, "ascii")
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(Zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0)
  return Buffer.concat([head, data, crc])
}

/** The image the fake generates for a prompt: a solid RGB PNG whose colour hashes the prompt. */
export const image = (prompt: string, width = 16, height = 16): Uint8Array => {
  const hash = fnv1a(prompt) >>> 0
  const pixel = [hash & 0xff, (hash >>> 8) & 0xff, (hash >>> 16) & 0xff]
  const row = [0, ...Array.from({ length: width }, () => pixel).flat()]
  const raw = Buffer.from(Array.from({ length: height }, () => row).flat())
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header.set([8, 2, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", Zlib.deflateSync(raw)),
    pngChunk("IEND", new Uint8Array())
  ])
}

const SPEECH_MARK = "TESSERA-FAKE-SPEECH:"

const AUDIO_TYPES: Readonly<Record<string, string>> = {
  mp3: "audio/mpeg",
  wav: "audio/wav",
  opus: "audio/ogg",
  aac: "audio/aac",
  flac: "audio/flac",
  pcm: "audio/pcm"
}

/** A WAV file (8 kHz, 16-bit mono, a tone per character) with the text in a `note` chunk. */
const wav = (text: string, note: Buffer): Buffer => {
  const samples = Buffer.alloc(Math.max(1, text.length) * 160 * 2)
  for (let i = 0; i < samples.length / 2; i++) {
    const frequency = 200 + (text.charCodeAt(Math.floor(i / 160)) || 0) * 4
    samples.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * frequency * i) / 8000)), i * 2)
  }
  const chunk = (id: string, data: Buffer) => {
    const head = Buffer.alloc(8)
    head.write(id, 0, "ascii")
    head.writeUInt32LE(data.length, 4)
    return Buffer.concat([head, data, data.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0)])
  }
  const fmt = Buffer.alloc(16)
  fmt.writeUInt16LE(1, 0)
  fmt.writeUInt16LE(1, 2)
  fmt.writeUInt32LE(8000, 4)
  fmt.writeUInt32LE(16_000, 8)
  fmt.writeUInt16LE(2, 12)
  fmt.writeUInt16LE(16, 14)
  const body = Buffer.concat([
    Buffer.from("WAVE", "ascii"),
    chunk("fmt ", fmt),
    chunk("note", note),
    chunk("data", samples)
  ])
  const riff = Buffer.alloc(8)
  riff.write("RIFF", 0, "ascii")
  riff.writeUInt32LE(body.length, 4)
  return Buffer.concat([riff, body])
}

/** The audio the fake speaks for a text: its format's signature, carrying the text for `transcribe`. */
export const speech = (text: string, format = "mp3"): Uint8Array => {
  const note = Buffer.from(`${SPEECH_MARK}${Buffer.from(text, "utf8").toString("base64")}\n`, "ascii")
  switch (format) {
    case "wav":
      return wav(text, note)
    case "mp3":
      return Buffer.concat([Buffer.from("ID3\x03\x00\x00", "latin1"), note, Buffer.from([0xff, 0xfb, 0x90, 0x00])])
    case "flac":
      return Buffer.concat([Buffer.from("fLaC", "ascii"), note])
    case "opus":
      return Buffer.concat([Buffer.from("OggS", "ascii"), note])
    default:
      return Buffer.concat([note])
  }
}

/** The text `speech` put in audio bytes, if they are the fake's. */
export const spokenText = (bytes: Uint8Array): string | undefined => {
  const text = Buffer.from(bytes).toString("latin1")
  const at = text.indexOf(SPEECH_MARK)
  if (at === -1) return undefined
  const end = text.indexOf("\n", at)
  return Buffer.from(text.slice(at + SPEECH_MARK.length, end === -1 ? undefined : end), "base64").toString("utf8")
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

// ---------------------------------------------------------------------------
// Reading requests
// ---------------------------------------------------------------------------

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

const textInputs = (input: unknown): Array<string> =>
  typeof input === "string" ? [input] : asArray(input).map((x) => (typeof x === "string" ? x : JSON.stringify(x)))

/** A multipart/form-data body: its text fields and its files. */
const parseMultipart = (
  raw: Buffer,
  boundary: string
): { fields: Record<string, string>; files: Array<UploadedFile> } => {
  const fields: Record<string, string> = {}
  const files: Array<UploadedFile> = []
  const delimiter = Buffer.from(`--${boundary}`)
  let start = raw.indexOf(delimiter)
  while (start !== -1) {
    const next = raw.indexOf(delimiter, start + delimiter.length)
    if (next === -1) break
    // Each part sits between the CRLF after a delimiter and the CRLF before the next.
    const part = raw.subarray(start + delimiter.length + 2, next - 2)
    start = next
    const split = part.indexOf("\r\n\r\n")
    if (split === -1) continue
    const headers = part.subarray(0, split).toString("utf8")
    const content = part.subarray(split + 4)
    const name = /name="([^"]*)"/i.exec(headers)?.[1]
    if (name === undefined) continue
    const filename = /filename="([^"]*)"/i.exec(headers)?.[1]
    if (filename === undefined) {
      fields[name] = content.toString("utf8")
      continue
    }
    const contentType = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim()
    files.push({ field: name, filename, contentType, bytes: new Uint8Array(content) })
  }
  return { fields, files }
}

const parseBody = (raw: Buffer, contentType: string | undefined): { body: Json; files: Array<UploadedFile> } => {
  const boundary = /multipart\/form-data;.*boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType ?? "")
  if (boundary !== null) {
    const { fields, files } = parseMultipart(raw, (boundary[1] ?? boundary[2]!).trim())
    return { body: fields, files }
  }
  try {
    const parsed: unknown = JSON.parse(raw.toString("utf8"))
    return { body: isRecord(parsed) ? parsed : {}, files: [] }
  } catch {
    return { body: {}, files: [] }
  }
}

/** What a request is about, as `Request` reports it. */
const describe = (
  route: Route,
  body: Json,
  files: ReadonlyArray<UploadedFile>
): Pick<Request, "text" | "inputs" | "images"> => {
  switch (route) {
    case "chat":
    case "messages": {
      const user = lastUser(body.messages)
      return { text: user.text, inputs: [user.text], images: user.images }
    }
    case "embeddings":
    case "moderations": {
      const inputs = textInputs(body.input)
      return { text: inputs.join("\n"), inputs, images: [] }
    }
    case "images":
    case "speech": {
      const text = String((route === "images" ? body.prompt : body.input) ?? "")
      return { text, inputs: [text], images: [] }
    }
    case "transcriptions": {
      const text = files[0]?.filename ?? ""
      return { text, inputs: [text], images: [] }
    }
  }
}

/** The tools a chat or messages request offers, and the one `tool_choice` names (or none at all). */
const offeredTools = (
  route: Route,
  body: Json
): { readonly tools: ReadonlyArray<ToolSpec>; readonly wanted: string | undefined; readonly none: boolean } => {
  const tools = asArray(body.tools)
    .filter(isRecord)
    .map((t): ToolSpec => {
      const fn = route === "chat" && isRecord(t.function) ? t.function : t
      return { name: String(fn.name), parameters: route === "chat" ? fn.parameters : fn.input_schema }
    })
  const choice = body.tool_choice
  const none = choice === "none" || (isRecord(choice) && choice.type === "none")
  const wanted =
    isRecord(choice) && isRecord(choice.function) && typeof choice.function.name === "string"
      ? choice.function.name
      : isRecord(choice) && typeof choice.name === "string"
        ? choice.name
        : undefined
  return { tools, wanted, none }
}

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
  "/v1/messages": "messages",
  "/v1/moderations": "moderations",
  "/v1/images/generations": "images",
  "/v1/audio/speech": "speech",
  "/v1/audio/transcriptions": "transcriptions"
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string | Uint8Array
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  headers,
  body: JSON.stringify(body)
})

const anthropicErrorType = (status: number): string =>
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

const errorAnswer = (
  route: Route,
  status: number,
  message: string,
  headers: Record<string, string> = {},
  code?: string
): Answer => {
  if (route === "messages") {
    return json(status, { type: "error", error: { type: anthropicErrorType(status), message } }, headers)
  }
  const type =
    status === 429
      ? "rate_limit_exceeded"
      : status === 401
        ? "invalid_api_key"
        : status >= 500
          ? "server_error"
          : "invalid_request_error"
  return json(status, { error: { message, type, param: null, code: code ?? type } }, headers)
}

const contentPolicyAnswer = (route: Route, headers: Record<string, string>): Answer =>
  errorAnswer(
    route,
    400,
    "Your request was rejected as a result of our safety system.",
    headers,
    "content_policy_violation"
  )

const size = (body: Json): { width: number; height: number } => {
  const m = /^(\d{1,4})x(\d{1,4})$/.exec(typeof body.size === "string" ? body.size : "")
  return m === null ? { width: 16, height: 16 } : { width: Number(m[1]), height: Number(m[2]) }
}

class Server implements FakeProvider {
  url = ""
  private readonly log: Array<{ -readonly [K in keyof LoggedRequest]: LoggedRequest[K] }> = []
  private readonly limitedByN = new Map<number, { retryAfterMs: number; cause: RateLimitedRequest["cause"] }>()
  private inFlight = 0
  private maxInFlight = 0
  private readonly requestBucket: Bucket | undefined
  private readonly tokenBucket: Bucket | undefined
  private readonly options: Options
  private readonly prefix: string

  constructor(options: Options) {
    this.options = options
    this.prefix = (options.pathPrefix ?? "").replace(/\/+$/, "")
    this.requestBucket = options.requestsPerMinute === undefined ? undefined : new Bucket(options.requestsPerMinute)
    this.tokenBucket = options.tokensPerMinute === undefined ? undefined : new Bucket(options.tokensPerMinute)
  }

  get stats(): Stats {
    const byRoute = Object.fromEntries(ROUTE_NAMES.map((r) => [r, 0])) as Record<Route, number>
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
      const limited = this.limitedByN.get(r.n)
      out.push({
        n: r.n,
        route: r.route,
        text: r.text,
        cause: limited?.cause ?? "fault",
        at: r.answeredAt ?? r.receivedAt,
        retryAfterMs: limited?.retryAfterMs,
        retry: next === undefined ? undefined : { n: next.n, at: next.receivedAt }
      })
    })
    return out
  }

  /** The route of a path, below the prefix. */
  private routeOf(method: string | undefined, url: string | undefined): Route | undefined {
    const path = (url ?? "").split("?")[0]!
    if (method !== "POST" || !path.startsWith(`${this.prefix}/`)) return undefined
    return ROUTES[path.slice(this.prefix.length)]
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

  private rateLimitedAnswer(
    request: Request,
    cause: RateLimitedRequest["cause"],
    retryAfterMs: number,
    message: string,
    now: number
  ): Answer {
    this.limitedByN.set(request.n, { retryAfterMs, cause })
    return errorAnswer(request.route, 429, message, {
      ...this.limitHeaders(request.route, now),
      "retry-after": String(Math.max(1, Math.ceil(retryAfterMs / 1000))),
      "retry-after-ms": String(Math.ceil(retryAfterMs))
    })
  }

  private tokenCost(request: Request): number {
    if (request.route !== "chat" && request.route !== "messages") {
      return request.inputs.reduce((sum, t) => sum + estimateTokens(t), 0)
    }
    const max = request.body.max_completion_tokens ?? request.body.max_tokens
    return estimateTokens(allText(request.body)) + (typeof max === "number" ? max : 0)
  }

  private answerText(request: Request): string {
    if (this.options.answer !== undefined) return this.options.answer(request)
    const format = isRecord(request.body.response_format) ? request.body.response_format : undefined
    if (format?.type === "json_object") return JSON.stringify({ echo: request.text })
    if (format?.type === "json_schema" && isRecord(format.json_schema)) {
      return JSON.stringify(sample(format.json_schema.schema, request.text))
    }
    return `echo: ${request.text}`
  }

  /** The tool calls the fake model makes for a request (none when it offers no tools). */
  private toolCalls(request: Request): ReadonlyArray<ToolCall> {
    const { tools, wanted, none } = offeredTools(request.route, request.body)
    if (tools.length === 0 || none) return []
    if (this.options.toolCalls !== undefined) return this.options.toolCalls(request, tools)
    const tool = tools.find((t) => t.name === wanted) ?? tools[0]!
    return [{ name: tool.name, arguments: sample(tool.parameters, request.text) }]
  }

  private chatAnswer(request: Request, filtered: boolean, model: string, promptTokens: number): Answer {
    const calls = filtered ? [] : this.toolCalls(request)
    const content = filtered ? null : calls.length > 0 ? null : this.answerText(request)
    const completion = content === null ? 8 : estimateTokens(content)
    return json(200, {
      id: `chatcmpl-${request.n}`,
      object: "chat.completion",
      created: 0,
      model,
      choices: [
        {
          index: 0,
          finish_reason: filtered ? "content_filter" : calls.length > 0 ? "tool_calls" : "stop",
          message: {
            role: "assistant",
            content,
            refusal: null,
            ...(calls.length === 0
              ? {}
              : {
                  tool_calls: calls.map((call, i) => ({
                    id: `call_${request.n}_${i}`,
                    type: "function",
                    function: { name: call.name, arguments: JSON.stringify(call.arguments) }
                  }))
                })
          }
        }
      ],
      usage: { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion }
    })
  }

  private messagesAnswer(request: Request, filtered: boolean, model: string, promptTokens: number): Answer {
    const calls = filtered ? [] : this.toolCalls(request)
    const text = filtered || calls.length > 0 ? "" : this.answerText(request)
    return json(200, {
      id: `msg_${request.n}`,
      type: "message",
      role: "assistant",
      model,
      content: filtered
        ? []
        : calls.length > 0
          ? calls.map((call, i) => ({
              type: "tool_use",
              id: `toolu_${request.n}_${i}`,
              name: call.name,
              input: call.arguments
            }))
          : [{ type: "text", text, citations: null }],
      stop_reason: filtered ? "refusal" : calls.length > 0 ? "tool_use" : "end_turn",
      stop_sequence: null,
      usage: { input_tokens: promptTokens, output_tokens: filtered ? 0 : estimateTokens(text) }
    })
  }

  private embeddingsAnswer(request: Request, model: string): Answer {
    const { body } = request
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

  private transcriptionAnswer(request: Request): Answer {
    const file = request.files.find((f) => f.field === "file")
    if (file === undefined) return errorAnswer(request.route, 400, "No file was uploaded (field 'file').")
    const text =
      this.options.transcribe?.(file, request) ?? spokenText(file.bytes) ?? `${file.bytes.length} bytes of audio`
    return json(200, { text, usage: { type: "duration", seconds: 1 } })
  }

  private success(request: Request, filtered: boolean): Answer {
    const { body } = request
    const model = typeof body.model === "string" ? body.model : "fake"
    const promptTokens = request.route === "chat" || request.route === "messages" ? estimateTokens(allText(body)) : 0
    if (filtered && request.route !== "chat" && request.route !== "messages")
      return contentPolicyAnswer(request.route, {})
    switch (request.route) {
      case "chat":
        return this.chatAnswer(request, filtered, model, promptTokens)
      case "messages":
        return this.messagesAnswer(request, filtered, model, promptTokens)
      case "embeddings":
        return this.embeddingsAnswer(request, model)
      case "moderations":
        return json(200, {
          id: `modr-${request.n}`,
          model,
          results: request.inputs.map((text) => {
            const verdict = moderate(text)
            return { flagged: verdict.flagged, categories: verdict.categories, category_scores: verdict.scores }
          })
        })
      case "images": {
        const { width, height } = size(body)
        const png = image(request.text, width, height)
        const b64 = Buffer.from(png).toString("base64")
        return json(200, { created: 0, data: [{ b64_json: b64, revised_prompt: request.text }] })
      }
      case "speech": {
        const format = typeof body.response_format === "string" ? body.response_format : "mp3"
        return {
          status: 200,
          headers: { "content-type": AUDIO_TYPES[format] ?? "application/octet-stream" },
          body: speech(request.text, format)
        }
      }
      case "transcriptions":
        return this.transcriptionAnswer(request)
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
      const route = self.routeOf(req.method, req.url)
      if (route === undefined) {
        write(res, json(404, { error: { message: `no route ${req.method} ${req.url}`, type: "not_found" } }))
        return
      }
      const { body, files } = parseBody(raw, req.headers["content-type"])
      const request: Request = { n: self.log.length + 1, route, body, files, ...describe(route, body, files) }
      const entry: (typeof self.log)[number] = {
        ...request,
        path: (req.url ?? "").split("?")[0]!,
        receivedAt: now,
        status: undefined,
        answeredAt: undefined
      }
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
        const cost = self.tokenCost(request)
        const waitRequests = self.requestBucket?.waitFor(1, now) ?? 0
        const waitTokens = self.tokenBucket?.waitFor(cost, now) ?? 0
        if (waitRequests > 0 || waitTokens > 0) {
          const kind = waitRequests >= waitTokens ? "requests" : "tokens"
          return yield* respond(
            self.rateLimitedAnswer(
              request,
              kind,
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
              request,
              "fault",
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
          const answer = self.success(request, fault !== undefined)
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

const readBody = (req: Http.IncomingMessage): Effect.Effect<Buffer> =>
  Effect.callback<Buffer>((resume) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => resume(Effect.succeed(Buffer.concat(chunks))))
    req.on("error", () => resume(Effect.succeed(Buffer.alloc(0))))
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
    const prefix = (options.pathPrefix ?? "").replace(/\/+$/, "")
    server.url = `http://127.0.0.1:${(http.address() as Net.AddressInfo).port}${prefix}`
    return server
  })
