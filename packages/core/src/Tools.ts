/**
 * Tools: Tessera functions and saved queries offered to a model as tools
 * (Pixeltable's `pxt.tools(...)`), and `invoke`, the computed-column function
 * that runs the tools the model chose (Pixeltable's `invoke_tools`).
 *
 * A tool's parameters come from its Tessera parameters: each `ColumnType`
 * becomes a JSON Schema, and the model's arguments are checked and decoded
 * with the same rules as inserted values before the tool runs. A function tool
 * is called like the engine calls it in a computed column: under its pool's
 * pacing, its concurrency limit and its retry schedule.
 *
 * Saved queries read the store. Computed-column functions cannot declare
 * services (`Fn.effect` runs need only `Pool.CurrentPool`), but the engine
 * only ever evaluates them inside effects that require the `Store` (insert,
 * backfill, supervisor stages, queries), so the store is in the fiber's
 * context: a saved query reads it there, when it is called, and runs against
 * the database of the table being computed. Called where there is no store, a
 * saved query fails with `ToolError` reason `NoStore`.
 */
import { Effect, Option, Schema, Semaphore } from "effect"
import * as Column from "./Column.ts"
import * as ColumnType from "./ColumnType.ts"
import * as Fn from "./Fn.ts"
import * as Pool from "./Pool.ts"
import { Store } from "./Store.ts"

/** Why running a tool the model asked for failed. */
export class ToolError extends Schema.TaggedError<ToolError>()("ToolError", {
  reason: Schema.Literals(["UnknownTool", "InvalidArguments", "InvalidResponse", "Failed", "NoStore"]),
  /** The tool the model named. */
  tool: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** One tool call of a model's answer: `arguments` is the JSON object the model produced. */
export const ToolCall = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  arguments: Schema.Record(Schema.String, Schema.Json)
})
export type ToolCall = typeof ToolCall.Type

/** A model's answer when it was offered tools: its text (if any) and the tools it wants called. */
export const Answer = Schema.Struct({
  content: Schema.NullOr(Schema.String),
  toolCalls: Schema.Array(ToolCall)
})
export type Answer = typeof Answer.Type

/** The Json column of answers (what provider functions with `tools` return). */
export const AnswerColumn: Column.JsonColumn<Answer> = Column.Json(Answer)

const Results = Schema.Record(Schema.String, Schema.Array(Schema.Json))

/** What `invoke` computes: each called tool's results, in the order of the calls. */
export type Results = typeof Results.Type

const ResultsColumn: Column.JsonColumn<Results, true> = Column.nullable(Column.Json(Results))

/** A JSON Schema document (an object). */
export type JsonSchema = { readonly [key: string]: unknown }

/** A tool as providers send it: OpenAI's `function` and Anthropic's tool have these three fields. */
export interface Spec {
  readonly name: string
  readonly description: string | undefined
  /** The JSON Schema of the arguments object. */
  readonly parameters: JsonSchema
}

/** A tool: what the model sees (`Spec`) and how Tessera runs it. */
export interface Tool extends Spec {
  readonly _tag: "Tool"
  readonly params: ReadonlyArray<Fn.Param>
  /** What runs (`fn:<name>@<version>`, `query:<name>@<version>`): part of the identity of functions using it. */
  readonly source: string
  /** Runs the tool on arguments already decoded per parameter; succeeds with a JSON value. */
  readonly run: (args: Readonly<Record<string, unknown>>) => Effect.Effect<Schema.Json, ToolError>
}

/** A set of tools to offer a model, and to run with `invoke`. */
export interface Tools {
  readonly _tag: "Tools"
  readonly tools: ReadonlyArray<Tool>
  readonly specs: ReadonlyArray<Spec>
  /** A short hash of the tools' names, sources and parameters, for function names. */
  readonly key: string
}

/** What a tool needs of a Tessera function: its definition (any `Fn.Fn` has one). */
export interface FunctionLike {
  readonly definition: Fn.Definition
}

type ParamSpecs = Record<string, Column.Any>
type ArgsOf<P extends ParamSpecs> = { readonly [K in keyof P]: Column.ValueOf<P[K]> }

// OpenAI's rule for tool names (Anthropic's is the same).
const TOOL_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/

const fnv1a = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return (hash >>> 0).toString(16).padStart(8, "0")
}

const checkName = (name: string): string => {
  if (!TOOL_NAME_RE.test(name)) {
    throw new Error(`Invalid tool name ${JSON.stringify(name)}: use 1 to 64 letters, digits, _ or -`)
  }
  return name
}

// ---------------------------------------------------------------------------
// Column types as JSON Schema
// ---------------------------------------------------------------------------

const arraySchema = (shape: ReadonlyArray<number | null>, dtype: ColumnType.ArrayDtype): JsonSchema => {
  if (shape.length === 0) {
    return {
      type: dtype === "Float" ? "number" : dtype === "Int" ? "integer" : dtype === "Bool" ? "boolean" : "string"
    }
  }
  const dim = shape[0]
  return {
    type: "array",
    items: arraySchema(shape.slice(1), dtype),
    ...(dim === null || dim === undefined ? {} : { minItems: dim, maxItems: dim })
  }
}

const jsonColumnSchema = (type: ColumnType.ColumnType): JsonSchema => {
  const schema = ColumnType.jsonSchemaOf(type)
  if (schema === undefined) return {}
  const document = Schema.toJsonSchemaDocument(schema)
  return Object.keys(document.definitions).length === 0
    ? document.schema
    : { ...document.schema, $defs: document.definitions }
}

const media = (kind: string) => ({ type: "string", description: `a local path or URL of ${kind}` })

/** The JSON Schema of the values of a column type (what a model must send for a parameter). */
export const jsonSchema = (type: ColumnType.ColumnType): JsonSchema => {
  switch (type.kind) {
    case "String":
      return { type: "string" }
    case "Int":
      return { type: "integer" }
    case "Float":
      return { type: "number" }
    case "Bool":
      return { type: "boolean" }
    case "Timestamp":
      return { type: "string", format: "date-time" }
    case "Date":
      return { type: "string", format: "date" }
    case "UUID":
      return { type: "string", format: "uuid" }
    case "Json":
      return jsonColumnSchema(type)
    case "Array":
      return arraySchema(type.shape, type.dtype)
    case "Vector":
      return { type: "array", items: { type: "number" }, minItems: type.dim, maxItems: type.dim }
    case "Binary":
      return { type: "string", contentEncoding: "base64" }
    case "Image":
      return media("an image")
    case "Video":
      return media("a video")
    case "Audio":
      return media("an audio file")
    case "Document":
      return media("a document")
  }
}

const nullableSchema = (schema: JsonSchema): JsonSchema =>
  typeof schema.type === "string" ? { ...schema, type: [schema.type, "null"] } : { anyOf: [schema, { type: "null" }] }

/** The JSON Schema of an arguments object: a property per parameter, the non-nullable ones required. */
export const parametersSchema = (params: ReadonlyArray<Fn.Param>): JsonSchema => ({
  type: "object",
  properties: Object.fromEntries(
    params.map((p) => [p.name, p.nullable ? nullableSchema(jsonSchema(p.type)) : jsonSchema(p.type)])
  ),
  required: params.filter((p) => !p.nullable).map((p) => p.name),
  additionalProperties: false
})

// ---------------------------------------------------------------------------
// Arguments in, results out
// ---------------------------------------------------------------------------

/**
 * The model's arguments as a row in parameter order, each checked and decoded
 * like an inserted value (a Timestamp string becomes a Date, base64 becomes
 * Binary, ...). Arguments the tool does not take are ignored.
 */
export const decodeArguments = (
  tool: string,
  params: ReadonlyArray<Fn.Param>,
  args: Readonly<Record<string, unknown>>
): Effect.Effect<ReadonlyArray<unknown>, ToolError> => {
  const row: Array<unknown> = []
  for (const param of params) {
    const value = args[param.name]
    if (value === undefined || value === null) {
      if (param.nullable) {
        row.push(null)
        continue
      }
      return Effect.fail(
        new ToolError({ reason: "InvalidArguments", tool, message: `${tool}: missing argument ${param.name}` })
      )
    }
    const input =
      param.type.kind === "Binary" && typeof value === "string" ? new Uint8Array(Buffer.from(value, "base64")) : value
    const checked = ColumnType.validate(param.type, input)
    if (checked._tag === "Failure") {
      return Effect.fail(
        new ToolError({
          reason: "InvalidArguments",
          tool,
          message: `${tool}: argument ${param.name} (${ColumnType.show(param.type)}): ${checked.failure}`
        })
      )
    }
    row.push(checked.success)
  }
  return Effect.succeed(row)
}

/** A value as JSON: vectors become arrays, dates ISO strings, bytes base64, media references their URI. */
export const toJson = (value: unknown): Schema.Json => {
  if (value === null || value === undefined) return null
  if (typeof value === "string" || typeof value === "boolean") return value
  if (typeof value === "number") return Number.isFinite(value) ? value : null
  if (typeof value === "bigint") return Number(value)
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64")
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>, toJson)
  if (Array.isArray(value)) return value.map(toJson)
  // Handles such as query results' media references say how they serialise.
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return toJson((value as { toJSON(): unknown }).toJSON())
  }
  if (typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]))
  }
  return String(value)
}

const failed = (tool: string) => (cause: unknown) => {
  const { type, message } = Fn.describeError(cause)
  return new ToolError({ reason: "Failed", tool, message: `${tool}: ${type}: ${message}`, cause })
}

/** Calls a function on one argument row as a computed column would: its pool, permits and retries. */
const callFunction = Effect.fnUntraced(function* (definition: Fn.Definition, row: ReadonlyArray<unknown>) {
  const pools = yield* Pool.Pools
  const pool = pools.pool(definition.pool, definition.rateLimit)
  if (definition.rateLimitHeaders) pool.expectHeaders()
  const permits = pools.semaphore(`${definition.name}@${definition.version}`, definition.concurrency)
  const once = definition
    .invoke([row])
    .pipe(
      (attempt) => pool.request(attempt, { tokens: definition.estimateTokens?.([row]) ?? 0 }),
      Semaphore.withPermit(permits),
      Effect.provideService(Pool.CurrentPool, pool)
    )
  const results = yield* definition.retry === undefined ? once : Effect.retry(once, definition.retry)
  const result = results[0]
  if (result instanceof Fn.RowFailure) return yield* Effect.fail(result.error)
  return result
})

// ---------------------------------------------------------------------------
// Making tools
// ---------------------------------------------------------------------------

/**
 * A Tessera function as a tool. Its name defaults to the function's, with
 * characters models do not accept replaced by `_`.
 */
export const fn = (
  f: FunctionLike,
  options?: { readonly name?: string | undefined; readonly description?: string | undefined }
): Tool => {
  const { definition } = f
  const name = checkName(options?.name ?? definition.name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64))
  return {
    _tag: "Tool",
    name,
    description: options?.description,
    params: definition.params,
    parameters: parametersSchema(definition.params),
    source: `fn:${definition.name}@${definition.version}`,
    run: (args) =>
      callFunction(
        definition,
        definition.params.map((p) => args[p.name])
      ).pipe(Effect.mapError(failed(name)), Effect.map(toJson))
  }
}

/**
 * A saved query as a tool: a query parameterised by `params`, e.g.
 * `Tools.query({ name: "find_docs", params: { q: Column.String }, run: ({ q }) => docs.where((c) => c.title.contains(q)).collect() })`.
 * Its rows (any value, made JSON) are the tool's result. It reads the store
 * of the process that runs it (see the module comment).
 */
export const query = <P extends ParamSpecs, A, E>(options: {
  readonly name: string
  readonly description?: string | undefined
  /** Bump when `run` changes what it returns. */
  readonly version?: number | undefined
  readonly params: P
  readonly run: (args: ArgsOf<P>) => Effect.Effect<A, E, Store>
}): Tool => {
  const name = checkName(options.name)
  const params: ReadonlyArray<Fn.Param> = Object.entries(options.params).map(([param, column]) => ({
    name: param,
    type: column.type,
    nullable: column.nullable
  }))
  return {
    _tag: "Tool",
    name,
    description: options.description,
    params,
    parameters: parametersSchema(params),
    source: `query:${name}@${options.version ?? 1}`,
    run: Effect.fnUntraced(function* (args) {
      const store = yield* Effect.serviceOption(Store)
      if (Option.isNone(store)) {
        return yield* new ToolError({
          reason: "NoStore",
          tool: name,
          message: `${name}: a saved query runs where the engine computes (insert, backfill, a stage); there is no Store here`
        })
      }
      const rows = yield* options
        .run(args as ArgsOf<P>)
        .pipe(Effect.provideService(Store, store.value), Effect.mapError(failed(name)))
      return toJson(rows)
    })
  }
}

const isTool = (u: FunctionLike | Tool): u is Tool => (u as Tool)._tag === "Tool"

/** Tools from functions and saved queries (`pxt.tools(...)`); names must be distinct. */
export const make = (...entries: ReadonlyArray<FunctionLike | Tool>): Tools => {
  const tools = entries.map((entry) => (isTool(entry) ? entry : fn(entry)))
  const seen = new Set<string>()
  for (const tool of tools) {
    if (seen.has(tool.name)) throw new Error(`Two tools are named ${tool.name}`)
    seen.add(tool.name)
  }
  return {
    _tag: "Tools",
    tools,
    specs: tools.map(({ name, description, parameters }) => ({ name, description, parameters })),
    key: fnv1a(JSON.stringify(tools.map((t) => [t.name, t.source, t.parameters])))
  }
}

// ---------------------------------------------------------------------------
// Running the tools a model chose
// ---------------------------------------------------------------------------

const decodeAnswer = Schema.decodeUnknownEffect(Answer)

/** Runs one call: the tool by name, on its decoded arguments. */
const runCall = (byName: ReadonlyMap<string, Tool>, call: ToolCall): Effect.Effect<Schema.Json, ToolError> => {
  const tool = byName.get(call.name)
  if (tool === undefined) {
    return Effect.fail(
      new ToolError({
        reason: "UnknownTool",
        tool: call.name,
        message: `the model called ${call.name}, which is not one of ${[...byName.keys()].join(", ")}`
      })
    )
  }
  return Effect.flatMap(decodeArguments(tool.name, tool.params, call.arguments), (row) =>
    tool.run(Object.fromEntries(tool.params.map((p, i) => [p.name, row[i]])))
  )
}

/**
 * Runs the tools a model chose: `Tools.invoke(tools)({ response: t.c.answer })`
 * over an answer of a provider function called with the same `tools`
 * computes `{ <tool name>: [result, ...] }` (one result per call, in order),
 * or null when the model called no tool. The calls run at once (each within
 * its function's limits). A call to an unknown tool, with invalid arguments,
 * or that fails, fails the cell with a `ToolError`.
 */
export const invoke = (
  tools: Tools,
  options?: { readonly name?: string | undefined; readonly concurrency?: number | undefined }
): Fn.Fn<{ readonly response: Column.JsonColumn<Answer> }, Results | null> => {
  const byName = new Map(tools.tools.map((t) => [t.name, t] as const))
  return Fn.effect({
    name: options?.name ?? `tools.invoke:${tools.key}`,
    params: { response: AnswerColumn },
    returns: ResultsColumn,
    // Tools read tables and call models: the same answer may give other results later.
    deterministic: false,
    concurrency: options?.concurrency,
    run: Effect.fnUntraced(function* ({ response }) {
      const answer = yield* Effect.mapError(
        decodeAnswer(response),
        (error) =>
          new ToolError({ reason: "InvalidResponse", tool: "", message: `not a model answer: ${error.message}` })
      )
      if (answer.toolCalls.length === 0) return null
      // The calls are independent: they run at once, each within its function's own
      // concurrency and rate limits; the first failure interrupts the others.
      const outcomes = yield* Effect.forEach(answer.toolCalls, (call) => runCall(byName, call), {
        concurrency: "unbounded"
      })
      const results: Record<string, Array<Schema.Json>> = {}
      answer.toolCalls.forEach((call, i) => {
        results[call.name] = [...(results[call.name] ?? []), outcomes[i]!]
      })
      return results
    })
  })
}
