/**
 * Anthropic: the Messages API (text, images, tools) as Tessera functions,
 * over the official `@anthropic-ai/sdk`.
 *
 * Like `OpenAI`: the SDK does not retry (`maxRetries: 0`), the function's
 * `retry` schedule does; each answer's `anthropic-ratelimit-*` headers go to
 * the pool and a 429's `retry-after` pauses it; SDK errors become a
 * `ProviderError`. Functions are named `anthropic.messages/<model>` (or
 * `anthropic.vision/<model>`, with a hash of any settings that change the
 * output) and pool as `anthropic/<model>`.
 */
import AnthropicClient, {
  AnthropicError,
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError
} from "@anthropic-ai/sdk"
import type {
  ContentBlockParam,
  MessageCreateParamsNonStreaming,
  Tool,
  ToolChoice as SdkToolChoice
} from "@anthropic-ai/sdk/resources/messages"
import { Column, type Fn, Tools } from "@tessera/core"
import { Effect, Schema } from "effect"
import * as ProviderError from "./ProviderError.ts"
import * as Client from "./internal/client.ts"
import * as Define from "./internal/define.ts"
import * as RateLimitHeaders from "./internal/headers.ts"
import * as Media from "./internal/media.ts"
import * as Request from "./internal/request.ts"

export type CommonOptions = Client.CommonOptions

const KEY_VARIABLE = "ANTHROPIC_API_KEY"

const errors: Request.SdkErrors = {
  Base: AnthropicError,
  Api: APIError,
  Connection: APIConnectionError,
  ConnectionTimeout: APIConnectionTimeoutError
}

/** Which tool the model may or must call: any (`auto`), at least one (`any`), none, or this one. */
export type ToolChoice = "auto" | "any" | "none" | { readonly name: string }

export interface MessagesOptions extends CommonOptions {
  readonly model: string
  /** The most tokens the answer may have (default 1024). */
  readonly maxTokens?: number | undefined
  /** A template for the user message: `{prompt}` is replaced by the argument (default: the argument). */
  readonly prompt?: string | undefined
  readonly system?: string | undefined
  readonly temperature?: number | undefined
  /** Tools the model may call: the function then computes a `Tools.Answer` (Json), not text. */
  readonly tools?: Tools.Tools | undefined
  readonly toolChoice?: ToolChoice | undefined
}

export type VisionOptions = Omit<MessagesOptions, "tools" | "toolChoice">

const DEFAULT_MAX_TOKENS = 1024

const MessagesAnswer = Schema.Struct({
  stop_reason: Schema.NullOr(Schema.String),
  content: Schema.Array(
    Schema.Struct({
      type: Schema.String,
      text: Schema.optional(Schema.String),
      id: Schema.optional(Schema.String),
      name: Schema.optional(Schema.String),
      input: Schema.optional(Schema.Unknown)
    })
  )
})

type Answer = typeof MessagesAnswer.Type

const toolParams = (tools: Tools.Tools): Array<Tool> =>
  tools.specs.map((spec) => ({
    name: spec.name,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    input_schema: { ...spec.parameters, type: "object" }
  }))

const toolChoiceParam = (choice: ToolChoice): SdkToolChoice =>
  typeof choice === "string" ? { type: choice } : { type: "tool", name: choice.name }

/** A messages function's fixed part: its endpoint, clients, the request without the user message. */
interface Messages {
  readonly target: Request.Endpoint
  readonly clients: (apiKey: string) => AnthropicClient
  readonly decode: (data: unknown) => Effect.Effect<Answer, ProviderError.ProviderError>
  readonly request: Omit<MessageCreateParamsNonStreaming, "messages">
  /** Tokens of the system prompt and the answer, for pacing. */
  readonly fixedTokens: number
}

const makeMessages = (options: MessagesOptions): Messages => {
  const target: Request.Endpoint = {
    provider: "anthropic",
    operation: "messages",
    model: options.model,
    errors,
    rateLimits: RateLimitHeaders.anthropic
  }
  const maxTokens = options.maxTokens ?? DEFAULT_MAX_TOKENS
  return {
    target,
    clients: Client.clientCache(
      (apiKey) =>
        new AnthropicClient({
          apiKey,
          baseURL: options.baseURL,
          maxRetries: 0,
          timeout: Client.timeoutMillis(options)
        })
    ),
    decode: Request.decode(target, MessagesAnswer),
    request: {
      model: options.model,
      max_tokens: maxTokens,
      ...(options.system === undefined ? {} : { system: options.system }),
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.tools === undefined ? {} : { tools: toolParams(options.tools) }),
      ...(options.toolChoice === undefined ? {} : { tool_choice: toolChoiceParam(options.toolChoice) })
    },
    fixedTokens: (options.system === undefined ? 0 : Client.estimateTokens(options.system)) + maxTokens
  }
}

/** Sends one user message; fails `ContentFiltered` when the model refused. */
const send = Effect.fnUntraced(function* (
  messages: Messages,
  apiKey: string,
  content: string | Array<ContentBlockParam>
) {
  const client = messages.clients(apiKey)
  const data = yield* Request.send(messages.target, apiKey, (signal) =>
    client.messages.create({ ...messages.request, messages: [{ role: "user", content }] }, { signal }).withResponse()
  )
  const answer = yield* messages.decode(data)
  if (answer.stop_reason === "refusal") {
    return yield* Request.fail(
      messages.target,
      new ProviderError.ContentFiltered({ message: "the model refused to answer (stop_reason refusal)" }),
      apiKey
    )
  }
  return answer
})

const texts = (answer: Answer): ReadonlyArray<string> =>
  answer.content.flatMap((block) => (block.type === "text" && block.text !== undefined ? [block.text] : []))

const textOf = (
  messages: Messages,
  apiKey: string,
  answer: Answer
): Effect.Effect<string, ProviderError.ProviderError> => {
  const parts = texts(answer)
  return parts.length === 0
    ? Request.fail(
        messages.target,
        new ProviderError.InvalidOutput({
          message: `no text in the answer (stop_reason ${String(answer.stop_reason)})`
        }),
        apiKey
      )
    : Effect.succeed(parts.join(""))
}

const isObject = (u: unknown): u is Record<string, Schema.Json> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

const answerOf = (
  messages: Messages,
  apiKey: string,
  answer: Answer
): Effect.Effect<Tools.Answer, ProviderError.ProviderError> => {
  const toolCalls: Array<Tools.ToolCall> = []
  for (const block of answer.content) {
    if (block.type !== "tool_use") continue
    if (block.id === undefined || block.name === undefined || !isObject(block.input)) {
      return Request.fail(
        messages.target,
        new ProviderError.InvalidOutput({ message: `a tool_use block without id, name or an input object` }),
        apiKey
      )
    }
    toolCalls.push({ id: block.id, name: block.name, arguments: block.input })
  }
  const parts = texts(answer)
  return Effect.succeed({ content: parts.length === 0 ? null : parts.join(""), toolCalls })
}

const settingsOf = (options: MessagesOptions) => ({
  maxTokens: options.maxTokens,
  prompt: options.prompt,
  system: options.system,
  temperature: options.temperature,
  tools: options.tools?.key,
  toolChoice: options.toolChoice
})

type PromptParams = { readonly prompt: Column.Column<string> }

/**
 * A message per row: `Anthropic.messages({ model })({ prompt: t.c.question })`
 * computes the text of the assistant's answer. With `tools`, it computes the
 * whole answer as Json (`{ content, toolCalls: [{ id, name, arguments }] }`),
 * for `Tools.invoke` to run the calls.
 */
export function messages(options: MessagesOptions & { readonly tools: Tools.Tools }): Fn.Fn<PromptParams, Tools.Answer>
export function messages(options: MessagesOptions & { readonly tools?: undefined }): Fn.Fn<PromptParams, string>
export function messages(options: MessagesOptions): Fn.Fn<PromptParams, string> | Fn.Fn<PromptParams, Tools.Answer> {
  const m = makeMessages(options)
  const common = {
    endpoint: m.target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("anthropic.messages", options.model, settingsOf(options)),
    params: { prompt: Column.String },
    deterministic: false,
    tokens: ({ prompt }: { readonly prompt: string }) =>
      m.fixedTokens + Client.estimateTokens(Client.render(options.prompt, prompt))
  }
  const ask = (prompt: string, apiKey: string) => send(m, apiKey, Client.render(options.prompt, prompt))
  return options.tools === undefined
    ? Define.rowFunction({
        ...common,
        returns: Column.String,
        run: ({ prompt }, apiKey) => Effect.flatMap(ask(prompt, apiKey), (answer) => textOf(m, apiKey, answer))
      })
    : Define.rowFunction({
        ...common,
        returns: Tools.AnswerColumn,
        run: ({ prompt }, apiKey) => Effect.flatMap(ask(prompt, apiKey), (answer) => answerOf(m, apiKey, answer))
      })
}

/** A rough token cost of one image, for pacing. */
const IMAGE_TOKENS = 1600

/**
 * A message about an image per row:
 * `Anthropic.vision({ model })({ prompt: t.c.question, image: t.c.photo })`.
 * A local image is sent as a `base64` source, an `http(s)` URL as a `url`
 * source, for the provider to fetch.
 */
export const vision = (
  options: VisionOptions
): Fn.Fn<{ readonly prompt: Column.Column<string>; readonly image: typeof Column.Image }, string> => {
  const m = makeMessages(options)
  return Define.rowFunction({
    endpoint: m.target,
    options,
    keyVariable: KEY_VARIABLE,
    name: Client.functionName("anthropic.vision", options.model, settingsOf(options)),
    params: { prompt: Column.String, image: Column.Image },
    returns: Column.String,
    deterministic: false,
    tokens: ({ prompt }) => m.fixedTokens + IMAGE_TOKENS + Client.estimateTokens(Client.render(options.prompt, prompt)),
    run: Effect.fnUntraced(function* ({ prompt, image }, apiKey) {
      const source = yield* Define.orFail(m.target, apiKey)(Media.imageSource(image))
      const answer = yield* send(m, apiKey, [
        { type: "image", source },
        { type: "text", text: Client.render(options.prompt, prompt) }
      ])
      return yield* textOf(m, apiKey, answer)
    })
  })
}
