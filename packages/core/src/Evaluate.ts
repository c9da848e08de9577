/**
 * Evaluate: runs an expression tree (`Expr.Node`) over one row in the engine
 * with exactly PostgreSQL's semantics, so that a value computed here and the
 * one computed by the SQL that `@tessera/sql` compiles from the same tree are
 * equal: null propagation and three-valued logic, int8 arithmetic, float8
 * range checks, code point (`COLLATE "C"`) string order, jsonb equality and
 * order, and PostgreSQL's text forms in casts.
 *
 * It is pure and synchronous because it runs per row. A per-row failure
 * (division by zero, an invalid cast) is thrown as an `EvalError`: the engine
 * catches it at its boundary and stores it as the cell's typed error, the same
 * error type it derives from the SQLSTATE when the compiled SQL fails instead.
 * The type rules (`castable`, `comparisonType`, ...) are exported for that
 * compiler, so that both sides convert and compare values alike.
 */
import * as ColumnType from "./ColumnType.ts"
import * as Expr from "./Expr.ts"

/** The error types a row can fail with, matching PostgreSQL's SQLSTATE classes. */
export type ErrorType = "DivisionByZero" | "NumericOutOfRange" | "InvalidCast"

/** A per-row evaluation failure, e.g. `DivisionByZero` or `InvalidCast`. */
export class EvalError extends Error {
  readonly errorType: string

  constructor(errorType: string, message: string) {
    super(message)
    this.errorType = errorType
    this.name = "EvalError"
  }
}

type CallNode = Extract<Expr.Node, { _tag: "Call" }>

/** What an expression reads from its row. */
export interface Env {
  /** The value of a cell (null for SQL NULL). */
  readonly column: (id: number) => unknown
  /** The error type or message of a computed cell (null when it did not fail). */
  readonly error: (id: number, prop: Expr.ErrorProp) => string | null
  /** The result of a user function call, provided by the engine. */
  readonly call: (node: CallNode, args: ReadonlyArray<unknown>) => unknown
}

const noTypes: Expr.ColumnTypes = () => undefined
const JsonType = ColumnType.Json()

/**
 * Evaluates `node` over one row. Values are Tessera's JavaScript
 * representations (Int and Float: number, Timestamp: Date, Date: "YYYY-MM-DD",
 * Json: JSON value, Vector: Float32Array, Binary: Uint8Array), null for SQL
 * NULL. Throws `EvalError` when the row fails.
 */
export const evaluate = (node: Expr.Node, env: Env, types: Expr.ColumnTypes = noTypes): unknown => {
  const typeOf = typeCache(types)

  const go = (node: Expr.Node): unknown => {
    switch (node._tag) {
      case "Column":
        return env.column(node.id) ?? null
      case "Literal":
        return literalValue(node)
      case "Binary":
        return binary(node)
      case "Not": {
        const value = as(node.expr, ColumnType.Bool)
        return value === null ? null : !value
      }
      case "Neg":
        return negate(go(node.expr), typeOf(node.expr))
      case "IsNull":
        return go(node.expr) === null
      case "IsIn":
        return isIn(node)
      case "String":
        return stringFn(
          node.fn,
          node.args.map((arg) => as(arg, ColumnType.String) as string | null)
        )
      case "JsonPath":
        // An index no element can have is null outright, as SQL compiles it.
        return node.path.some(unmatchable) ? null : jsonPath(as(node.expr, JsonType), node.path)
      case "Cast": {
        const from = typeOf(node.expr)
        if (!castable(from, node.to)) throw cannotCast(from, node.to)
        return cast(go(node.expr), from, node.to)
      }
      case "Call":
        return env.call(node, node.args.map(go)) ?? null
      case "ErrorProp":
        return env.error(node.id, node.prop) ?? null
      case "Similarity":
        throw new EvalError("InvalidExpression", `${node.name}.similarity must be resolved against its index first`)
      case "Embedding":
        throw new EvalError("InvalidExpression", `${node.name}.embedding must be resolved against its index first`)
      case "TextSearch":
        throw new EvalError("InvalidExpression", `full-text search on ${node.name} is evaluated by the database only`)
      case "VectorScore": {
        const value = env.column(node.id)
        if (value === null || value === undefined) return null
        return vectorScore(value as ArrayLike<number>, node.vector, node.metric, node.precision)
      }
    }
  }

  /** The value of `node` as a value of type `to`, converted as a cast would. */
  const as = (node: Expr.Node, to: ColumnType.ColumnType): unknown => {
    const from = typeOf(node)
    const value = go(node)
    return sameClass(from, to) ? value : cast(value, from, to)
  }

  const binary = (node: Extract<Expr.Node, { _tag: "Binary" }>): unknown => {
    switch (node.op) {
      case "and": {
        const left = as(node.left, ColumnType.Bool)
        if (left === false) return false
        const right = as(node.right, ColumnType.Bool)
        if (right === false) return false
        return left === null || right === null ? null : true
      }
      case "or": {
        const left = as(node.left, ColumnType.Bool)
        if (left === true) return true
        const right = as(node.right, ColumnType.Bool)
        if (right === true) return true
        return left === null || right === null ? null : false
      }
      case "=":
      case "!=":
      case "<":
      case "<=":
      case ">":
      case ">=": {
        const leftType = typeOf(node.left)
        const rightType = typeOf(node.right)
        const type = comparisonType([leftType, rightType])
        const left = go(node.left)
        const right = go(node.right)
        if (left === null || right === null) return null
        const c = compare(type, comparable(left, leftType, type), comparable(right, rightType, type))
        return comparisonResult(node.op, c)
      }
      default: {
        const type = typeOf(node)
        const left = as(node.left, type)
        const right = as(node.right, type)
        if (left === null || right === null) return null
        return type.kind === "Int"
          ? intArithmetic(node.op, left as number, right as number)
          : floatArithmetic(node.op, left as number, right as number)
      }
    }
  }

  const isIn = (node: Extract<Expr.Node, { _tag: "IsIn" }>): boolean | null => {
    // Like `x = ANY('{}')`: an empty list is false, whatever x is.
    if (node.values.length === 0) return false
    const exprType = typeOf(node.expr)
    const valueTypes = node.values.map(typeOf)
    const type = comparisonType([exprType, ...valueTypes])
    const value = go(node.expr)
    const candidates = node.values.map(go)
    if (value === null) return null
    const x = comparable(value, exprType, type)
    let sawNull = false
    for (let i = 0; i < candidates.length; i++) {
      const candidate = candidates[i]
      if (candidate === null) sawNull = true
      else if (compare(type, x, comparable(candidate, valueTypes[i]!, type)) === 0) return true
    }
    return sawNull ? null : false
  }

  return go(node)
}

const typeCaches = new WeakMap<Expr.ColumnTypes, WeakMap<Expr.Node, ColumnType.ColumnType>>()

/** `Expr.typeOf`, remembered per tree node (evaluation runs once per row). */
const typeCache = (types: Expr.ColumnTypes): ((node: Expr.Node) => ColumnType.ColumnType) => {
  let cache = typeCaches.get(types)
  if (cache === undefined) {
    cache = new WeakMap()
    typeCaches.set(types, cache)
  }
  const nodes = cache
  return (node) => {
    let type = nodes.get(node)
    if (type === undefined) {
      type = Expr.typeOf(node, types)
      nodes.set(node, type)
    }
    return type
  }
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

const isText = (t: ColumnType.ColumnType): boolean => t.kind === "String" || ColumnType.isMedia(t)
const isJson = (t: ColumnType.ColumnType): boolean => t.kind === "Json" || t.kind === "Array"

/** Whether values of `from` are already values of `to` (no conversion). */
export const sameClass = (from: ColumnType.ColumnType, to: ColumnType.ColumnType): boolean =>
  from.kind === to.kind || (isText(from) && isText(to)) || (isJson(from) && isJson(to))

/** Whether a cast from `from` to `to` exists (in the engine and in SQL alike). */
export const castable = (from: ColumnType.ColumnType, to: ColumnType.ColumnType): boolean => {
  if (sameClass(from, to)) return true
  switch (to.kind) {
    case "String":
    case "Json":
    case "Array":
      return true
    case "Int":
    case "Float":
    case "Bool":
      return isText(from) || isJson(from) || ColumnType.isNumeric(from) || from.kind === "Bool"
    case "Image":
    case "Video":
    case "Audio":
    case "Document":
      return isText(from)
    default:
      return false
  }
}

/**
 * The type values of `types` are compared as (in `=`, `<`, `isIn`, ...):
 * Json if any is Json (the others become JSON values), Int or Float for
 * numbers, String for text, the type itself when all agree, and their text
 * forms otherwise.
 */
export const comparisonType = (types: ReadonlyArray<ColumnType.ColumnType>): ColumnType.ColumnType => {
  if (types.some(isJson)) return JsonType
  if (types.every(ColumnType.isNumeric)) return types.every((t) => t.kind === "Int") ? ColumnType.Int : ColumnType.Float
  if (types.every(isText)) return ColumnType.String
  const first = types[0]!
  return types.every((t) => t.kind === first.kind) ? first : ColumnType.String
}

/** A non-null value of type `from` as a value of the comparison type `to`. */
const comparable = (value: unknown, from: ColumnType.ColumnType, to: ColumnType.ColumnType): unknown =>
  sameClass(from, to) ? value : isJson(to) ? toJson(value, from, false) : cast(value, from, to)

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

const divisionByZero = () => new EvalError("DivisionByZero", "division by zero")
const outOfRange = (message: string) => new EvalError("NumericOutOfRange", message)
const invalidText = (type: string, text: string) =>
  new EvalError("InvalidCast", `invalid input syntax for type ${type}: ${JSON.stringify(text)}`)
const cannotCast = (from: ColumnType.ColumnType, to: ColumnType.ColumnType) =>
  new EvalError("InvalidCast", `cannot cast ${ColumnType.show(from)} to ${ColumnType.show(to)}`)
const jsonKind = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return "array"
  switch (typeof value) {
    case "number":
      return "numeric"
    case "object":
      return "object"
    default:
      return typeof value
  }
}
const cannotCastJson = (value: unknown, type: string) =>
  new EvalError("InvalidCast", `cannot cast jsonb ${jsonKind(value)} to type ${type}`)

// ---------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------

const literalCache = new WeakMap<Expr.Node, unknown>()

/** A literal's value in Tessera's representation of its type. */
const literalValue = (node: Extract<Expr.Node, { _tag: "Literal" }>): unknown => {
  if (literalCache.has(node)) return literalCache.get(node)
  const value = normalizeLiteral(node.value, node.type)
  literalCache.set(node, value)
  return value
}

const normalizeLiteral = (value: unknown, type: ColumnType.ColumnType): unknown => {
  if (value === null || value === undefined) return null
  switch (type.kind) {
    case "Int":
      return typeof value === "bigint" ? Number(value) : value
    case "Timestamp":
      return value instanceof Date ? value : new Date(value as string | number)
    case "Date":
      return value instanceof Date ? value.toISOString().slice(0, 10) : value
    case "UUID":
      return (value as string).toLowerCase()
    case "Json":
    case "Array":
      return normalizeJson(value)
    default:
      return value
  }
}

/** A JSON value as jsonb stores it: numbers are decimals, so there is no -0. */
const normalizeJson = (value: unknown): unknown => {
  if (typeof value === "number") return value === 0 ? 0 : value
  if (Array.isArray(value)) return value.map(normalizeJson)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = normalizeJson(v)
    return out
  }
  return value
}

// ---------------------------------------------------------------------------
// Arithmetic
// ---------------------------------------------------------------------------

const INT8_MIN = -(2n ** 63n)
const INT8_MAX = 2n ** 63n - 1n

const int8 = (value: bigint): number => {
  if (value < INT8_MIN || value > INT8_MAX) throw outOfRange("bigint out of range")
  return Number(value)
}

/** int8 arithmetic: exact (through bigint when beyond 2^53), truncating division. */
const intArithmetic = (op: Expr.ArithmeticOp, a: number, b: number): number => {
  switch (op) {
    case "+": {
      const r = a + b
      return Number.isSafeInteger(r) ? r + 0 : int8(BigInt(a) + BigInt(b))
    }
    case "-": {
      const r = a - b
      return Number.isSafeInteger(r) ? r + 0 : int8(BigInt(a) - BigInt(b))
    }
    case "*": {
      const r = a * b
      return Number.isSafeInteger(r) ? r + 0 : int8(BigInt(a) * BigInt(b))
    }
    case "/":
      if (b === 0) throw divisionByZero()
      // Below 2^53 the rounding of a / b never crosses an integer, so trunc is exact.
      return Number.isSafeInteger(a) && Number.isSafeInteger(b) ? Math.trunc(a / b) + 0 : int8(BigInt(a) / BigInt(b))
    case "%":
      if (b === 0) throw divisionByZero()
      return (a % b) + 0
  }
}

const isInfinite = (x: number): boolean => x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY

/** float8 arithmetic with PostgreSQL's overflow, underflow and zero-division checks. */
const floatArithmetic = (op: Expr.ArithmeticOp, a: number, b: number): number => {
  let r: number
  switch (op) {
    case "+":
      r = a + b
      if (isInfinite(r) && !isInfinite(a) && !isInfinite(b)) throw outOfRange("value out of range: overflow")
      return r
    case "-":
      r = a - b
      if (isInfinite(r) && !isInfinite(a) && !isInfinite(b)) throw outOfRange("value out of range: overflow")
      return r
    case "*":
      r = a * b
      if (isInfinite(r) && !isInfinite(a) && !isInfinite(b)) throw outOfRange("value out of range: overflow")
      if (r === 0 && a !== 0 && b !== 0) throw outOfRange("value out of range: underflow")
      return r
    case "/":
      if (b === 0 && !Number.isNaN(a)) throw divisionByZero()
      r = a / b
      if (isInfinite(r) && !isInfinite(a)) throw outOfRange("value out of range: overflow")
      if (r === 0 && a !== 0 && !isInfinite(b)) throw outOfRange("value out of range: underflow")
      return r
    case "%":
      return floatMod(a, b)
  }
}

/**
 * `mod(a::numeric, b::numeric)::float8`: each operand becomes the decimal
 * PostgreSQL converts a float8 to (15 significant digits), the remainder is
 * exact, and the result is the nearest float8.
 */
const floatMod = (a: number, b: number): number => {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.NaN
  if (isInfinite(a)) {
    if (b === 0) throw divisionByZero()
    return Number.NaN
  }
  const x = toNumeric(a)
  if (isInfinite(b)) return decimalToNumber(x.coef, x.exp)
  if (b === 0) throw divisionByZero()
  const y = toNumeric(b)
  const exp = Math.min(x.exp, y.exp)
  const xs = x.coef * 10n ** BigInt(x.exp - exp)
  const ys = y.coef * 10n ** BigInt(y.exp - exp)
  return decimalToNumber(xs % ys, exp)
}

interface Decimal {
  /** value = coef * 10^exp */
  readonly coef: bigint
  readonly exp: number
}

const decimalToNumber = (coef: bigint, exp: number): number => Number(`${coef}e${exp}`)

/** The exact decimal value of a finite float8. */
const exactDecimal = (x: number): Decimal => {
  if (x === 0) return { coef: 0n, exp: 0 }
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, Math.abs(x))
  const bits = view.getBigUint64(0)
  const biased = Number(bits >> 52n)
  let mantissa = bits & ((1n << 52n) - 1n)
  let exp2 = -1074
  if (biased !== 0) {
    mantissa |= 1n << 52n
    exp2 = biased - 1075
  }
  const sign = x < 0 ? -1n : 1n
  return exp2 >= 0
    ? { coef: sign * (mantissa << BigInt(exp2)), exp: 0 }
    : { coef: sign * mantissa * 5n ** BigInt(-exp2), exp: exp2 }
}

/** `x::numeric`: the float8 printed with 15 significant digits (`%.15g`, ties to even). */
const toNumeric = (x: number): Decimal => {
  const exact = exactDecimal(x)
  const negative = exact.coef < 0n
  const magnitude = negative ? -exact.coef : exact.coef
  const extra = magnitude.toString().length - 15
  if (extra <= 0) return exact
  const unit = 10n ** BigInt(extra)
  let q = magnitude / unit
  const rest = magnitude % unit
  const half = unit / 2n
  if (rest > half || (rest === half && (q & 1n) === 1n)) q += 1n
  return { coef: negative ? -q : q, exp: exact.exp + extra }
}

const negate = (value: unknown, type: ColumnType.ColumnType): unknown => {
  if (value === null) return null
  switch (type.kind) {
    case "Int":
      return -(value as number) + 0
    case "Json":
    case "Array":
      return toJson(-toFloat(value, type), ColumnType.Float, false)
    default:
      return -(cast(value, type, ColumnType.Float) as number)
  }
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

const comparisonResult = (op: Expr.ComparisonOp, c: number): boolean => {
  switch (op) {
    case "=":
      return c === 0
    case "!=":
      return c !== 0
    case "<":
      return c < 0
    case "<=":
      return c <= 0
    case ">":
      return c > 0
    case ">=":
      return c >= 0
  }
}

/** float8 order: NaN equals NaN and sorts above every other value; -0 equals 0. */
const compareFloat = (a: number, b: number): number => {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1
  if (Number.isNaN(b)) return -1
  return a < b ? -1 : a > b ? 1 : 0
}

/** UTF-16 code units remapped so that they sort in code point order. */
const codePointKey = (unit: number): number =>
  unit >= 0xd800 && unit <= 0xdfff ? unit + 0x2000 : unit >= 0xe000 ? unit - 0x800 : unit

/** Code point order, as UTF-8 bytes compare under `COLLATE "C"`. */
export const compareText = (a: string, b: string): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codePointKey(x) < codePointKey(y) ? -1 : 1
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

const timeOf = (value: unknown): number =>
  value instanceof Date ? value.getTime() : new Date(value as string | number).getTime()

const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

/** pgvector's order: element by element, then the shorter first. */
const compareVectors = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    if (a[i]! < b[i]!) return -1
    if (a[i]! > b[i]!) return 1
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

const jsonRank = (value: unknown): number => {
  if (value === null) return 0
  switch (typeof value) {
    case "string":
      return 1
    case "number":
      return 2
    case "boolean":
      return 3
  }
  return Array.isArray(value) ? 4 : 5
}

const utf8Length = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i)
    if (unit < 0x80) n += 1
    else if (unit < 0x800) n += 2
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

/** Object keys in jsonb's storage order: shorter (in UTF-8 bytes) first, then bytewise. */
const jsonbKeys = (object: object): Array<string> =>
  Object.keys(object).sort((a, b) => utf8Length(a) - utf8Length(b) || compareText(a, b))

/**
 * jsonb order: null < string < number < boolean < array < object; arrays by
 * length then elements; objects by number of pairs then keys and values in
 * storage order. At top level an empty array sorts below every scalar (a
 * documented quirk of jsonb's raw scalars).
 */
export const compareJson = (a: unknown, b: unknown, top = true): number => {
  const ra = jsonRank(a)
  const rb = jsonRank(b)
  if (top && ra < 4 && rb === 4 && (b as Array<unknown>).length === 0) return 1
  if (top && rb < 4 && ra === 4 && (a as Array<unknown>).length === 0) return -1
  if (ra !== rb) return ra < rb ? -1 : 1
  switch (ra) {
    case 0:
      return 0
    case 1:
      return compareText(a as string, b as string)
    case 2:
      return compareFloat(a as number, b as number)
    case 3:
      return a === b ? 0 : a ? 1 : -1
    case 4: {
      const x = a as Array<unknown>
      const y = b as Array<unknown>
      if (x.length !== y.length) return x.length < y.length ? -1 : 1
      for (let i = 0; i < x.length; i++) {
        const c = compareJson(x[i], y[i], false)
        if (c !== 0) return c
      }
      return 0
    }
    default: {
      const x = a as Record<string, unknown>
      const y = b as Record<string, unknown>
      const kx = jsonbKeys(x)
      const ky = jsonbKeys(y)
      if (kx.length !== ky.length) return kx.length < ky.length ? -1 : 1
      for (let i = 0; i < kx.length; i++) {
        const ck = compareText(kx[i]!, ky[i]!)
        if (ck !== 0) return ck
        const cv = compareJson(x[kx[i]!], y[ky[i]!], false)
        if (cv !== 0) return cv
      }
      return 0
    }
  }
}

/**
 * Orders two non-null values of `type` as PostgreSQL does (strings under
 * `COLLATE "C"`, floats with NaN last, jsonb's order): negative, zero or
 * positive.
 */
export const compare = (type: ColumnType.ColumnType, a: unknown, b: unknown): number => {
  switch (type.kind) {
    case "Int":
    case "Float":
      return compareFloat(a as number, b as number)
    case "Bool":
      return a === b ? 0 : a ? 1 : -1
    case "Timestamp":
      return compareFloat(timeOf(a), timeOf(b))
    case "Json":
    case "Array":
      return compareJson(a, b)
    case "Vector":
      return compareVectors(a as ArrayLike<number>, b as ArrayLike<number>)
    case "Binary":
      return compareBytes(a as Uint8Array, b as Uint8Array)
    default:
      return compareText(a as string, b as string)
  }
}

// ---------------------------------------------------------------------------
// Strings and JSON paths
// ---------------------------------------------------------------------------

const isTrimmed = (c: string): boolean => c === " " || c === "\t" || c === "\n" || c === "\r"

const trim = (s: string): string => {
  let start = 0
  let end = s.length
  while (start < end && isTrimmed(s[start]!)) start++
  while (end > start && isTrimmed(s[end - 1]!)) end--
  return s.slice(start, end)
}

/** Number of code points, like `char_length`. */
const codePoints = (s: string): number => {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const unit = s.charCodeAt(i)
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
    }
    n++
  }
  return n
}

const stringFn = (fn: Expr.StringFn, args: ReadonlyArray<string | null>): unknown => {
  if (args.some((a) => a === null)) return null
  const [s, t, u] = args as ReadonlyArray<string>
  switch (fn) {
    case "length":
      return codePoints(s)
    case "lower":
      return s.toLowerCase()
    case "upper":
      return s.toUpperCase()
    case "trim":
      return trim(s)
    case "contains":
      return s.includes(t)
    case "startsWith":
      return s.startsWith(t)
    case "endsWith":
      return s.endsWith(t)
    case "replace":
      return t === "" ? s : s.split(t).join(u)
    case "concat":
      return args.join("")
  }
}

const unmatchable = (key: string | number): boolean =>
  typeof key === "number" && (!Number.isInteger(key) || Math.abs(key) > 2 ** 31 - 1)

/** Step by step: a key of an object, an index of an array (negative from the end), else null. */
const jsonPath = (value: unknown, path: ReadonlyArray<string | number>): unknown => {
  let current = value
  for (const key of path) {
    if (current === null || typeof current !== "object") return null
    if (typeof key === "number") {
      if (!Array.isArray(current)) return null
      const index = key < 0 ? current.length + key : key
      current = index >= 0 && index < current.length ? current[index] : null
    } else {
      if (Array.isArray(current) || !Object.hasOwn(current, key)) return null
      current = (current as Record<string, unknown>)[key]
    }
  }
  return current ?? null
}

// ---------------------------------------------------------------------------
// Casts
// ---------------------------------------------------------------------------

/** Casts a value (null stays null); the pair must be `castable`. */
const cast = (value: unknown, from: ColumnType.ColumnType, to: ColumnType.ColumnType): unknown => {
  if (value === null) return null
  if (sameClass(from, to)) return value
  if (!castable(from, to)) throw cannotCast(from, to)
  switch (to.kind) {
    case "String":
    case "Image":
    case "Video":
    case "Audio":
    case "Document":
      return toText(value, from)
    case "Int":
      return toInt(value, from)
    case "Float":
      return toFloat(value, from)
    case "Bool":
      return toBool(value, from)
    case "Json":
    case "Array":
      return toJson(value, from, true)
    default:
      throw cannotCast(from, to)
  }
}

const hex = (bytes: Uint8Array): string => {
  let out = "\\x"
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0")
  return out
}

/** The digits of a number in exponential notation, and the decimal exponent of the first. */
const digitsOf = (exponential: string): { readonly digits: string; readonly exp: number } => {
  const e = exponential.indexOf("e")
  return { digits: exponential.slice(0, e).replace(".", ""), exp: Number(exponential.slice(e + 1)) }
}

/** Digits without an exponent, as numeric prints them. */
const plainDigits = (digits: string, exp: number): string => {
  if (exp < 0) return `0.${"0".repeat(-exp - 1)}${digits}`
  if (exp >= digits.length - 1) return digits + "0".repeat(exp - digits.length + 1)
  return `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`
}

/** PostgreSQL's shortest float format: fixed notation for exponents in [-4, fixedBelow). */
const floatText = (negative: boolean, digits: string, exp: number, fixedBelow: number): string => {
  const body =
    exp >= -4 && exp < fixedBelow
      ? plainDigits(digits, exp)
      : `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ""}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`
  return negative ? `-${body}` : body
}

/** `float8out` (with the default `extra_float_digits`): shortest round-trip digits. */
const float8Text = (x: number): string => {
  if (Number.isNaN(x)) return "NaN"
  if (isInfinite(x)) return x > 0 ? "Infinity" : "-Infinity"
  if (x === 0) return Object.is(x, -0) ? "-0" : "0"
  const { digits, exp } = digitsOf(Math.abs(x).toExponential())
  return floatText(x < 0, digits, exp, 15)
}

/** The shortest decimal that reads back as the float4 `x` (x > 0). */
const float4Digits = (x: number): { readonly digits: string; readonly exp: number } => {
  for (let precision = 1; precision <= 9; precision++) {
    const nearest = digitsOf(x.toExponential(precision - 1))
    const value = Number(`${nearest.digits}e${nearest.exp - precision + 1}`)
    if (Math.fround(value) === x) return nearest
    // Just above a power of two the interval is lopsided: the next decimal up can read back.
    if (value < x) {
      const up = (BigInt(nearest.digits) + 1n).toString()
      const upExp = nearest.exp + (up.length > precision ? 1 : 0)
      if (Math.fround(Number(`${up}e${nearest.exp - precision + 1}`)) === x) {
        return { digits: up.slice(0, precision), exp: upExp }
      }
    }
  }
  return digitsOf(x.toExponential(8))
}

/** `float4out`: how pgvector prints vector elements. */
const float4Text = (x: number): string => {
  if (x === 0) return Object.is(x, -0) ? "-0" : "0"
  const { digits, exp } = float4Digits(Math.abs(x))
  return floatText(x < 0, digits.replace(/0+$/, "") || "0", exp, 6)
}

/** A float4 as the JSON number `to_jsonb` gives it. */
const float4Number = (x: number): number => {
  if (x === 0) return 0
  const { digits, exp } = float4Digits(Math.abs(x))
  return Number(`${x < 0 ? "-" : ""}${digits}e${exp - digits.length + 1}`)
}

/** A JSON number as jsonb prints it (its decimal without exponent). */
const numericText = (x: number): string => {
  if (x === 0) return "0"
  const { digits, exp } = digitsOf(Math.abs(x).toExponential())
  return (x < 0 ? "-" : "") + plainDigits(digits, exp)
}

/** jsonb's text form; a top-level string is unquoted, as `#>> '{}'` gives it. */
const jsonText = (value: unknown, top: boolean): string => {
  if (value === null) return "null"
  switch (typeof value) {
    case "string":
      return top ? value : JSON.stringify(value)
    case "number":
      return numericText(value)
    case "boolean":
      return value ? "true" : "false"
  }
  if (Array.isArray(value)) return `[${value.map((v) => jsonText(v, false)).join(", ")}]`
  const object = value as Record<string, unknown>
  return `{${jsonbKeys(object)
    .map((k) => `${JSON.stringify(k)}: ${jsonText(object[k], false)}`)
    .join(", ")}}`
}

const timestampText = (value: unknown): string => new Date(timeOf(value)).toISOString()

const toText = (value: unknown, from: ColumnType.ColumnType): string => {
  switch (from.kind) {
    case "Int":
      return String(value)
    case "Float":
      return float8Text(value as number)
    case "Bool":
      return value ? "true" : "false"
    case "Timestamp":
      return timestampText(value)
    case "UUID":
      return (value as string).toLowerCase()
    case "Json":
    case "Array":
      return jsonText(value, true)
    case "Vector":
      return `[${Array.from(value as Float32Array, float4Text).join(",")}]`
    case "Binary":
      return hex(value as Uint8Array)
    default:
      return value as string
  }
}

const SPACE = "[ \\t\\n\\r\\v\\f]*"

/** What `int8in` accepts on every supported version (16+ also reads `0x1F` and `1_000`). */
export const INT_PATTERN = `^${SPACE}[+-]?[0-9]+${SPACE}$`

/** What `float8in` accepts on every platform (strtod also reads hexadecimal); case-insensitive. */
export const FLOAT_PATTERN = `^${SPACE}[+-]?([0-9]+\\.?[0-9]*(e[+-]?[0-9]+)?|\\.[0-9]+(e[+-]?[0-9]+)?|nan|inf|infinity)${SPACE}$`

const intText = new RegExp(INT_PATTERN)
const floatTextPattern = new RegExp(FLOAT_PATTERN, "i")
const pgSpace = /^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g

const parseInt8 = (text: string): number => {
  if (!intText.test(text)) throw invalidText("bigint", text)
  const value = BigInt(text.replace(pgSpace, ""))
  if (value < INT8_MIN || value > INT8_MAX) {
    throw outOfRange(`value ${JSON.stringify(text)} is out of range for type bigint`)
  }
  return Number(value)
}

const parseFloat8 = (text: string): number => {
  if (!floatTextPattern.test(text)) throw invalidText("double precision", text)
  const t = text.replace(pgSpace, "").toLowerCase()
  const negative = t.startsWith("-")
  const unsigned = t.replace(/^[+-]/, "")
  if (unsigned === "nan") return Number.NaN
  if (unsigned === "inf" || unsigned === "infinity")
    return negative ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY
  const value = Number(t)
  const mantissa = unsigned.split("e")[0]!
  if (isInfinite(value) || (value === 0 && /[1-9]/.test(mantissa))) {
    throw outOfRange(`${JSON.stringify(text)} is out of range for type double precision`)
  }
  return value
}

/** `boolin`: a case-insensitive prefix of true/false/yes/no, on/off (two letters at least), 1 or 0. */
const parseBool = (text: string): boolean => {
  const t = text.replace(pgSpace, "").replace(/[A-Z]/g, (c) => c.toLowerCase())
  const prefixOf = (word: string) => t.length > 0 && t.length <= word.length && word.startsWith(t)
  if (prefixOf("true") || prefixOf("yes") || (t.length >= 2 && prefixOf("on")) || t === "1") return true
  if (prefixOf("false") || prefixOf("no") || (t.length >= 2 && prefixOf("off")) || t === "0") return false
  throw invalidText("boolean", text)
}

const INT8_LIMIT = 2 ** 63

const checkInt8 = (x: number): number => {
  if (!(x >= -INT8_LIMIT && x < INT8_LIMIT)) throw outOfRange("bigint out of range")
  return x + 0
}

/** `rint`: to the nearest integer, ties to even. */
const roundHalfEven = (x: number): number => {
  const r = Math.round(x)
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r
}

const toInt = (value: unknown, from: ColumnType.ColumnType): number => {
  switch (from.kind) {
    case "Float":
      return checkInt8(roundHalfEven(value as number))
    case "Bool":
      return value ? 1 : 0
    case "Json":
    case "Array":
      if (typeof value !== "number") throw cannotCastJson(value, "bigint")
      // numeric to int8 rounds half away from zero.
      return checkInt8(Math.sign(value) * Math.round(Math.abs(value)))
    default:
      return parseInt8(value as string)
  }
}

const toFloat = (value: unknown, from: ColumnType.ColumnType): number => {
  switch (from.kind) {
    case "Int":
    case "Float":
      return value as number
    case "Bool":
      return value ? 1 : 0
    case "Json":
    case "Array":
      if (typeof value !== "number") throw cannotCastJson(value, "double precision")
      return value
    default:
      return parseFloat8(value as string)
  }
}

const toBool = (value: unknown, from: ColumnType.ColumnType): boolean => {
  switch (from.kind) {
    case "Int":
    case "Float":
      return value !== 0
    case "Json":
    case "Array":
      if (typeof value !== "boolean") throw cannotCastJson(value, "boolean")
      return value
    default:
      return parseBool(value as string)
  }
}

/** A lone surrogate, which jsonb refuses in strings (as it refuses NUL). */
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

const parseJson = (text: string): unknown => {
  const check = (s: string) => {
    if (s.includes("\u0000") || loneSurrogate.test(s)) {
      throw new EvalError("InvalidCast", "unsupported Unicode escape sequence")
    }
  }
  let value: unknown
  try {
    value = JSON.parse(text, (key, v) => {
      check(key)
      if (typeof v === "string") check(v)
      return typeof v === "number" && v === 0 ? 0 : v
    })
  } catch (error) {
    if (error instanceof EvalError) throw error
    throw invalidText("json", text)
  }
  return value
}

/**
 * A value as JSON: `to_jsonb` (non-finite floats become strings, timestamps
 * ISO 8601 strings, vectors arrays of numbers, bytes `\x` hex), except that
 * a String is parsed as JSON text when `parseText` (a cast) and wrapped as a
 * JSON string otherwise (a comparison with a JSON value).
 */
const toJson = (value: unknown, from: ColumnType.ColumnType, parseText: boolean): unknown => {
  switch (from.kind) {
    case "String":
      return parseText ? parseJson(value as string) : value
    case "Int":
      return (value as number) + 0
    case "Float": {
      const x = value as number
      if (Number.isNaN(x)) return "NaN"
      if (isInfinite(x)) return x > 0 ? "Infinity" : "-Infinity"
      return x + 0
    }
    case "Json":
    case "Array":
    case "Bool":
      return value
    case "Timestamp":
      return timestampText(value)
    case "UUID":
      return (value as string).toLowerCase()
    case "Vector":
      return Array.from(value as Float32Array, float4Number)
    case "Binary":
      return hex(value as Uint8Array)
    default:
      return value
  }
}

const half = (x: number): number => Math.f16round(x)

/** The score SQL gives for two vectors (computed in float4 / float2 like pgvector). */
export const vectorScore = (
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  metric: Expr.Metric,
  precision: Expr.Precision
): number => {
  const round = precision === "halfvec" ? half : Math.fround
  let dot = 0
  let na = 0
  let nb = 0
  let l2 = 0
  for (let i = 0; i < a.length; i++) {
    const x = round(a[i]!)
    const y = round(b[i]!)
    dot += x * y
    na += x * x
    nb += y * y
    l2 += (x - y) * (x - y)
  }
  switch (metric) {
    case "cosine":
      return na === 0 || nb === 0 ? Number.NaN : dot / Math.sqrt(na * nb)
    case "ip":
      return dot
    case "l2":
      return Math.sqrt(l2)
  }
}
