/**
 * OpenAI: chat completions and embeddings as Tessera functions, over the
 * official `openai` SDK.
 *
 * The SDK does not retry (`maxRetries: 0`): the function's `retry` schedule
 * does, outside the function's concurrency permit and the pool's pacing. Each
 * answer's `x-ratelimit-*` headers go to the pool, a 429's `retry-after`
 * pauses it, and SDK errors become a `ProviderError` (the cell records its
 * reason). Functions are named `openai.chat/<model>` and
 * `openai.embeddings/<model>/<dimensions>`, with a hash of any settings that
 * change the output, and pool as `openai/<model>`.
 */
import { Column, Fn } from "@tessera/core"
import { Effect, Schema } from "effect"
import OpenAIClient, { APIConnectionError, APIConnectionTimeoutError, APIError, OpenAIError } from "openai"
import * as ProviderError from "./ProviderError.ts"
import * as Client from "./internal/client.ts"
import * as RateLimitHeaders from "./internal/headers.ts"
import * as Request from "./internal/request.ts"

export type CommonOptions = Client.CommonOptions

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

/** A JSON answer: any JSON object, or one matching a JSON schema (structured outputs). */
export type ResponseFormat =
  | "text"
  | "json_object"
  | {
      readonly name: string
      readonly schema: Record<string, unknown>
      readonly strict?: boolean | undefined
    }

export interface ChatOptions extends CommonOptions {
  readonly model: string
  /** A template for the user message: `{prompt}` is replaced by the argument (default: the argument). */
  readonly prompt?: string | undefined
  readonly system?: string | undefined
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  /** `json_object` or a JSON schema: the text returned is then a JSON document. */
  readonly responseFormat?: ResponseFormat | undefined
}

const ChatAnswer = Schema.Struct({
  choices: Schema.NonEmptyArray(
    Schema.Struct({
      finish_reason: Schema.NullOr(Schema.String),
      message: Schema.Struct({
        content: Schema.optional(Schema.NullOr(Schema.String)),
        refusal: Schema.optional(Schema.NullOr(Schema.String))
      })
    })
  )
})

const responseFormatParam = (format: ResponseFormat | undefined) =>
  format === undefined || format === "text"
    ? undefined
    : format === "json_object"
      ? { type: "json_object" as const }
      : {
          type: "json_schema" as const,
          json_schema: { name: format.name, schema: format.schema, strict: format.strict ?? true }
        }

/**
 * A chat completion per row: `OpenAI.chat({ model })({ prompt: t.c.question })`
 * computes the assistant's text answer.
 */
export const chat = (options: ChatOptions): Fn.Fn<{ readonly prompt: Column.Column<string> }, string> => {
  const settings = {
    prompt: options.prompt,
    system: options.system,
    temperature: options.temperature,
    maxTokens: options.maxTokens,
    responseFormat: options.responseFormat
  }
  const target = endpoint("chat.completions", options.model)
  const clients = makeClients(options)
  const decode = Request.decode(target, ChatAnswer)
  const responseFormat = responseFormatParam(options.responseFormat)
  const systemTokens = options.system === undefined ? 0 : Client.estimateTokens(options.system)
  return Fn.effect({
    rateLimitHeaders: true,
    name: options.name ?? Client.functionName("openai.chat", options.model, settings),
    version: options.version,
    params: { prompt: Column.String },
    returns: Column.String,
    deterministic: false,
    concurrency: options.concurrency,
    pool: options.pool ?? `openai/${options.model}`,
    retry: options.retry ?? ProviderError.retry(),
    estimateTokens: (rows) =>
      rows.reduce(
        (sum, row) =>
          sum +
          systemTokens +
          Client.estimateTokens(Client.render(options.prompt, row.prompt)) +
          (options.maxTokens ?? 0),
        0
      ),
    run: Effect.fnUntraced(
      function* ({ prompt }) {
        const apiKey = yield* Effect.catch(Client.apiKey(options.apiKey, "OPENAI_API_KEY"), (reason) =>
          Request.fail(target, reason)
        )
        const client = clients(apiKey)
        const messages = [
          ...(options.system === undefined ? [] : [{ role: "system" as const, content: options.system }]),
          { role: "user" as const, content: Client.render(options.prompt, prompt) }
        ]
        const data = yield* Request.send(target, apiKey, (signal) =>
          client.chat.completions
            .create(
              {
                model: options.model,
                messages,
                ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
                ...(options.maxTokens === undefined ? {} : { max_completion_tokens: options.maxTokens }),
                ...(responseFormat === undefined ? {} : { response_format: responseFormat })
              },
              { signal }
            )
            .withResponse()
        )
        const answer = yield* decode(data)
        const choice = answer.choices[0]
        if (choice.finish_reason === "content_filter" || (choice.message.refusal ?? null) !== null) {
          return yield* Request.fail(
            target,
            new ProviderError.ContentFiltered({
              message: choice.message.refusal ?? "the answer was withheld by the content filter"
            }),
            apiKey
          )
        }
        const content = choice.message.content ?? null
        if (content === null) {
          return yield* Request.fail(
            target,
            new ProviderError.InvalidOutput({
              message: `no text in the answer (finish_reason ${String(choice.finish_reason)})`
            }),
            apiKey
          )
        }
        return content
      },
      // The cell records the reason (errorType `BadRequest`, ...), not the wrapper.
      Effect.mapError((error: ProviderError.ProviderError) => error.reason)
    )
  })
}

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
    run: Effect.fnUntraced(
      function* (rows) {
        const apiKey = yield* Effect.catch(Client.apiKey(options.apiKey, "OPENAI_API_KEY"), (reason) =>
          Request.fail(target, reason)
        )
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
