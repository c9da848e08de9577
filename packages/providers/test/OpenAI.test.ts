import { assert, describe, it } from "@effect/vitest"
import { Pool } from "@tessera/core"
import { ConfigProvider, Duration, Effect } from "effect"
import { OpenAI, ProviderError } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-test-0123456789"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

/** Runs a function's invocation once (no retry), as Compute would inside the pool. */
const invoke = (
  fn: { readonly definition: { readonly invoke: (rows: ReadonlyArray<ReadonlyArray<unknown>>) => any } },
  rows: ReadonlyArray<ReadonlyArray<unknown>>,
  pool: Pool.Pool = new Pool.Pool("test")
): Effect.Effect<ReadonlyArray<unknown>, unknown> =>
  (fn.definition.invoke(rows) as Effect.Effect<ReadonlyArray<unknown>, unknown, Pool.CurrentPool>).pipe(
    Effect.provideService(Pool.CurrentPool, pool)
  )

const failure = (effect: Effect.Effect<unknown, unknown>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.isTrue(ProviderError.isReason(error), `not a ProviderError reason: ${String(error)}`)
    return error as ProviderError.Reason
  })

describe("OpenAI.chat", () => {
  it.live("round-trips through the SDK: system prompt, template, answer text, function name and pool", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ latency: 5 })
      const m = model("gpt")
      const plain = OpenAI.chat({ model: m, baseURL: `${fake.url}/v1`, apiKey })
      assert.strictEqual(plain.definition.name, `openai.chat/${m}`)
      assert.strictEqual(plain.definition.pool, `openai/${m}`)
      assert.isFalse(plain.definition.deterministic)
      assert.deepStrictEqual(yield* invoke(plain, [["hello"]]), ["echo: hello"])

      const templated = OpenAI.chat({
        model: m,
        baseURL: `${fake.url}/v1`,
        apiKey,
        system: "Be brief.",
        prompt: "Translate: {prompt}"
      })
      assert.match(templated.definition.name, new RegExp(`^openai\\.chat/${m}:[0-9a-f]{8}$`))
      assert.notStrictEqual(templated.definition.name, plain.definition.name)
      assert.deepStrictEqual(yield* invoke(templated, [["chat"]]), ["echo: Translate: chat"])
      const sent = fake.requests[1]!.body as { messages: Array<{ role: string; content: string }>; model: string }
      assert.deepStrictEqual(sent.messages, [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Translate: chat" }
      ])
      assert.strictEqual(sent.model, m)
      // Same settings, same name: a table reopened in another process finds its function.
      const again = OpenAI.chat({ model: m, apiKey, system: "Be brief.", prompt: "Translate: {prompt}" })
      assert.strictEqual(again.definition.name, templated.definition.name)
    })
  )

  it.live("json_object and json_schema response formats return JSON text", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make()
      const m = model("gpt")
      const object = OpenAI.chat({ model: m, baseURL: `${fake.url}/v1`, apiKey, responseFormat: "json_object" })
      const [text] = yield* invoke(object, [["cats"]])
      assert.deepStrictEqual(JSON.parse(text as string), { echo: "cats" })

      const schema = {
        type: "object",
        properties: { label: { type: "string", enum: ["pos", "neg"] }, score: { type: "number" } },
        required: ["label", "score"],
        additionalProperties: false
      }
      const structured = OpenAI.chat({
        model: m,
        baseURL: `${fake.url}/v1`,
        apiKey,
        responseFormat: { name: "sentiment", schema }
      })
      const [json] = yield* invoke(structured, [["great"]])
      assert.deepStrictEqual(JSON.parse(json as string), { label: "pos", score: 5 })
      const format = fake.requests[1]!.body.response_format as { type: string; json_schema: { name: string } }
      assert.strictEqual(format.type, "json_schema")
      assert.strictEqual(format.json_schema.name, "sentiment")
    })
  )

  it.live("rate-limit headers reach the pool", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ requestsPerMinute: 600, tokensPerMinute: 90_000 })
      const pool = new Pool.Pool("headers")
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey })
      yield* invoke(chat, [["one"]], pool)
      assert.strictEqual(pool.stats.limitRequests, 600)
      assert.strictEqual(pool.stats.limitTokens, 90_000)
      assert.strictEqual(pool.stats.backoffs, 0)
    })
  )

  it.live("maps 429 (retry-after, pool backoff), 500, 400, 401, timeout, malformed and content filter", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        apiKey,
        fault: ({ text }): FakeProvider.Fault | undefined => {
          switch (text) {
            case "429":
              return { status: 429, retryAfter: 2 }
            case "500":
              return { status: 500, message: "upstream exploded" }
            case "400":
              return { status: 400, message: "This model's maximum context length is 8 tokens" }
            case "slow":
              return { timeout: true }
            case "garbage":
              return { malformed: true }
            case "filtered":
              return { contentFilter: true }
            default:
              return undefined
          }
        }
      })
      const pool = new Pool.Pool("errors")
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey, timeout: "300 millis" })

      const limited = yield* failure(invoke(chat, [["429"]], pool))
      assert.strictEqual(limited._tag, "RateLimited")
      assert.strictEqual(limited.status, 429)
      assert.isTrue(limited.isRetryable)
      assert.strictEqual(Duration.toMillis(ProviderError.retryAfterOf(limited)!), 2000)
      assert.strictEqual(pool.stats.backoffs, 1)

      const unavailable = yield* failure(invoke(chat, [["500"]], pool))
      assert.strictEqual(unavailable._tag, "Unavailable")
      assert.strictEqual(unavailable.message, "500 upstream exploded")
      assert.isTrue(unavailable.isRetryable)

      const bad = yield* failure(invoke(chat, [["400"]], pool))
      assert.strictEqual(bad._tag, "BadRequest")
      assert.include(bad.message, "maximum context length")
      assert.isFalse(bad.isRetryable)

      const timeout = yield* failure(invoke(chat, [["slow"]], pool))
      assert.strictEqual(timeout._tag, "Timeout")
      assert.isTrue(timeout.isRetryable)

      const malformed = yield* failure(invoke(chat, [["garbage"]], pool))
      assert.strictEqual(malformed._tag, "InvalidOutput")
      assert.isFalse(malformed.isRetryable)

      const filtered = yield* failure(invoke(chat, [["filtered"]], pool))
      assert.strictEqual(filtered._tag, "ContentFiltered")

      const wrongKey = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey: "sk-wrong-0000000000" })
      const auth = yield* failure(invoke(wrongKey, [["hi"]], pool))
      assert.strictEqual(auth._tag, "Auth")
      assert.strictEqual(auth.status, 401)
      assert.isFalse(auth.isRetryable)

      const statuses = fake.stats.byStatus
      assert.deepStrictEqual({ ...statuses }, { "429": 1, "500": 1, "400": 1, timeout: 1, "200": 2, "401": 1 })
    })
  )

  it.live("the API key comes from OPENAI_API_KEY through Config and never appears in errors", () =>
    Effect.gen(function* () {
      const secret = "sk-very-secret-4242"
      const fake = yield* FakeProvider.make({
        apiKey: secret,
        fault: ({ text }) => (text === "leak" ? { status: 400, message: `bad request for key ${secret}` } : undefined)
      })
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1` })
      const withKey = ConfigProvider.fromEnv({ env: { OPENAI_API_KEY: secret } })
      const answer = yield* invoke(chat, [["hi"]]).pipe(Effect.provideService(ConfigProvider.ConfigProvider, withKey))
      assert.deepStrictEqual(answer, ["echo: hi"])
      const leak = yield* failure(
        invoke(chat, [["leak"]]).pipe(Effect.provideService(ConfigProvider.ConfigProvider, withKey))
      )
      assert.strictEqual(leak.message, "400 bad request for key [redacted]")

      const missing = yield* failure(
        invoke(chat, [["hi"]]).pipe(
          Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env: {} }))
        )
      )
      assert.strictEqual(missing._tag, "Auth")
      assert.include(missing.message, "OPENAI_API_KEY")
      assert.strictEqual(fake.stats.total, 2)
    })
  )
})

describe("OpenAI.embeddings", () => {
  it.live("a batch is one request; vectors are the fake's, in order, unit length", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ latency: 5 })
      const m = model("text-embedding")
      const embed = OpenAI.embeddings({ model: m, dimensions: 16, baseURL: `${fake.url}/v1`, apiKey })
      assert.strictEqual(embed.definition.name, `openai.embeddings/${m}/16`)
      assert.strictEqual(embed.definition.batchSize, 64)
      assert.isTrue(embed.definition.batched)
      assert.isTrue(embed.definition.deterministic)
      const texts = ["alpha", "beta", "gamma"]
      const vectors = (yield* invoke(
        embed,
        texts.map((t) => [t])
      )) as ReadonlyArray<Float32Array>
      assert.strictEqual(fake.stats.byRoute.embeddings, 1)
      assert.deepStrictEqual(fake.requests[0]!.inputs, texts)
      assert.strictEqual(fake.requests[0]!.body.dimensions, 16)
      vectors.forEach((v, i) => {
        assert.instanceOf(v, Float32Array)
        assert.deepStrictEqual(Array.from(v), Array.from(FakeProvider.embed(texts[i]!, 16)))
        assert.closeTo(Math.hypot(...v), 1, 1e-5)
      })
    })
  )
})
