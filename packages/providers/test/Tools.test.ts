import { assert, describe, it } from "@effect/vitest"
import { Column, Fn, Pool, Table, Tools } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect, Schema } from "effect"
import { Anthropic, OpenAI } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-test-tools"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

const add = Fn.make({
  name: "test.tools.add",
  params: { a: Column.Int, b: Column.Int },
  returns: Column.Int,
  run: ({ a, b }) => a + b
})

/** The fake model calls `add` with the two numbers of prompts like `add 3 and 4`, and no tool otherwise. */
const addCalls = (request: FakeProvider.Request): ReadonlyArray<FakeProvider.ToolCall> => {
  const m = /^add (-?\d+) and (-?\d+)$/.exec(request.text)
  return m === null ? [] : [{ name: "add", arguments: { a: Number(m[1]), b: Number(m[2]) } }]
}

/** Runs a function's definition directly, as the engine would, on one row. */
const invokeOne = (fn: Fn.Fn<any, unknown>, row: ReadonlyArray<unknown>) =>
  Effect.map(
    fn.definition.invoke([row]).pipe(Effect.provideService(Pool.CurrentPool, new Pool.Pool("tools-test"))),
    (results) => results[0]
  )

describe("Tools", () => {
  it("parameters become JSON Schema: one property per parameter, nullable ones optional", () => {
    const schema = Tools.parametersSchema([
      { name: "s", type: Column.String.type, nullable: false },
      { name: "i", type: Column.Int.type, nullable: false },
      { name: "f", type: Column.Float.type, nullable: true },
      { name: "when", type: Column.Timestamp.type, nullable: false },
      { name: "v", type: Column.Vector(3).type, nullable: false },
      { name: "grid", type: Column.Array([2, null], "Int").type, nullable: false },
      { name: "img", type: Column.Image.type, nullable: false },
      { name: "meta", type: Column.Json(Schema.Struct({ k: Schema.String })).type, nullable: false }
    ])
    assert.deepStrictEqual(schema.required, ["s", "i", "when", "v", "grid", "img", "meta"])
    assert.strictEqual(schema.additionalProperties, false)
    const properties = schema.properties as Record<string, Record<string, unknown>>
    assert.deepStrictEqual(properties.s, { type: "string" })
    assert.deepStrictEqual(properties.i, { type: "integer" })
    assert.deepStrictEqual(properties.f, { type: ["number", "null"] })
    assert.deepStrictEqual(properties.when, { type: "string", format: "date-time" })
    assert.deepStrictEqual(properties.v, { type: "array", items: { type: "number" }, minItems: 3, maxItems: 3 })
    assert.deepStrictEqual(properties.grid, {
      type: "array",
      items: { type: "array", items: { type: "integer" } },
      minItems: 2,
      maxItems: 2
    })
    assert.strictEqual(properties.img!.type, "string")
    assert.strictEqual(properties.meta!.type, "object")
    assert.deepStrictEqual((properties.meta!.properties as Record<string, unknown>).k, { type: "string" })
  })

  it.effect("arguments are checked and decoded per parameter type", () =>
    Effect.gen(function* () {
      const params: ReadonlyArray<Fn.Param> = [
        { name: "when", type: Column.Timestamp.type, nullable: false },
        { name: "n", type: Column.Int.type, nullable: false },
        { name: "note", type: Column.String.type, nullable: true }
      ]
      const row = yield* Tools.decodeArguments("t", params, { when: "2024-05-01T10:00:00Z", n: 3, extra: true })
      assert.instanceOf(row[0], Date)
      assert.strictEqual((row[0] as Date).toISOString(), "2024-05-01T10:00:00.000Z")
      assert.deepStrictEqual(row.slice(1), [3, null])

      const notInt = yield* Effect.flip(Tools.decodeArguments("t", params, { when: "2024-05-01", n: 1.5 }))
      assert.strictEqual(notInt.reason, "InvalidArguments")
      assert.include(notInt.message, "argument n (Int)")
      const missing = yield* Effect.flip(Tools.decodeArguments("t", params, { n: 1 }))
      assert.strictEqual(missing.message, "t: missing argument when")
    })
  )

  it.effect("invoke runs the calls in order, grouped by tool; unknown tools and bad arguments fail", () =>
    Effect.gen(function* () {
      const tools = Tools.make(Tools.fn(add, { name: "add", description: "Adds two integers" }))
      assert.deepStrictEqual(
        tools.specs.map((s) => [s.name, s.description]),
        [["add", "Adds two integers"]]
      )
      const invoke = Tools.invoke(tools)
      assert.isFalse(invoke.definition.deterministic)
      assert.match(invoke.definition.name, /^tools\.invoke:[0-9a-f]{8}$/)
      const call = (id: string, name: string, args: Record<string, Schema.Json>) => ({ id, name, arguments: args })
      const results = yield* invokeOne(invoke, [
        { content: null, toolCalls: [call("1", "add", { a: 1, b: 2 }), call("2", "add", { a: 10, b: -4 })] }
      ])
      assert.deepStrictEqual(results, { add: [3, 6] })
      assert.isNull(yield* invokeOne(invoke, [{ content: "no tools needed", toolCalls: [] }]))

      const unknown = yield* Effect.flip(invokeOne(invoke, [{ content: null, toolCalls: [call("1", "mul", {})] }]))
      assert.deepStrictEqual(
        [(unknown as Tools.ToolError).reason, (unknown as Tools.ToolError).tool],
        ["UnknownTool", "mul"]
      )
      const bad = yield* Effect.flip(invokeOne(invoke, [{ content: null, toolCalls: [call("1", "add", { a: "x" })] }]))
      assert.strictEqual((bad as Tools.ToolError).reason, "InvalidArguments")
    })
  )

  it.live("invoke runs an answer's calls at once, its results in the calls' order", () =>
    Effect.gen(function* () {
      let started = 0
      let inFlight = 0
      let most = 0
      // Each call waits (up to 2 s) until all three have started, then the first call finishes last.
      const slow = Fn.effect({
        name: `test.tools.slow.${process.pid}`,
        params: { n: Column.Int },
        returns: Column.Int,
        deterministic: false,
        run: ({ n }) =>
          Effect.gen(function* () {
            started++
            inFlight++
            most = Math.max(most, inFlight)
            for (let waited = 0; started < 3 && waited < 2000; waited += 5) yield* Effect.sleep("5 millis")
            yield* Effect.sleep(n === 1 ? "60 millis" : "10 millis")
            inFlight--
            return n * 10
          })
      })
      const invoke = Tools.invoke(Tools.make(Tools.fn(slow, { name: "slow" })))
      const calls = [1, 2, 3].map((n) => ({ id: String(n), name: "slow", arguments: { n } }))
      const results = yield* invokeOne(invoke, [{ content: null, toolCalls: calls }])
      assert.deepStrictEqual(results, { slow: [10, 20, 30] })
      assert.strictEqual(most, 3, "the three calls were in flight together")
    })
  )

  it.effect("a saved query called outside the engine fails NoStore; tool names are checked", () =>
    Effect.gen(function* () {
      const tools = Tools.make(
        Tools.query({ name: "lookup", params: { q: Column.String }, run: ({ q }) => Effect.succeed([q]) })
      )
      const error = yield* Effect.flip(
        invokeOne(Tools.invoke(tools), [
          { content: null, toolCalls: [{ id: "1", name: "lookup", arguments: { q: "x" } }] }
        ])
      )
      assert.strictEqual((error as Tools.ToolError).reason, "NoStore")
      assert.throws(
        () => Tools.query({ name: "bad name", params: {}, run: () => Effect.succeed(1) }),
        /Invalid tool name/
      )
      assert.throws(() => Tools.make(add, Tools.fn(add)), /Two tools are named/)
    })
  )
})

Harness.forEachBackend("Tool calling in computed columns", (test) => {
  test("OpenAI chat with tools: the model calls a Tessera function and its result lands in the column", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ latency: 2, toolCalls: addCalls })
      const tools = Tools.make(Tools.fn(add, { name: "add", description: "Adds two integers" }))
      const chat = OpenAI.chat({ model: model("gpt-tools"), baseURL: `${fake.url}/v1`, apiKey, tools })
      const pairs = Array.from({ length: 12 }, (_, i) => ({ x: i * 7 - 20, y: i * i }))
      const t = yield* Table.create("questions", { q: Column.String, x: Column.Int, y: Column.Int })
      yield* t.insert([...pairs.map(({ x, y }) => ({ q: `add ${x} and ${y}`, x, y })), { q: "hello", x: 0, y: 0 }])
      const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.q }))
      const t3 = yield* t2.addComputedColumn("results", Tools.invoke(tools)({ response: t2.c.answer }))

      const rows = yield* t3.collect()
      assert.strictEqual(rows.length, 13)
      for (const r of rows) {
        if (r.q === "hello") {
          assert.deepStrictEqual(r.answer, { content: "echo: hello", toolCalls: [] })
          assert.isNull(r.results)
          continue
        }
        assert.strictEqual(r.answer!.content, null)
        assert.deepStrictEqual(
          r.answer!.toolCalls.map((c) => [c.name, c.arguments]),
          [["add", { a: r.x, b: r.y }]]
        )
        assert.deepStrictEqual(r.results, { add: [r.x + r.y] })
      }
      // The tool went to the model as a function with the parameters' JSON Schema.
      const sent = fake.requests[0]!.body.tools as ReadonlyArray<{ type: string; function: Record<string, unknown> }>
      assert.deepStrictEqual(sent, [
        {
          type: "function",
          function: {
            name: "add",
            description: "Adds two integers",
            parameters: {
              type: "object",
              properties: { a: { type: "integer" }, b: { type: "integer" } },
              required: ["a", "b"],
              additionalProperties: false
            }
          }
        }
      ])
    }))

  test("Anthropic messages with a saved query as a tool: the query runs over a real table", () =>
    Effect.gen(function* () {
      const books = [
        { title: "Dune", year: 1965 },
        { title: "Neuromancer", year: 1984 },
        { title: "Hyperion", year: 1989 },
        { title: "Anathem", year: 2008 },
        { title: "Piranesi", year: 2020 }
      ]
      const shelf = yield* Table.create("shelf", { title: Column.String, year: Column.Int })
      yield* shelf.insert(books)
      const booksSince = Tools.query({
        name: "books_since",
        description: "Titles of the books published in or after a year",
        params: { year: Column.Int },
        run: ({ year }) =>
          shelf
            .where((c) => c.year.ge(year))
            .select((c) => ({ title: c.title }))
            .orderBy("title")
            .collect()
      })
      const tools = Tools.make(booksSince, Tools.fn(add, { name: "add" }))
      const fake = yield* FakeProvider.make({
        toolCalls: (request, offered) => {
          const m = /since (\d+)/.exec(request.text)
          assert.deepStrictEqual(
            offered.map((t) => t.name),
            ["books_since", "add"]
          )
          return m === null ? [] : [{ name: "books_since", arguments: { year: Number(m[1]) } }]
        }
      })
      const messages = Anthropic.messages({ model: model("claude-tools"), baseURL: fake.url, apiKey, tools })
      const since = [1960, 1985, 2000, 2021]
      const t = yield* Table.create("asks", { q: Column.String, since: Column.Int })
      yield* t.insert(since.map((year) => ({ q: `books since ${year}`, since: year })))
      const t2 = yield* t.addComputedColumn("answer", messages({ prompt: t.c.q }))
      const t3 = yield* t2.addComputedColumn("results", Tools.invoke(tools)({ response: t2.c.answer }))

      const rows = yield* t3.orderBy("since").collect()
      assert.deepStrictEqual(
        rows.map((r) => r.results),
        since.map((year) => ({
          books_since: [
            books
              .filter((b) => b.year >= year)
              .map((b) => ({ title: b.title }))
              .sort((a, b) => a.title.localeCompare(b.title))
          ]
        }))
      )
      assert.isTrue(rows.every((r) => r.answer!.toolCalls[0]!.id.startsWith("toolu_")))
      const sent = fake.requests[0]!.body.tools as ReadonlyArray<Record<string, unknown>>
      assert.deepStrictEqual(sent[0], {
        name: "books_since",
        description: "Titles of the books published in or after a year",
        input_schema: {
          type: "object",
          properties: { year: { type: "integer" } },
          required: ["year"],
          additionalProperties: false
        }
      })
    }))

  test("a tool call that cannot run is a recorded ToolError; the model's answer is kept", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        toolCalls: ({ text }) => [{ name: text === "unknown" ? "mul" : "add", arguments: { a: text, b: 1 } }]
      })
      const tools = Tools.make(Tools.fn(add, { name: "add" }))
      const chat = OpenAI.chat({ model: model("gpt-tools"), baseURL: `${fake.url}/v1`, apiKey, tools })
      const t = yield* Table.create("questions", { q: Column.String })
      yield* t.insert([{ q: "unknown" }, { q: "not a number" }])
      const t2 = yield* t.addComputedColumn("answer", chat({ prompt: t.c.q }))
      const t3 = yield* t2.addComputedColumn("results", Tools.invoke(tools)({ response: t2.c.answer }), {
        onError: "record"
      })
      const rows = yield* t3
        .select((c) => ({ q: c.q, answer: c.answer, type: c.results.errorType, message: c.results.errorMessage }))
        .orderBy("q")
        .collect()
      assert.deepStrictEqual(
        rows.map((r) => [r.q, r.type, r.answer!.toolCalls[0]!.name]),
        [
          ["not a number", "ToolError", "add"],
          ["unknown", "ToolError", "mul"]
        ]
      )
      assert.include(rows[0]!.message, "argument a (Int)")
      assert.include(rows[1]!.message, "the model called mul")
    }))
})
