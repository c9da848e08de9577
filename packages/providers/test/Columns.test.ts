import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import { OpenAI } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-test-columns"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

/** `OpenAI.embeddings` (8-d) against a fake provider, in batches of `batchSize`. */
const embeddingsOf = (fake: FakeProvider.FakeProvider, batchSize: number) =>
  OpenAI.embeddings({ model: model("embedding"), dimensions: 8, batchSize, baseURL: `${fake.url}/v1`, apiKey })

const texts = (n: number) => Array.from({ length: n }, (_, i) => ({ text: `row ${i}` }))

Harness.forEachBackend("Provider functions in computed columns", (test) => {
  test("every 5th request is a 429 with retry-after 1: all rows done, each 429 retried at least 1 s later", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        latency: 5,
        fault: ({ n }) => (n % 5 === 0 ? { status: 429, retryAfter: 1 } : undefined)
      })
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey, concurrency: 64 })
      const t = yield* Table.create("prompts", { text: Column.String })
      yield* t.insert(texts(200))
      const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.text }), { onError: "record" })

      assert.strictEqual(yield* t2.where((c) => c.answer.errorType.isNotNull()).count(), 0)
      const rows = yield* t2.collect()
      assert.strictEqual(rows.length, 200)
      assert.isTrue(rows.every((r) => r.answer === `echo: ${r.text}`))

      const limited = fake.rateLimited
      assert.isAtLeast(limited.length, 40)
      assert.strictEqual(fake.stats.total, 200 + limited.length)
      for (const r of limited) {
        assert.isDefined(r.retry, `request ${r.n} (${r.text}) was never retried`)
        assert.isAtLeast(r.retry!.at - r.at, 1000, `request ${r.n} retried after ${r.retry!.at - r.at} ms`)
      }
    }))

  test("7 inputs get a permanent 400: 93 done, 7 recorded BadRequest errors, none retried", () =>
    Effect.gen(function* () {
      const bad = new Set([3, 17, 29, 42, 58, 71, 99].map((i) => `row ${i}`))
      const fake = yield* FakeProvider.make({
        fault: ({ text }) =>
          bad.has(text) ? { status: 400, message: `Invalid prompt: '${text}' violates the input policy` } : undefined
      })
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey })
      const t = yield* Table.create("prompts", { text: Column.String })
      yield* t.insert(texts(100))
      const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.text }), { onError: "record" })

      const failed = yield* t2
        .where((c) => c.answer.errorType.isNotNull())
        .select((c) => ({ text: c.text, answer: c.answer, type: c.answer.errorType, message: c.answer.errorMessage }))
        .collect()
      assert.deepStrictEqual(new Set(failed.map((r) => r.text)), bad)
      for (const r of failed) {
        assert.isNull(r.answer)
        assert.strictEqual(r.type, "BadRequest")
        assert.include(r.message, `Invalid prompt: '${r.text}' violates the input policy`)
      }
      assert.strictEqual(yield* t2.where((c) => c.answer.errorType.isNull()).count(), 93)
      // One request per row: a 400 is not retried.
      assert.strictEqual(fake.stats.total, 100)
      assert.deepStrictEqual({ ...fake.stats.byStatus }, { "200": 93, "400": 7 })
    }))

  test("concurrency 4: the provider never sees more than 4 requests in flight", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ latency: 20 })
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, apiKey, concurrency: 4 })
      const t = yield* Table.create("prompts", { text: Column.String })
      yield* t.insert(texts(40))
      const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.text }))
      assert.strictEqual(yield* t2.where((c) => c.answer.isNotNull()).count(), 40)
      assert.strictEqual(fake.stats.total, 40)
      assert.strictEqual(fake.stats.maxInFlight, 4)
    }))

  test("embeddings: batches of batchSize per request, vectors stored per row", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ latency: 5 })
      const embed = embeddingsOf(fake, 64)
      const t = yield* Table.create("docs", { text: Column.String })
      yield* t.insert(texts(150))
      const t2 = yield* t.addComputedColumn("v", embed({ text: t.c.text }))
      // Batches run concurrently, so they may arrive in any order.
      assert.deepStrictEqual(
        fake.requests.map((r) => r.inputs.length).sort((a, b) => b - a),
        [64, 64, 22]
      )
      const rows = yield* t2.collect()
      assert.strictEqual(rows.length, 150)
      for (const r of rows) {
        const expected = FakeProvider.embed(r.text, 8)
        assert.deepStrictEqual(Array.from(r.v!), Array.from(expected))
      }
    }))

  test("embeddings: a 400 for one over-long input fails that row alone, found by halves; a batch-wide 400 fails all", () =>
    Effect.gen(function* () {
      const long = "row 13 is far too long for the model"
      const fake = yield* FakeProvider.make({
        latency: 2,
        fault: ({ inputs }) =>
          inputs.includes(long)
            ? { status: 400, message: "This model's maximum context length is 8192 tokens" }
            : undefined
      })
      const embed = embeddingsOf(fake, 16)
      const t = yield* Table.create("docs", { text: Column.String })
      yield* t.insert(texts(32).map((r, i) => (i === 13 ? { text: long } : r)))
      const t2 = yield* t.addComputedColumn("v", embed({ text: t.c.text }), { onError: "record" })
      const failed = yield* t2
        .where((c) => c.v.errorType.isNotNull())
        .select((c) => ({ text: c.text, type: c.v.errorType, message: c.v.errorMessage }))
        .collect()
      assert.deepStrictEqual(
        failed.map((r) => [r.text, r.type]),
        [[long, "BadRequest"]]
      )
      assert.include(failed[0]!.message!, "maximum context length")
      assert.strictEqual(yield* t2.where((c) => c.v.isNotNull()).count(), 31)
      // The good batch once; the bad one, then halves down to the row: 16 -> 8 -> 4 -> 2 -> 1, two calls each.
      assert.strictEqual(fake.stats.total, 2 + 2 * 4)

      // Every request refused (a wrong option, say): both halves fail alike, so the batch fails whole.
      const refusing = yield* FakeProvider.make({ fault: () => ({ status: 400, message: "unknown dimensions" }) })
      const broken = embeddingsOf(refusing, 16)
      const t3 = yield* t2.addComputedColumn("w", broken({ text: t2.c.text }), { onError: "record" })
      assert.strictEqual(yield* t3.where((c) => c.w.errorType.eq("BadRequest")).count(), 32)
      assert.strictEqual(refusing.stats.total, 2 * 3, "each batch, then its two halves, once")
    }))
})
