/**
 * ColumnType: the serialisable description of what a column holds, and the
 * checks that turn user input into stored values (or say precisely why not).
 *
 * Types are plain data so that they persist in the catalog as JSON. A Json
 * column typed by an Effect `Schema` keeps the schema's representation, so a
 * process that reopens the table validates values without the user's code.
 */
import { Predicate, Result, Schema, SchemaRepresentation } from "effect"
import * as Media from "./Media.ts"

export type ArrayDtype = "Float" | "Int" | "Bool" | "String"

export type ColumnType =
  | { readonly kind: "String" }
  | { readonly kind: "Int" }
  | { readonly kind: "Float" }
  | { readonly kind: "Bool" }
  | { readonly kind: "Timestamp" }
  | { readonly kind: "Date" }
  | { readonly kind: "UUID" }
  | { readonly kind: "Json"; readonly schema?: Schema.Json | undefined }
  | { readonly kind: "Array"; readonly shape: ReadonlyArray<number | null>; readonly dtype: ArrayDtype }
  | { readonly kind: "Vector"; readonly dim: number }
  | { readonly kind: "Binary" }
  | { readonly kind: "Image" }
  | { readonly kind: "Video" }
  | { readonly kind: "Audio" }
  | { readonly kind: "Document" }

export type Kind = ColumnType["kind"]

export const String: ColumnType = { kind: "String" }
export const Int: ColumnType = { kind: "Int" }
export const Float: ColumnType = { kind: "Float" }
export const Bool: ColumnType = { kind: "Bool" }
export const Timestamp: ColumnType = { kind: "Timestamp" }
export const Date: ColumnType = { kind: "Date" }
export const UUID: ColumnType = { kind: "UUID" }
export const Binary: ColumnType = { kind: "Binary" }
export const Image: ColumnType = { kind: "Image" }
export const Video: ColumnType = { kind: "Video" }
export const Audio: ColumnType = { kind: "Audio" }
export const Document: ColumnType = { kind: "Document" }
export const Json = (schema?: Schema.Top): ColumnType =>
  schema === undefined ? { kind: "Json" } : { kind: "Json", schema: schemaToJson(schema) }
export const Array = (shape: ReadonlyArray<number | null>, dtype: ArrayDtype): ColumnType => ({
  kind: "Array",
  shape,
  dtype
})
export const Vector = (dim: number): ColumnType => ({ kind: "Vector", dim })

export const isNumeric = (t: ColumnType): boolean => t.kind === "Int" || t.kind === "Float"
export const isMedia = (t: ColumnType): boolean =>
  t.kind === "Image" || t.kind === "Video" || t.kind === "Audio" || t.kind === "Document"

/** A short human name for messages, e.g. `Vector(384)` or `Array([3, null], Float)`. */
export const show = (t: ColumnType): string => {
  switch (t.kind) {
    case "Vector":
      return `Vector(${t.dim})`
    case "Array":
      return `Array([${t.shape.map((d) => (d === null ? "null" : d)).join(", ")}], ${t.dtype})`
    case "Json":
      return t.schema === undefined ? "Json" : "Json(schema)"
    default:
      return t.kind
  }
}

export const equals = (a: ColumnType, b: ColumnType): boolean => JSON.stringify(a) === JSON.stringify(b)

/** Persists an Effect Schema as JSON (its representation). */
export const schemaToJson = (schema: Schema.Top): Schema.Json =>
  SchemaRepresentation.toJson(SchemaRepresentation.toRepresentation(schema.ast))

const revived = new WeakMap<object, Schema.Top>()

// Every reviver Effect ships (checks such as isInt, declarations such as Date),
// so that a persisted schema comes back with its refinements.
const revivers = Object.entries(SchemaRepresentation)
  .filter(([name]) => name.endsWith("Reviver"))
  .map(([, reviver]) => reviver) as unknown as ReadonlyArray<SchemaRepresentation.AnyReviver>

/** The Effect Schema of a typed Json column, rebuilt from its persisted form (cached). */
export const jsonSchemaOf = (t: ColumnType): Schema.Top | undefined => {
  if (t.kind !== "Json" || t.schema === undefined) return undefined
  const key = t.schema as object
  let schema = revived.get(key)
  if (schema === undefined) {
    schema = SchemaRepresentation.fromRepresentation(SchemaRepresentation.fromJson(t.schema), { revivers })
    revived.set(key, schema)
  }
  return schema
}

/** Registers the user's own schema object for a type, so validation uses it directly. */
export const attachSchema = (t: ColumnType, schema: Schema.Top): void => {
  if (t.kind === "Json" && t.schema !== undefined) revived.set(t.schema as object, schema)
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/

const describe = (value: unknown): string => {
  if (value === null) return "null"
  if (value instanceof globalThis.Date) return "a Date"
  if (value instanceof Float32Array) return `a Float32Array(${value.length})`
  if (value instanceof Uint8Array) return "a Uint8Array"
  if (globalThis.Array.isArray(value)) return `an array of length ${value.length}`
  if (typeof value === "string")
    return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`
  return `${typeof value === "object" ? "an object" : `a ${typeof value}`}${typeof value === "number" ? ` (${value})` : ""}`
}

const expected = (what: string, value: unknown) => Result.fail(`expected ${what}, got ${describe(value)}`)

const isJsonValue = (value: unknown, depth = 0): boolean => {
  if (depth > 200) return false
  if (value === null || typeof value === "string" || typeof value === "boolean") return true
  if (typeof value === "number") return Number.isFinite(value)
  if (globalThis.Array.isArray(value)) return value.every((v) => isJsonValue(v, depth + 1))
  if (Predicate.isObject(value) && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.values(value).every((v) => isJsonValue(v, depth + 1))
  }
  return false
}

const checkArray = (
  value: unknown,
  shape: ReadonlyArray<number | null>,
  dtype: ArrayDtype,
  at: string
): string | undefined => {
  if (shape.length === 0) {
    switch (dtype) {
      case "Float":
        return typeof value === "number" && Number.isFinite(value) ? undefined : `${at}: expected a finite number`
      case "Int":
        return Number.isSafeInteger(value) ? undefined : `${at}: expected an integer`
      case "Bool":
        return typeof value === "boolean" ? undefined : `${at}: expected a boolean`
      case "String":
        return typeof value === "string" ? undefined : `${at}: expected a string`
    }
  }
  if (!globalThis.Array.isArray(value) && !(value instanceof Float32Array && shape.length === 1)) {
    return `${at}: expected an array, got ${describe(value)}`
  }
  const items = value as ArrayLike<unknown>
  const dim = shape[0]
  if (dim !== null && dim !== undefined && items.length !== dim) {
    return `${at}: expected length ${dim}, got ${items.length}`
  }
  for (let i = 0; i < items.length; i++) {
    const problem = checkArray(items[i], shape.slice(1), dtype, `${at}[${i}]`)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** Why a value was refused by a `Checker`. */
export class Invalid {
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

/** A fast check of non-null values of one type: the value to store, or `Invalid`. */
export type Checker = (value: unknown) => unknown

/** A `Checker` for type `t`, with allocation-free fast paths for the scalar types. */
export const checker = (t: ColumnType): Checker => {
  switch (t.kind) {
    case "String":
      return (v) => (typeof v === "string" ? v : new Invalid(`expected a string, got ${describe(v)}`))
    case "Int":
      return (v) => (typeof v === "number" && Number.isSafeInteger(v) ? v : fromResult(validate(t, v)))
    case "Float":
      return (v) =>
        typeof v === "number" && !Number.isNaN(v) ? v : new Invalid(`expected a number, got ${describe(v)}`)
    case "Bool":
      return (v) => (typeof v === "boolean" ? v : new Invalid(`expected a boolean, got ${describe(v)}`))
    default:
      return (v) => fromResult(validate(t, v))
  }
}

const fromResult = (r: Result.Result<unknown, string>): unknown =>
  Result.isSuccess(r) ? r.success : new Invalid(r.failure)

/**
 * Checks (and normalises) a non-null input value for a column of type `t`.
 * Succeeds with the value to store; fails with a message saying what was
 * expected and what was found.
 */
export const validate = (t: ColumnType, value: unknown): Result.Result<unknown, string> => {
  switch (t.kind) {
    case "String":
      return typeof value === "string" ? Result.succeed(value) : expected("a string", value)
    case "Int":
      if (typeof value === "bigint") {
        return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Result.succeed(Number(value))
          : expected("a safe integer", value)
      }
      return Number.isSafeInteger(value) ? Result.succeed(value) : expected("an integer", value)
    case "Float":
      return typeof value === "number" && !Number.isNaN(value) ? Result.succeed(value) : expected("a number", value)
    case "Bool":
      return typeof value === "boolean" ? Result.succeed(value) : expected("a boolean", value)
    case "Timestamp": {
      if (value instanceof globalThis.Date) {
        return Number.isNaN(value.getTime()) ? expected("a valid Date", value) : Result.succeed(value)
      }
      if (typeof value === "string" || typeof value === "number") {
        const date = new globalThis.Date(value)
        return Number.isNaN(date.getTime()) ? expected("a timestamp", value) : Result.succeed(date)
      }
      return expected("a Date", value)
    }
    case "Date": {
      if (value instanceof globalThis.Date && !Number.isNaN(value.getTime())) {
        return Result.succeed(value.toISOString().slice(0, 10))
      }
      if (typeof value === "string") {
        const m = DATE_RE.exec(value)
        if (m !== null) {
          const d = new globalThis.Date(`${value}T00:00:00Z`)
          if (!Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === value) return Result.succeed(value)
        }
      }
      return expected("a date (YYYY-MM-DD)", value)
    }
    case "UUID":
      return typeof value === "string" && UUID_RE.test(value)
        ? Result.succeed(value.toLowerCase())
        : expected("a UUID string", value)
    case "Json": {
      if (!isJsonValue(value)) return expected("a JSON value", value)
      const schema = jsonSchemaOf(t)
      if (schema === undefined) return Result.succeed(value)
      const decoded = Schema.decodeUnknownResult(schema as Schema.Codec<unknown, unknown>)(value)
      return Result.isSuccess(decoded)
        ? Result.succeed(value)
        : Result.fail(`does not match its schema: ${decoded.failure.message}`)
    }
    case "Array": {
      const problem = checkArray(value, t.shape, t.dtype, "value")
      return problem === undefined
        ? Result.succeed(value instanceof Float32Array ? globalThis.Array.from(value) : value)
        : Result.fail(problem)
    }
    case "Vector": {
      if (!(value instanceof Float32Array || value instanceof Float64Array || globalThis.Array.isArray(value))) {
        return expected(`a vector of ${t.dim} numbers`, value)
      }
      const v = value as ArrayLike<unknown>
      if (v.length !== t.dim) return expected(`a vector of ${t.dim} numbers`, value)
      for (let i = 0; i < v.length; i++) {
        if (typeof v[i] !== "number" || !Number.isFinite(v[i])) {
          return Result.fail(`vector element ${i} is not a finite number`)
        }
      }
      return Result.succeed(value instanceof Float32Array ? value : Float32Array.from(v as ArrayLike<number>))
    }
    case "Binary":
      return value instanceof Uint8Array ? Result.succeed(value) : expected("a Uint8Array", value)
    case "Image":
    case "Video":
    case "Audio":
    case "Document":
      if (typeof value === "string" && value.length > 0) return Result.succeed(value)
      if (value instanceof URL) return Result.succeed(value.toString())
      // A handle from a query (e.g. rows copied from another table) stands for its reference.
      if (Media.isMediaRef(value)) return Result.succeed(value.uri)
      return expected(`a path or URL for ${t.kind}`, value)
  }
}
