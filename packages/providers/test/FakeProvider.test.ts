import AnthropicClient from "@anthropic-ai/sdk"
import { assert, describe, it } from "@effect/vitest"
import { Pool } from "@tessera/core"
import { Effect } from "effect"
import OpenAIClient, { RateLimitError } from "openai"
import { FakeProvider } from "../src/testing/index.ts"

const openai = (fake: FakeProvider.FakeProvider) =>
  new OpenAIClient({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 })

describe("FakeProvider", () => {
  it.live("speaks chat completions to the real SDK: text and image parts, tool calls", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make()
      const client = openai(fake)
      const completion = yield* Effect.promise(() =>
        client.chat.completions.create({
          model: "gpt-fake",
          messages: [
            {
              role: "user",
              content: [
                { type: "text", text: "what is this?" },
                { type: "image_url", image_url: { url: "https://example.invalid/cat.png" } }
              ]
            }
          ]
        })
      )
      assert.strictEqual(completion.choices[0]!.message.content, "echo: what is this?")
      assert.deepStrictEqual(fake.requests[0]!.images, ["https://example.invalid/cat.png"])

      const tooled = yield* Effect.promise(() =>
        client.chat.completions.create({
          model: "gpt-fake",
          messages: [{ role: "user", content: "weather in Oslo" }],
          tools: [
            {
              type: "function",
              function: {
                name: "get_weather",
                parameters: { type: "object", properties: { city: { type: "string" }, days: { type: "integer" } } }
              }
            }
          ]
        })
      )
      const call = tooled.choices[0]!.message.tool_calls![0]!
      assert.strictEqual(tooled.choices[0]!.finish_reason, "tool_calls")
      assert.strictEqual(call.type, "function")
      if (call.type !== "function") return
      assert.strictEqual(call.function.name, "get_weather")
      assert.deepStrictEqual(JSON.parse(call.function.arguments), { city: "weather in Oslo", days: 15 })
    })
  )

  it.live("embeddings: string or array input, float or base64 encoding give the same vectors", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ dimensions: 12 })
      const client = openai(fake)
      const base64 = yield* Effect.promise(() => client.embeddings.create({ model: "e", input: ["a", "b"] }))
      const floats = yield* Effect.promise(() =>
        client.embeddings.create({ model: "e", input: "a", encoding_format: "float" })
      )
      assert.strictEqual(fake.requests[0]!.body.encoding_format, "base64")
      assert.strictEqual(base64.data.length, 2)
      assert.deepStrictEqual(base64.data[0]!.embedding, floats.data[0]!.embedding)
      assert.strictEqual(floats.data[0]!.embedding.length, 12)
      assert.notDeepEqual(base64.data[0]!.embedding, base64.data[1]!.embedding)
    })
  )

  it.live("enforces and advertises a requests-per-minute bucket; 429s carry retry-after", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ requestsPerMinute: 3, tokensPerMinute: 10_000 })
      const client = openai(fake)
      const send = () =>
        Effect.promise(() =>
          client.chat.completions
            .create({ model: "m", messages: [{ role: "user", content: "hello" }] })
            .withResponse()
            .then(
              ({ response }) => response,
              (error: unknown) => {
                if (error instanceof RateLimitError) return error
                throw error
              }
            )
        )
      const first = yield* send()
      assert.instanceOf(first, Response)
      if (!(first instanceof Response)) return
      assert.strictEqual(first.headers.get("x-ratelimit-limit-requests"), "3")
      assert.strictEqual(first.headers.get("x-ratelimit-remaining-requests"), "2")
      assert.closeTo(Pool.parseDuration(first.headers.get("x-ratelimit-reset-requests"))!, 20_000, 200)
      assert.strictEqual(first.headers.get("x-ratelimit-limit-tokens"), "10000")
      assert.strictEqual(first.headers.get("x-ratelimit-remaining-tokens"), String(10_000 - 2))
      yield* send()
      yield* send()
      const limited = yield* send()
      assert.instanceOf(limited, RateLimitError)
      if (!(limited instanceof RateLimitError)) return
      assert.strictEqual(limited.headers.get("x-ratelimit-remaining-requests"), "0")
      assert.strictEqual(limited.headers.get("retry-after"), "20")
      assert.closeTo(Number(limited.headers.get("retry-after-ms")), 20_000, 200)
      assert.deepStrictEqual({ ...fake.stats.byStatus }, { "200": 3, "429": 1 })
      assert.strictEqual(fake.rateLimited.length, 1)
      assert.strictEqual(fake.rateLimited[0]!.retry, undefined)
    })
  )

  it.live("Anthropic messages with limits advertised as RFC 3339 resets; can hide the headers", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ requestsPerMinute: 60 })
      const client = new AnthropicClient({ apiKey: "sk-ant", baseURL: fake.url, maxRetries: 0 })
      const { data, response } = yield* Effect.promise(() =>
        client.messages
          .create({
            model: "claude-fake",
            max_tokens: 16,
            messages: [
              {
                role: "user",
                content: [
                  { type: "text", text: "describe" },
                  { type: "image", source: { type: "url", url: "https://example.invalid/dog.jpg" } }
                ]
              }
            ]
          })
          .withResponse()
      )
      assert.deepStrictEqual(data.content, [{ type: "text", text: "echo: describe", citations: null }])
      assert.deepStrictEqual(fake.requests[0]!.images, ["https://example.invalid/dog.jpg"])
      assert.strictEqual(response.headers.get("anthropic-ratelimit-requests-limit"), "60")
      assert.strictEqual(response.headers.get("anthropic-ratelimit-requests-remaining"), "59")
      const reset = Date.parse(response.headers.get("anthropic-ratelimit-requests-reset")!)
      assert.closeTo(reset - Date.now(), 1000, 200)

      const hidden = yield* FakeProvider.make({ requestsPerMinute: 60, advertiseLimits: false })
      const quiet = yield* Effect.promise(() =>
        openai(hidden)
          .chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }] })
          .withResponse()
      )
      assert.isNull(quiet.response.headers.get("x-ratelimit-limit-requests"))
    })
  )

  it.live("counts in-flight requests and logs 429s with the retries that followed", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        latency: 100,
        fault: ({ n }) => (n === 1 ? { status: 429, retryAfter: 1 } : undefined)
      })
      const client = openai(fake)
      const chat = (text: string) =>
        Effect.tryPromise(() =>
          client.chat.completions.create({ model: "m", messages: [{ role: "user", content: text }] })
        )
      yield* Effect.ignore(chat("first"))
      yield* Effect.forEach(["a", "b", "c", "d", "e"], chat, { concurrency: "unbounded" })
      yield* Effect.sleep("20 millis")
      yield* chat("first")
      assert.strictEqual(fake.stats.maxInFlight, 5)
      assert.strictEqual(fake.stats.inFlight, 0)
      assert.strictEqual(fake.stats.total, 7)
      const [limited] = fake.rateLimited
      assert.strictEqual(limited!.retryAfterMs, 1000)
      assert.strictEqual(limited!.retry!.n, 7)
      assert.isAtLeast(limited!.retry!.at - limited!.at, 100)
    })
  )

  it("formats durations as OpenAI does, and Pool.parseDuration reads them back", () => {
    for (const [ms, text] of [
      [20, "20ms"],
      [1000, "1s"],
      [1500, "1.5s"],
      [360_000, "6m0s"],
      [3_723_000, "1h2m3s"]
    ] as const) {
      assert.strictEqual(FakeProvider.formatDuration(ms), text)
      assert.strictEqual(Pool.parseDuration(text), ms)
    }
  })
})
