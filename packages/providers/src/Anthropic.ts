/**
 * Anthropic: the Messages API as a Tessera function, over the official
 * `@anthropic-ai/sdk`.
 *
 * Like `OpenAI`: the SDK does not retry (`maxRetries: 0`), the function's
 * `retry` schedule does; each answer's `anthropic-ratelimit-*` headers go to
 * the pool and a 429's `retry-after` pauses it; SDK errors become a
 * `ProviderError`. Functions are named `anthropic.messages/<model>` (with a
 * hash of any settings that change the output) and pool as
 * `anthropic/<model>`.
 */
import AnthropicClient, {
  AnthropicError,
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError
} from "@anthropic-ai/sdk"
import { Column, Fn } from "@tessera/core"
import { Effect, Schema } from "effect"
import * as ProviderError from "./ProviderError.ts"
import * as Client from "./internal/client.ts"
import * as RateLimitHeaders from "./internal/headers.ts"
import * as Request from "./internal/request.ts"

export type CommonOptions = Client.CommonOptions

const errors: Request.SdkErrors = {
  Base: AnthropicError,
  Api: APIError,
  Connection: APIConnectionError,
  ConnectionTimeout: APIConnectionTimeoutError
}

export interface MessagesOptions extends CommonOptions {
  readonly model: string
  /** The most tokens the answer may have (default 1024). */
  readonly maxTokens?: number | undefined
  /** A template for the user message: `{prompt}` is replaced by the argument (default: the argument). */
  readonly prompt?: string | undefined
  readonly system?: string | undefined
  readonly temperature?: number | undefined
}

const DEFAULT_MAX_TOKENS = 1024

const MessagesAnswer = Schema.Struct({
  stop_reason: Schema.NullOr(Schema.String),
  content: Schema.Array(Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) }))
})

/**
 * A message per row: `Anthropic.messages({ model })({ prompt: t.c.question })`
 * computes the text of the assistant's answer.
 */
export const messages = (options: MessagesOptions): Fn.Fn<{ readonly prompt: Column.Column<string> }, string> => {
  const settings = {
    maxTokens: options.maxTokens,
    prompt: options.prompt,
    system: options.system,
    temperature: options.temperature
  }
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS
  const target: Request.Endpoint = {
    provider: "anthropic",
    operation: "messages",
    model: options.model,
    errors,
    rateLimits: RateLimitHeaders.anthropic
  }
  const clients = Client.clientCache(
    (apiKey) =>
      new AnthropicClient({
        apiKey,
        baseURL: options.baseURL,
        maxRetries: 0,
        timeout: Client.timeoutMillis(options)
      })
  )
  const decode = Request.decode(target, MessagesAnswer)
  const systemTokens = options.system === undefined ? 0 : Client.estimateTokens(options.system)
  return Fn.effect({
    rateLimitHeaders: true,
    name: options.name ?? Client.functionName("anthropic.messages", options.model, settings),
    version: options.version,
    params: { prompt: Column.String },
    returns: Column.String,
    deterministic: false,
    concurrency: options.concurrency,
    pool: options.pool ?? `anthropic/${options.model}`,
    retry: options.retry ?? ProviderError.retry(),
    estimateTokens: (rows) =>
      rows.reduce(
        (sum, row) => sum + systemTokens + Client.estimateTokens(Client.render(options.prompt, row.prompt)) + maxTokens,
        0
      ),
    run: Effect.fnUntraced(
      function* ({ prompt }) {
        const apiKey = yield* Effect.catch(Client.apiKey(options.apiKey, "ANTHROPIC_API_KEY"), (reason) =>
          Request.fail(target, reason)
        )
        const client = clients(apiKey)
        const data = yield* Request.send(target, apiKey, (signal) =>
          client.messages
            .create(
              {
                model: options.model,
                max_tokens: maxTokens,
                messages: [{ role: "user", content: Client.render(options.prompt, prompt) }],
                ...(options.system === undefined ? {} : { system: options.system }),
                ...(options.temperature === undefined ? {} : { temperature: options.temperature })
              },
              { signal }
            )
            .withResponse()
        )
        const answer = yield* decode(data)
        if (answer.stop_reason === "refusal") {
          return yield* Request.fail(
            target,
            new ProviderError.ContentFiltered({ message: "the model refused to answer (stop_reason refusal)" }),
            apiKey
          )
        }
        const texts = answer.content.flatMap((block) =>
          block.type === "text" && block.text !== undefined ? [block.text] : []
        )
        if (texts.length === 0) {
          return yield* Request.fail(
            target,
            new ProviderError.InvalidOutput({
              message: `no text in the answer (stop_reason ${String(answer.stop_reason)})`
            }),
            apiKey
          )
        }
        return texts.join("")
      },
      Effect.mapError((error: ProviderError.ProviderError) => error.reason)
    )
  })
}
