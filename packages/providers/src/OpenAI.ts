/**
 * OpenAI: chat completions (text, images, tools), embeddings, moderations,
 * image generation, speech and transcription as Tessera functions, over the
 * official `openai` SDK. Any OpenAI-compatible server works through
 * `baseURL`.
 *
 * The SDK does not retry (`maxRetries: 0`): the function's `retry` schedule
 * does, outside the function's concurrency permit and the pool's pacing. Each
 * answer's `x-ratelimit-*` headers go to the pool, a 429's `retry-after`
 * pauses it, and SDK errors become a `ProviderError` (the cell records its
 * reason). Functions are named `openai.<operation>/<model>`, with a hash of
 * any settings that change the output (never the key or the URL), and pool
 * as `openai/<model>`. Generated images and speech are written
 * content-addressed under `mediaDir` (default `<TESSERA_HOME>/media`).
 */
import { Column, Fn, type Media, Tools } from "@tessera/core"
import { Effect, Schema } from "effect"
import OpenAIClient, { APIConnectionError, APIConnectionTimeoutError, APIError, OpenAIError, toFile } from "openai"
import type {
  ChatCompletionContentPart,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionFunctionTool,
  ChatCompletionToolChoiceOption
} from "openai/resources/chat/completions"
import * as ProviderError from "./ProviderError.ts"
import * as Client from "./internal/client.ts"
import * as Define from "./internal/define.ts"
import * as RateLimitHeaders from "./internal/headers.ts"
import * as MediaFiles from "./internal/media.ts"
import * as Request from "./internal/request.ts"

export type CommonOptions = Client.CommonOptions

const KEY_VARIABLE = "OPENAI_API_KEY"

const errors: Request.SdkErrors = {
  Base: OpenAIError,
  Api: APIError,
  Connection: APIConnectionError,
  ConnectionTimeout: APIConnectionTimeoutError
}

const endpoint = (operation: string, model: string): Request.Endpoint => ({
  provider: "openai",
  operation,
  model,
  errors,
  rateLimits: RateLimitHeaders.openAI
})

const makeClients = (options: CommonOptions) =>
  Client.clientCache(
    (apiKey) =>
      new OpenAIClient({
        apiKey,
        baseURL: options.baseURL,
        maxRetries: 0,
        timeout: Client.timeoutMillis(options)
      })
  )

// ---------------------------------------------------------------------------
// Chat completions
// ---------------------------------------------------------------------------

/** A JSON answer: any JSON object, or one matching a JSON schema (structured outputs). */
export type ResponseFormat =
  | "text"
  | "json_object"
  | {
      readonly name: string
      readonly schema: Record<string, unknown>
      readonly strict?: boolean | undefined
    }

/** Which tool the model may or must call: any (`auto`), at least one (`required`), none, or this one. */
export type ToolChoice = "auto" | "required" | "none" | { readonly name: string }

export interface ChatOptions extends CommonOptions {
  readonly model: string
  /** A template for the user message: `{prompt}` is replaced by the argument (default: the argument). */
  readonly prompt?: string | undefined
  readonly system?: string | undefined
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  /** `json_object` or a JSON schema: the text returned is then a JSON document. */
  readonly responseFormat?: ResponseFormat | undefined
  /** Tools the model may call: the function then computes a `Tools.Answer` (Json), not text. */
  readonly tools?: Tools.Tools | undefined
  readonly toolChoice?: ToolChoice | undefined
}

export interface VisionOptions extends Omit<ChatOptions, "tools" | "toolChoice"> {
  /** How closely the model looks at the image (OpenAI's `detail`, default `auto`). */
  readonly detail?: "auto" | "low" | "high" | undefined
}

const ChatAnswer = Schema.Struct({
  choices: Schema.NonEmptyArray(
    Schema.Struct({
      finish_reason: Schema.NullOr(Schema.String),
      message: Schema.Struct({
        content: Schema.optional(Schema.NullOr(Schema.String)),
        refusal: Schema.optional(Schema.NullOr(Schema.String)),
        tool_calls: Schema.optional(
          Schema.NullOr(
            Schema.Array(
              Schema.Struct({
                id: Schema.String,
                type: Schema.String,
                function: Schema.optional(Schema.Struct({ name: Schema.String, arguments: Schema.String }))
              })
            )
          )
        )
      })
    })
  )
})

type Choice = (typeof ChatAnswer.Type)["choices"][0]

const responseFormatParam = (format: ResponseFormat | undefined) =>
  format === undefined || format === "text"
    ? undefined
    : format === "json_object"
      ? { type: "json_object" as const }
      : {
          type: "json_schema" as const,
          json_schema: { name: format.name, schema: format.schema, strict: format.strict ?? true }
        }

const toolParams = (tools: Tools.Tools): Array<ChatCompletionFunctionTool> =>
  tools.specs.map((spec) => ({
    type: "function",
    function: {
      name: spec.name,
      ...(spec.description === undefined ? {} : { description: spec.description }),
      parameters: { ...spec.parameters }
    }
  }))

const toolChoiceParam = (choice: ToolChoice): ChatCompletionToolChoiceOption =>
  typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } }

/** A chat function's fixed part: its endpoint, clients, the request without the user message. */
interface Chat {
  readonly target: Request.Endpoint
  readonly clients: (apiKey: string) => OpenAIClient
  readonly decode: (data: unknown) => Effect.Effect<typeof ChatAnswer.Type, ProviderError.ProviderError>
  readonly request: Omit<ChatCompletionCreateParamsNonStreaming, "messages">
  readonly system: string | undefined
  /** Tokens of the system prompt and the answer, for pacing. */
  readonly fixedTokens: number
}

const makeChat = (operation: string, options: ChatOptions): Chat => {
  const target = endpoint(operation, options.model)
  const responseFormat = responseFormatParam(options.responseFormat)
  return {
    target,
    clients: makeClients(options),
    decode: Request.decode(target, ChatAnswer),
    request: {
      model: options.model,
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.maxTokens === undefined ? {} : { max_completion_tokens: options.maxTokens }),
      ...(responseFormat === undefined ? {} : { response_format: responseFormat }),
      ...(options.tools === undefined ? {} : { tools: toolParams(options.tools) }),
      ...(options.toolChoice === undefined ? {} : { tool_choice: toolChoiceParam(options.toolChoice) })
    },
    system: options.system,
    fixedTokens: (options.system === undefined ? 0 : Client.estimateTokens(options.system)) + (options.maxTokens ?? 0)
  }
}

/** Sends one user message; fails `ContentFiltered` when the answer was withheld. */
const complete = Effect.fnUntraced(function* (
  chat: Chat,
  apiKey: string,
  content: string | Array<ChatCompletionContentPart>
) {
  const client = chat.clients(apiKey)
  const messages = [
    ...(chat.system === undefined ? [] : [{ role: "system" as const, content: chat.system }]),
    { role: "user" as const, content }
  ]
  const data = yield* Request.send(chat.target, apiKey, (signal) =>
    client.chat.completions.create({ ...chat.request, messages }, { signal }).withResponse()
  )
  const choice = (yield* chat.decode(data)).choices[0]
  if (choice.finish_reason === "content_filter" || (choice.message.refusal ?? null) !== null) {
    return yield* Request.fail(
      chat.target,
      new ProviderError.ContentFiltered({
        message: choice.message.refusal ?? "the answer was withheld by the content filter"
      }),
      apiKey
    )
  }
  return choice
})

const textOf = (chat: Chat, apiKey: string, choice: Choice): Effect.Effect<string, ProviderError.ProviderError> => {
  const content = choice.message.content ?? null
  return content === null
    ? Request.fail(
        chat.target,
        new ProviderError.InvalidOutput({
          message: `no text in the answer (finish_reason ${String(choice.finish_reason)})`
        }),
        apiKey
      )
    : Effect.succeed(content)
}

/** A tool call's `arguments` (JSON text) as an object. */
const parseArguments = (text: string): Readonly<Record<string, Schema.Json>> | undefined => {
  try {
    const parsed: unknown = JSON.parse(text === "" ? "{}" : text)
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, Schema.Json>)
      : undefined
  } catch {
    return undefined
  }
}

const answerOf = (
  chat: Chat,
  apiKey: string,
  choice: Choice
): Effect.Effect<Tools.Answer, ProviderError.ProviderError> => {
  const toolCalls: Array<Tools.ToolCall> = []
  for (const call of choice.message.tool_calls ?? []) {
    if (call.function === undefined) continue
    const args = parseArguments(call.function.arguments)
    if (args === undefined) {
      return Request.fail(
        chat.target,
        new ProviderError.InvalidOutput({
          message: `the arguments of the call to ${call.function.name} are not a JSON object: ${call.function.arguments}`
        }),
        apiKey
      )
    }
    toolCalls.push({ id: call.id, name: call.function.name, arguments: args })
  }
  return Effect.succeed({ content: choice.message.content ?? null, toolCalls })
}

const chatSettings = (options: ChatOptions) => ({
  prompt: options.prompt,
  system: options.system,
  temperature: options.temperature,
  maxTokens: options.maxTokens,
  responseFormat: options.responseFormat,
  tools: options.tools?.key,
  toolChoice: options.toolChoice
})

type PromptParams = { readonly prompt: Column.Column<string> }

/**
 * A chat completion per row: `OpenAI.chat({ model })({ prompt: t.c.question })`
 * computes the assistant's text answer. With `tools`, it computes the whole
 * answer as Json (`{ content, toolCalls: [{ id, name, arguments }] }`), for
 * `Tools.invoke` to run the calls.
 */
export function chat(options: ChatOptions & { readonly tools: Tools.Tools }): Fn.Fn<PromptParams, Tools.Answer>
export function chat(options: ChatOptions & { readonly tools?: undefined }): Fn.Fn<PromptParams, string>
export function chat(options: ChatOptions): Fn.Fn<PromptParams, string> | Fn.Fn<PromptParams, Tools.Answer> {
  const chat = makeChat("chat.completions", options)
  const common = {
    endpoint: chat.target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.chat", options.model, chatSettings(options)),
    params: { prompt: Column.String },
    deterministic: false,
    tokens: ({ prompt }: { readonly prompt: string }) =>
      chat.fixedTokens + Client.estimateTokens(Client.render(options.prompt, prompt))
  }
  const ask = (prompt: string, apiKey: string) => complete(chat, apiKey, Client.render(options.prompt, prompt))
  return options.tools === undefined
    ? Define.rowFunction({
        ...common,
        returns: Column.String,
        run: ({ prompt }, apiKey) => Effect.flatMap(ask(prompt, apiKey), (choice) => textOf(chat, apiKey, choice))
      })
    : Define.rowFunction({
        ...common,
        returns: Tools.AnswerColumn,
        run: ({ prompt }, apiKey) => Effect.flatMap(ask(prompt, apiKey), (choice) => answerOf(chat, apiKey, choice))
      })
}

/** A rough token cost of one image (OpenAI's high-detail tile estimate), for pacing. */
const IMAGE_TOKENS = 765

/**
 * A chat completion about an image per row:
 * `OpenAI.vision({ model })({ prompt: t.c.question, image: t.c.photo })`.
 * A local image (path or `file://`) is sent as a base64 `data:` URL, an
 * `http(s)` URL as it is, for the provider to fetch.
 */
export const vision = (
  options: VisionOptions
): Fn.Fn<{ readonly prompt: Column.Column<string>; readonly image: typeof Column.Image }, string> => {
  const chat = makeChat("chat.completions", options)
  return Define.rowFunction({
    endpoint: chat.target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.vision", options.model, { ...chatSettings(options), detail: options.detail }),
    params: { prompt: Column.String, image: Column.Image },
    returns: Column.String,
    deterministic: false,
    tokens: ({ prompt }) =>
      chat.fixedTokens + IMAGE_TOKENS + Client.estimateTokens(Client.render(options.prompt, prompt)),
    run: Effect.fnUntraced(function* ({ prompt, image }, apiKey) {
      const url = yield* Define.orFail(chat.target, apiKey)(MediaFiles.imageUrl(image))
      const choice = yield* complete(chat, apiKey, [
        { type: "text", text: Client.render(options.prompt, prompt) },
        { type: "image_url", image_url: { url, ...(options.detail === undefined ? {} : { detail: options.detail }) } }
      ])
      return yield* textOf(chat, apiKey, choice)
    })
  })
}

// ---------------------------------------------------------------------------
// Embeddings
// ---------------------------------------------------------------------------

export interface EmbeddingsOptions extends CommonOptions {
  readonly model: string
  /** The vector's length (sent as `dimensions`; the column is a `Vector(dimensions)`). */
  readonly dimensions: number
  /** Texts per request (default 64). */
  readonly batchSize?: number | undefined
}

const EmbeddingsAnswer = Schema.Struct({
  data: Schema.Array(
    Schema.Struct({
      index: Schema.Number,
      embedding: Schema.Array(Schema.Number)
    })
  )
})

/**
 * Embeddings, batched: `OpenAI.embeddings({ model, dimensions })({ text: t.c.body })`
 * sends up to `batchSize` texts per request and computes one vector per row.
 */
export const embeddings = (
  options: EmbeddingsOptions
): Fn.Fn<{ readonly text: Column.Column<string> }, Float32Array> => {
  const target = endpoint("embeddings", options.model)
  const clients = makeClients(options)
  const decode = Request.decode(target, EmbeddingsAnswer)
  const invalid = (message: string, apiKey: string) =>
    Request.fail(target, new ProviderError.InvalidOutput({ message }), apiKey)
  return Fn.batched({
    rateLimitHeaders: true,
    name: options.name ?? Client.functionName("openai.embeddings", `${options.model}/${options.dimensions}`, {}),
    version: options.version,
    params: { text: Column.String },
    returns: Column.Vector(options.dimensions),
    deterministic: true,
    batchSize: options.batchSize ?? 64,
    concurrency: options.concurrency ?? 4,
    pool: options.pool ?? `openai/${options.model}`,
    retry: options.retry ?? ProviderError.retry(),
    estimateTokens: (rows) => rows.reduce((sum, row) => sum + Client.estimateTokens(row.text), 0),
    // A 400 for a batch is usually one input's (too long for the model): the engine finds it by halves.
    isolateFailures: (reason) => reason instanceof ProviderError.BadRequest,
    run: Effect.fnUntraced(
      function* (rows) {
        const apiKey = yield* Define.apiKey(target, options, KEY_VARIABLE)
        const client = clients(apiKey)
        const data = yield* Request.send(target, apiKey, (signal) =>
          client.embeddings
            .create(
              { model: options.model, input: rows.map((row) => row.text), dimensions: options.dimensions },
              { signal }
            )
            .withResponse()
        )
        const answer = yield* decode(data)
        const vectors: Array<Float32Array | undefined> = rows.map(() => undefined)
        for (const item of answer.data) {
          if (!Number.isInteger(item.index) || item.index < 0 || item.index >= rows.length) {
            return yield* invalid(`embedding index ${item.index} outside a batch of ${rows.length}`, apiKey)
          }
          if (item.embedding.length !== options.dimensions) {
            return yield* invalid(
              `embedding of length ${item.embedding.length}, expected ${options.dimensions}`,
              apiKey
            )
          }
          vectors[item.index] = Float32Array.from(item.embedding)
        }
        const missing = vectors.indexOf(undefined)
        if (missing !== -1) return yield* invalid(`no embedding for input ${missing} of ${rows.length}`, apiKey)
        return vectors as ReadonlyArray<Float32Array>
      },
      Effect.mapError((error: ProviderError.ProviderError) => error.reason)
    )
  })
}

// ---------------------------------------------------------------------------
// Moderations
// ---------------------------------------------------------------------------

export interface ModerationsOptions extends CommonOptions {
  /** Default `omni-moderation-latest`. */
  readonly model?: string | undefined
}

/** A moderation verdict: flagged at all, and per category whether it is flagged and its score. */
export const Moderation = Schema.Struct({
  flagged: Schema.Boolean,
  categories: Schema.Record(Schema.String, Schema.Boolean),
  scores: Schema.Record(Schema.String, Schema.Number)
})
export type Moderation = typeof Moderation.Type

const ModerationsAnswer = Schema.Struct({
  results: Schema.NonEmptyArray(
    Schema.Struct({
      flagged: Schema.Boolean,
      categories: Schema.Record(Schema.String, Schema.NullOr(Schema.Boolean)),
      category_scores: Schema.Record(Schema.String, Schema.Number)
    })
  )
})

/**
 * A moderation per row: `OpenAI.moderations()({ text: t.c.body })` computes
 * `{ flagged, categories: { <category>: boolean }, scores: { <category>: number } }`.
 */
export const moderations = (
  options: ModerationsOptions = {}
): Fn.Fn<{ readonly text: Column.Column<string> }, Moderation> => {
  const model = options.model ?? "omni-moderation-latest"
  const target = endpoint("moderations", model)
  const clients = makeClients(options)
  const decode = Request.decode(target, ModerationsAnswer)
  return Define.rowFunction({
    endpoint: target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.moderations", model, {}),
    params: { text: Column.String },
    returns: Column.Json(Moderation),
    deterministic: true,
    tokens: ({ text }) => Client.estimateTokens(text),
    run: Effect.fnUntraced(function* ({ text }, apiKey) {
      const client = clients(apiKey)
      const data = yield* Request.send(target, apiKey, (signal) =>
        client.moderations.create({ model, input: text }, { signal }).withResponse()
      )
      const result = (yield* decode(data)).results[0]
      return {
        flagged: result.flagged,
        categories: Object.fromEntries(Object.entries(result.categories).map(([k, v]) => [k, v === true])),
        scores: result.category_scores
      }
    })
  })
}

// ---------------------------------------------------------------------------
// Image generation
// ---------------------------------------------------------------------------

export interface ImageGenerationsOptions extends CommonOptions {
  readonly model: string
  /** e.g. `1024x1024` (default: the model's). */
  readonly size?: string | undefined
  readonly quality?: "low" | "medium" | "high" | "auto" | "standard" | "hd" | undefined
  /** Where images are written, content-addressed (default `<TESSERA_HOME>/media`). */
  readonly mediaDir?: string | undefined
}

const ImagesAnswer = Schema.Struct({
  data: Schema.NonEmptyArray(
    Schema.Struct({
      b64_json: Schema.optional(Schema.NullOr(Schema.String)),
      url: Schema.optional(Schema.NullOr(Schema.String))
    })
  )
})

const IMAGE_EXTENSIONS: Readonly<Record<MediaFiles.ImageMediaType, string>> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/gif": "gif",
  "image/webp": "webp"
}

/**
 * An image per row: `OpenAI.imageGenerations({ model })({ prompt: t.c.idea })`
 * computes an Image: the generated file (PNG unless the model made another
 * format), written content-addressed under `mediaDir`.
 */
export const imageGenerations = (
  options: ImageGenerationsOptions
): Fn.Fn<{ readonly prompt: Column.Column<string> }, Media.Uri<"Image">> => {
  const target = endpoint("images.generate", options.model)
  const clients = makeClients(options)
  const decode = Request.decode(target, ImagesAnswer)
  // GPT image models always answer base64 and refuse `response_format`; DALL·E answers URLs unless asked.
  const format = options.model.startsWith("dall-e") ? { response_format: "b64_json" as const } : {}
  return Define.rowFunction({
    endpoint: target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.images", options.model, { size: options.size, quality: options.quality }),
    params: { prompt: Column.String },
    returns: Column.Image,
    deterministic: false,
    tokens: ({ prompt }) => Client.estimateTokens(prompt),
    run: Effect.fnUntraced(function* ({ prompt }, apiKey) {
      const orFail = Define.orFail(target, apiKey)
      const client = clients(apiKey)
      const data = yield* Request.send(target, apiKey, (signal) =>
        client.images
          .generate(
            {
              model: options.model,
              prompt,
              n: 1,
              ...format,
              ...(options.size === undefined ? {} : { size: options.size }),
              ...(options.quality === undefined ? {} : { quality: options.quality })
            },
            { signal }
          )
          .withResponse()
      )
      const image = (yield* decode(data)).data[0]
      const bytes =
        typeof image.b64_json === "string"
          ? new Uint8Array(Buffer.from(image.b64_json, "base64"))
          : typeof image.url === "string"
            ? (yield* orFail(MediaFiles.load(image.url))).bytes
            : yield* orFail(Effect.fail(new ProviderError.InvalidOutput({ message: "no image in the answer" })))
      const mediaType = MediaFiles.sniffImage(bytes)
      if (mediaType === undefined) {
        return yield* orFail(
          Effect.fail(new ProviderError.InvalidOutput({ message: "the answer is not a PNG, JPEG, GIF or WebP image" }))
        )
      }
      const root = yield* MediaFiles.mediaRoot(options.mediaDir)
      return yield* orFail(MediaFiles.put(root, bytes, IMAGE_EXTENSIONS[mediaType]))
    })
  })
}

// ---------------------------------------------------------------------------
// Speech and transcription
// ---------------------------------------------------------------------------

export type SpeechFormat = "mp3" | "opus" | "aac" | "flac" | "wav" | "pcm"

export interface SpeechOptions extends CommonOptions {
  readonly model: string
  readonly voice: string
  /** The audio format, also the file's extension (default `mp3`). */
  readonly format?: SpeechFormat | undefined
  readonly instructions?: string | undefined
  readonly speed?: number | undefined
  /** Where audio is written, content-addressed (default `<TESSERA_HOME>/media`). */
  readonly mediaDir?: string | undefined
}

/**
 * Speech per row: `OpenAI.speech({ model, voice })({ text: t.c.line })`
 * computes an Audio: the spoken text, written content-addressed under
 * `mediaDir`.
 */
export const speech = (options: SpeechOptions): Fn.Fn<{ readonly text: Column.Column<string> }, Media.Uri<"Audio">> => {
  const target = endpoint("audio.speech", options.model)
  const clients = makeClients(options)
  const format = options.format ?? "mp3"
  return Define.rowFunction({
    endpoint: target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.speech", options.model, {
      voice: options.voice,
      format,
      instructions: options.instructions,
      speed: options.speed
    }),
    params: { text: Column.String },
    returns: Column.Audio,
    deterministic: false,
    tokens: ({ text }) => Client.estimateTokens(text),
    run: Effect.fnUntraced(function* ({ text }, apiKey) {
      const client = clients(apiKey)
      const bytes = yield* Request.send(target, apiKey, (signal) =>
        client.audio.speech
          .create(
            {
              model: options.model,
              voice: options.voice,
              input: text,
              response_format: format,
              ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
              ...(options.speed === undefined ? {} : { speed: options.speed })
            },
            { signal }
          )
          .withResponse()
          .then(async ({ data, response }) => ({ data: new Uint8Array(await data.arrayBuffer()), response }))
      )
      const orFail = Define.orFail(target, apiKey)
      if (bytes.length === 0) {
        return yield* orFail(Effect.fail(new ProviderError.InvalidOutput({ message: "the answer has no audio" })))
      }
      const root = yield* MediaFiles.mediaRoot(options.mediaDir)
      return yield* orFail(MediaFiles.put(root, bytes, format))
    })
  })
}

export interface TranscriptionsOptions extends CommonOptions {
  readonly model: string
  /** The spoken language (ISO-639-1), when known. */
  readonly language?: string | undefined
  /** Text to guide the model's style or spelling. */
  readonly prompt?: string | undefined
  readonly temperature?: number | undefined
}

const TranscriptionAnswer = Schema.Struct({ text: Schema.String })

/**
 * A transcription per row: `OpenAI.transcriptions({ model })({ audio: t.c.clip })`
 * uploads the audio file (a local path, `file://` or an `http(s)` URL,
 * downloaded first) and computes its text.
 */
export const transcriptions = (
  options: TranscriptionsOptions
): Fn.Fn<{ readonly audio: typeof Column.Audio }, string> => {
  const target = endpoint("audio.transcriptions", options.model)
  const clients = makeClients(options)
  const decode = Request.decode(target, TranscriptionAnswer)
  return Define.rowFunction({
    endpoint: target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("openai.transcriptions", options.model, {
      language: options.language,
      prompt: options.prompt,
      temperature: options.temperature
    }),
    params: { audio: Column.Audio },
    returns: Column.String,
    deterministic: false,
    run: Effect.fnUntraced(function* ({ audio }, apiKey) {
      const file = yield* Define.orFail(target, apiKey)(MediaFiles.load(audio))
      const client = clients(apiKey)
      const data = yield* Request.send(target, apiKey, async (signal) =>
        client.audio.transcriptions
          .create(
            {
              model: options.model,
              file: await toFile(file.bytes, file.name, { type: file.mediaType }),
              response_format: "json",
              ...(options.language === undefined ? {} : { language: options.language }),
              ...(options.prompt === undefined ? {} : { prompt: options.prompt }),
              ...(options.temperature === undefined ? {} : { temperature: options.temperature })
            },
            { signal }
          )
          .withResponse()
      )
      return (yield* decode(data)).text
    })
  })
}
