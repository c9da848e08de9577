import { assert, describe, it } from "@effect/vitest"
import { Column, Fn, Pool, Table, Tools } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { ConfigProvider, Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Anthropic, OpenAI } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

const invoke = (fn: Fn.Fn<any, unknown>, row: ReadonlyArray<unknown>) =>
  fn.definition.invoke([row]).pipe(Effect.provideService(Pool.CurrentPool, new Pool.Pool("connections")))

const echo = Fn.make({
  name: "test.connections.echo",
  params: { s: Column.String },
  returns: Column.String,
  run: ({ s }) => s
})

describe("OpenAI-compatible endpoints", () => {
  it.live("every OpenAI function honours baseURL: an Ollama-style server below /ollama/v1", () =>
    Effect.gen(function* () {
      const apiKey = "sk-ollama-compatible"
      const mediaDir = yield* Harness.tempDir()
      const fake = yield* FakeProvider.make({ pathPrefix: "/ollama", apiKey })
      assert.match(fake.url, /\/ollama$/)
      const image = NodePath.join(mediaDir, "in.png")
      NodeFs.writeFileSync(image, FakeProvider.image("in"))
      const options = { baseURL: `${fake.url}/v1`, apiKey }
      const tools = Tools.make(Tools.fn(echo, { name: "echo" }))
      const calls: ReadonlyArray<readonly [Fn.Fn<any, unknown>, ReadonlyArray<unknown>]> = [
        [OpenAI.chat({ ...options, model: model("llama3") }), ["hi"]],
        [OpenAI.chat({ ...options, model: model("llama3"), tools }), ["hi"]],
        [OpenAI.vision({ ...options, model: model("llava") }), ["what?", image]],
        [OpenAI.embeddings({ ...options, model: model("nomic-embed"), dimensions: 4 }), ["text"]],
        [OpenAI.moderations({ ...options }), ["text"]],
        [OpenAI.imageGenerations({ ...options, model: model("sd"), mediaDir }), ["a cat"]],
        [OpenAI.speech({ ...options, model: model("piper"), voice: "amy", mediaDir }), ["words"]]
      ]
      const outputs: Array<unknown> = []
      for (const [fn, row] of calls) outputs.push((yield* invoke(fn, row))[0])
      outputs.push((yield* invoke(OpenAI.transcriptions({ ...options, model: model("whisper") }), [outputs[6]]))[0])

      assert.deepStrictEqual(
        fake.requests.map((r) => [r.path, r.status]),
        [
          ["/ollama/v1/chat/completions", 200],
          ["/ollama/v1/chat/completions", 200],
          ["/ollama/v1/chat/completions", 200],
          ["/ollama/v1/embeddings", 200],
          ["/ollama/v1/moderations", 200],
          ["/ollama/v1/images/generations", 200],
          ["/ollama/v1/audio/speech", 200],
          ["/ollama/v1/audio/transcriptions", 200]
        ]
      )
      assert.strictEqual(outputs[0], "echo: hi")
      assert.strictEqual((outputs[1] as Tools.Answer).toolCalls[0]!.name, "echo")
      assert.strictEqual(outputs[7], "words")
    })
  )

  it.live("a base URL without the server's prefix answers 404: a BadRequest naming the endpoint", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ pathPrefix: "/ollama" })
      const root = fake.url.replace(/\/ollama$/, "")
      const error = yield* Effect.flip(invoke(OpenAI.moderations({ baseURL: `${root}/v1`, apiKey: "sk-x" }), ["text"]))
      assert.deepStrictEqual(
        [(error as { _tag: string })._tag, (error as { status: number }).status],
        ["BadRequest", 404]
      )
    })
  )
})

const SECRET_OPENAI = "sk-openai-from-env-7f3a9c"
const SECRET_ANTHROPIC = "sk-ant-option-51d2e8"

/** Every row of every table of the database, as text. */
const databaseText = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<{ schema: string; name: string }>`
    SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')`
  const texts: Array<string> = []
  for (const t of tables) {
    const rows = yield* sql.unsafe<{ row: string }>(`SELECT t::text AS row FROM "${t.schema}"."${t.name}" t`)
    texts.push(`${t.schema}.${t.name}`, ...rows.map((r) => r.row))
  }
  return { tables: tables.length, text: texts.join("\n") }
})

Harness.forEachBackend("API keys", (test) => {
  test("keys come from the environment or options, are redacted in errors and stored nowhere", () =>
    Effect.gen(function* () {
      const mediaDir = yield* Harness.tempDir()
      const leak = (key: string) => `Invalid request from key ${key}`
      // Each fake accepts only its provider's key and echoes it in an error message.
      const fakeFor = (key: string) =>
        FakeProvider.make({
          apiKey: key,
          fault: ({ text }) => (text === "leak" ? { status: 400, message: leak(key) } : undefined)
        })
      const fake = yield* fakeFor(SECRET_OPENAI)
      const fakeAnthropic = yield* fakeFor(SECRET_ANTHROPIC)
      // OPENAI_API_KEY from the environment; the Anthropic key as a Redacted option.
      const chat = OpenAI.chat({ model: model("gpt"), baseURL: `${fake.url}/v1`, system: "Be kind." })
      const generate = OpenAI.imageGenerations({ model: model("gpt-image"), baseURL: `${fake.url}/v1`, mediaDir })
      const messages = Anthropic.messages({
        model: model("claude"),
        baseURL: fakeAnthropic.url,
        apiKey: Redacted.make(SECRET_ANTHROPIC)
      })
      for (const fn of [chat, generate, messages]) {
        assert.notInclude(fn.definition.name, SECRET_OPENAI)
        assert.notInclude(fn.definition.name, SECRET_ANTHROPIC)
      }
      const t = yield* Table.create("prompts", { text: Column.String })
      yield* t.insert([{ text: "hello" }, { text: "leak" }])
      const t2 = yield* t.addComputedColumn("gpt", chat({ prompt: t.c.text }), { onError: "record" })
      const t3 = yield* t2.addComputedColumn("picture", generate({ prompt: t.c.text }), { onError: "record" })
      const t4 = yield* t3.addComputedColumn("claude", messages({ prompt: t.c.text }), { onError: "record" })

      const rows = yield* t4
        .select((c) => ({
          text: c.text,
          gpt: c.gpt,
          gptError: c.gpt.errorMessage,
          picture: c.picture.errorMessage,
          claudeError: c.claude.errorMessage
        }))
        .orderBy("text")
        .collect()
      assert.strictEqual(rows[0]!.gpt, "echo: hello")
      assert.deepStrictEqual(
        [rows[1]!.gptError, rows[1]!.picture, rows[1]!.claudeError],
        [`400 ${leak("[redacted]")}`, `400 ${leak("[redacted]")}`, `400 ${leak("[redacted]")}`]
      )
      // The keys did reach the providers...
      assert.deepStrictEqual({ ...fake.stats.byStatus }, { "200": 2, "400": 2 })
      assert.deepStrictEqual({ ...fakeAnthropic.stats.byStatus }, { "200": 1, "400": 1 })
      // ...and are nowhere in the database: catalog, cells, errors, versions.
      const db = yield* databaseText
      assert.isAtLeast(db.tables, 3)
      assert.include(db.text, "echo: hello")
      assert.notInclude(db.text, SECRET_OPENAI)
      assert.notInclude(db.text, SECRET_ANTHROPIC)
    }).pipe(
      Effect.provideService(
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnv({ env: { OPENAI_API_KEY: SECRET_OPENAI } })
      )
    ))
})
