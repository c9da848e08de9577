/**
 * compileExpr: compiles an expression tree (`Expr.Node`) into a PostgreSQL
 * fragment that computes exactly what `Evaluate` computes in the engine, and
 * converts what the driver returns into Tessera's JavaScript values.
 *
 * Parameters are bound with their type and cast explicitly; strings compare
 * under `COLLATE "C"`; case mapping uses ICU's root locale (full mappings, as
 * JavaScript does) instead of the database's; text read as a number must have
 * a form every supported version accepts (PostgreSQL 16+ also reads `0x1F`
 * and `1_000`); JSON nulls reached through a path or a cast are SQL NULL, as
 * they are in the engine.
 */
import { PgTypes } from "@effect/sql-pg"
import { ColumnType, Evaluate, Expr } from "@tessera/core"
import { Option } from "effect"
import type { SqlClient, SqlError, Statement } from "effect/sql"

export interface CompileContext {
  readonly sql: SqlClient.SqlClient
  /** The value column of a column id, e.g. `sql("c_3")` or a qualified fragment. */
  readonly column: (id: number) => Statement.Fragment | Statement.Identifier
  /** The column holding a computed column's error type or message. */
  readonly errorColumn: (id: number, prop: Expr.ErrorProp) => Statement.Fragment | Statement.Identifier
  readonly types: Expr.ColumnTypes
  /** A `vector` parameter (`Database.vector`). */
  readonly vector: (value: Float32Array) => unknown
}

type Fragment = Statement.Fragment
type Sql = SqlClient.SqlClient

/** Raised inside the compiler for a node SQL cannot express. */
class NotExpressible {}

/**
 * The SQL for `node`, or None when it cannot be computed by SQL alone: it
 * calls a user function, or casts between types that have no cast.
 */
export const compile = (node: Expr.Node, ctx: CompileContext): Option.Option<Fragment> => {
  try {
    return Option.some(compileNode(node, ctx))
  } catch (error) {
    if (error instanceof NotExpressible) return Option.none()
    throw error
  }
}

/** The PostgreSQL type of a column type. */
export const sqlType = (t: ColumnType.ColumnType): string => {
  switch (t.kind) {
    case "String":
    case "Image":
    case "Video":
    case "Audio":
    case "Document":
      return "text"
    case "Int":
      return "int8"
    case "Float":
      return "float8"
    case "Bool":
      return "boolean"
    case "Timestamp":
      return "timestamptz"
    case "Date":
      return "date"
    case "UUID":
      return "uuid"
    case "Json":
    case "Array":
      return "jsonb"
    case "Vector":
      return `vector(${t.dim})`
    case "Binary":
      return "bytea"
  }
}

/** Converts a value as the driver returns it (int8 as bigint, ...) into Tessera's representation. */
export const fromSql = (t: ColumnType.ColumnType, raw: unknown): unknown => {
  if (raw === null || raw === undefined) return null
  switch (t.kind) {
    case "Int":
      return typeof raw === "number" ? raw : Number(raw)
    case "Float":
      return typeof raw === "number" ? raw : Number(raw)
    case "Bool":
      return typeof raw === "string" ? raw === "t" || raw === "true" : Boolean(raw)
    case "Timestamp":
      return raw instanceof Date ? raw : new Date(raw as string)
    case "Date":
      return raw instanceof Date ? raw.toISOString().slice(0, 10) : String(raw)
    case "UUID":
      return String(raw).toLowerCase()
    case "Vector":
      if (raw instanceof Float32Array) return raw
      return Float32Array.from(typeof raw === "string" ? (JSON.parse(raw) as Array<number>) : (raw as Array<number>))
    case "Binary":
      return Uint8Array.from(raw as Uint8Array)
    default:
      return raw
  }
}

const errorTypes: Record<string, Evaluate.ErrorType> = {
  "22012": "DivisionByZero",
  "22003": "NumericOutOfRange"
}

/**
 * The evaluation error a failed statement corresponds to, when it failed on a
 * value (SQLSTATE class 22, data exception): the same error type `Evaluate`
 * throws for that row.
 */
export const evalErrorOf = (error: SqlError.SqlError): Evaluate.EvalError | undefined => {
  const cause = error.reason.cause
  if (typeof cause !== "object" || cause === null || !("code" in cause) || typeof cause.code !== "string") {
    return undefined
  }
  if (!cause.code.startsWith("22")) return undefined
  const message = "message" in cause && typeof cause.message === "string" ? cause.message : error.message
  return new Evaluate.EvalError(errorTypes[cause.code] ?? "InvalidCast", message)
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

const BoolType = ColumnType.Bool
const FloatType = ColumnType.Float
const StringType = ColumnType.String
const JsonType = ColumnType.Json()

const INT4_MAX = 2 ** 31 - 1

const isText = (t: ColumnType.ColumnType): boolean => t.kind === "String" || ColumnType.isMedia(t)
const isJson = (t: ColumnType.ColumnType): boolean => t.kind === "Json" || t.kind === "Array"

const comparisonOps: Record<Expr.ComparisonOp, string> = {
  "=": "=",
  "!=": "<>",
  "<": "<",
  "<=": "<=",
  ">": ">",
  ">=": ">="
}

/** `c.meta.a[0]` as `strict $."a"[0]`; undefined when an index cannot match any element. */
const jsonPath = (keys: ReadonlyArray<string | number>): string | undefined => {
  let path = "strict $"
  for (const key of keys) {
    if (typeof key === "string") path += `.${JSON.stringify(key)}`
    else if (!Number.isInteger(key) || Math.abs(key) > INT4_MAX) return undefined
    else path += key < 0 ? `[last${key === -1 ? "" : ` - ${-key - 1}`}]` : `[${key}]`
  }
  return path
}

const compileNode = (root: Expr.Node, ctx: CompileContext): Fragment => {
  const { sql } = ctx
  const typeOf = (node: Expr.Node) => Expr.typeOf(node, ctx.types)

  const go = (node: Expr.Node): Fragment => {
    switch (node._tag) {
      case "Column":
        return sql`${ctx.column(node.id)}`
      case "Literal":
        return literal(sql, node, ctx.vector)
      case "Binary":
        return binary(node)
      case "Not":
        return sql`(NOT ${as(node.expr, BoolType)})`
      case "Neg": {
        const type = typeOf(node.expr)
        if (type.kind === "Int") return sql`(- ${go(node.expr)})`
        const negated = sql`(- ${as(node.expr, FloatType)})`
        return isJson(type) ? sql`to_jsonb(${negated})` : negated
      }
      case "IsNull":
        return sql`(${go(node.expr)} IS NULL)`
      case "IsIn": {
        if (node.values.length === 0) return sql.literal("false")
        const exprType = typeOf(node.expr)
        const valueTypes = node.values.map(typeOf)
        const type = Evaluate.comparisonType([exprType, ...valueTypes])
        const values = node.values.map((v, i) => sql`${comparable(v, valueTypes[i]!, type)}${collate(type)}`)
        return sql`(${comparable(node.expr, exprType, type)}${collate(type)} IN (${sql.csv(values)}))`
      }
      case "String":
        return stringFn(
          node.fn,
          node.args.map((arg) => as(arg, StringType))
        )
      case "JsonPath": {
        const path = jsonPath(node.path)
        if (path === undefined) return sql.literal("NULL::jsonb")
        // A strict jsonpath, silent: a missing key, an index out of range or a
        // value of the wrong shape is NULL. (`->` would read a scalar as a
        // one-element array: `'1'::jsonb -> 0` is 1.)
        return nullIfJsonNull(
          sql,
          sql`jsonb_path_query_first(${as(node.expr, JsonType)}, ${PgTypes.text(path)}::jsonpath, '{}', true)`
        )
      }
      case "Cast":
        return cast(sql, go(node.expr), typeOf(node.expr), node.to)
      case "Call":
        throw new NotExpressible()
      case "ErrorProp":
        return sql`${ctx.errorColumn(node.id, node.prop)}`
      case "Similarity":
      case "Embedding":
        throw new NotExpressible()
      case "TextSearch": {
        if (!/^[a-z_]+$/.test(node.language)) throw new NotExpressible()
        // The same expression as a text index on the column, so the index serves matches.
        const language = sql.literal(`'${node.language}'::regconfig`)
        const vector = sql`to_tsvector(${language}, coalesce(${ctx.column(node.id)}, ''))`
        const query = sql`websearch_to_tsquery(${language}, ${as(node.query, ColumnType.String)})`
        return node.mode === "match" ? sql`(${vector} @@ ${query})` : sql`ts_rank(${vector}, ${query})::float8`
      }
      case "VectorScore": {
        // Written as the index is, so that an HNSW index on the column serves ORDER BY ... LIMIT.
        const type = sql.literal(`${node.precision}(${node.vector.length})`)
        const column = sql`${ctx.column(node.id)}::${type}`
        const query = sql`${ctx.vector(node.vector)}::${type}`
        switch (node.metric) {
          case "cosine":
            return sql`(1 - (${column} <=> ${query}))`
          case "ip":
            return sql`(-(${column} <#> ${query}))`
          case "l2":
            return sql`(${column} <-> ${query})`
        }
      }
    }
  }

  /** `node` as a value of type `to`, converted as a cast would. */
  const as = (node: Expr.Node, to: ColumnType.ColumnType): Fragment => cast(sql, go(node), typeOf(node), to)

  /** `node` as a value of the comparison type `to` (other values become JSON values, not parsed JSON). */
  const comparable = (node: Expr.Node, from: ColumnType.ColumnType, to: ColumnType.ColumnType): Fragment =>
    isJson(to) && !Evaluate.sameClass(from, to) ? toJson(sql, go(node), from, false) : as(node, to)

  /** Both sides: a side may carry an explicit collation already (`lower` uses ICU's). */
  const collate = (type: ColumnType.ColumnType): Fragment => sql.literal(isText(type) ? ` COLLATE "C"` : "")

  const binary = (node: Extract<Expr.Node, { _tag: "Binary" }>): Fragment => {
    switch (node.op) {
      case "and":
        return sql`(${as(node.left, BoolType)} AND ${as(node.right, BoolType)})`
      case "or":
        return sql`(${as(node.left, BoolType)} OR ${as(node.right, BoolType)})`
      case "=":
      case "!=":
      case "<":
      case "<=":
      case ">":
      case ">=": {
        const leftType = typeOf(node.left)
        const rightType = typeOf(node.right)
        const type = Evaluate.comparisonType([leftType, rightType])
        return sql`(${comparable(node.left, leftType, type)}${collate(type)} ${sql.literal(comparisonOps[node.op])} ${comparable(node.right, rightType, type)}${collate(type)})`
      }
      default: {
        const type = typeOf(node)
        const left = as(node.left, type)
        const right = as(node.right, type)
        if (type.kind === "Float" && node.op === "%") return sql`mod(${left}::numeric, ${right}::numeric)::float8`
        return sql`(${left} ${sql.literal(node.op)} ${right})`
      }
    }
  }

  const stringFn = (fn: Expr.StringFn, args: ReadonlyArray<Fragment>): Fragment => {
    const [s, t, u] = args
    switch (fn) {
      case "length":
        return sql`char_length(${s})::int8`
      case "lower":
        return sql`lower(${s} COLLATE "und-x-icu")`
      case "upper":
        return sql`upper(${s} COLLATE "und-x-icu")`
      case "trim":
        return sql`btrim(${s}, ${sql.literal(String.raw`E' \t\n\r'`)})`
      case "contains":
        return sql`(strpos(${s}, ${t}) > 0)`
      case "startsWith":
        return sql`starts_with(${s}, ${t})`
      case "endsWith":
        return sql`(right(${s}, char_length(${t})) = ${t})`
      case "replace":
        return sql`replace(${s}, ${t}, ${u})`
      case "concat":
        return sql.join(" || ")(args)
    }
  }

  return go(root)
}

const literal = (
  sql: Sql,
  node: Extract<Expr.Node, { _tag: "Literal" }>,
  vector: CompileContext["vector"]
): Fragment => {
  const value = node.value
  if (value === null || value === undefined) return sql.literal(`NULL::${sqlType(node.type)}`)
  switch (node.type.kind) {
    case "Int":
      if (typeof value === "number" && !Number.isInteger(value)) throw new NotExpressible()
      return sql`${PgTypes.int8(BigInt(value as number | bigint))}::int8`
    case "Float":
      return sql`${PgTypes.float8(value as number)}::float8`
    case "Bool":
      return sql`${PgTypes.bool(value as boolean)}::boolean`
    case "Timestamp":
      return sql`${PgTypes.timestamptz(value instanceof Date ? value : new Date(value as string | number))}::timestamptz`
    case "Date":
      return sql`${PgTypes.date(value instanceof Date ? value.toISOString().slice(0, 10) : (value as string))}::date`
    case "UUID":
      return sql`${PgTypes.uuid((value as string).toLowerCase())}::uuid`
    case "Json":
    case "Array":
      return sql`${PgTypes.jsonb(value)}::jsonb`
    case "Vector":
      return sql`${vector(value instanceof Float32Array ? value : Float32Array.from(value as ArrayLike<number>))}::vector`
    case "Binary":
      return sql`${PgTypes.bytea(value as Uint8Array)}::bytea`
    default:
      return sql`${PgTypes.text(value as string)}::text`
  }
}

// ---------------------------------------------------------------------------
// Casts (see Evaluate for the semantics each mirrors)
// ---------------------------------------------------------------------------

const nullIfJsonNull = (sql: Sql, f: Fragment): Fragment => sql`NULLIF(${f}, 'null'::jsonb)`

const cast = (sql: Sql, f: Fragment, from: ColumnType.ColumnType, to: ColumnType.ColumnType): Fragment => {
  if (Evaluate.sameClass(from, to)) return f
  if (!Evaluate.castable(from, to)) throw new NotExpressible()
  switch (to.kind) {
    case "Int":
      return toInt(sql, f, from)
    case "Float":
      return toFloat(sql, f, from)
    case "Bool":
      return toBool(sql, f, from)
    case "Json":
    case "Array":
      return toJson(sql, f, from, true)
    default:
      return toText(sql, f, from)
  }
}

const toText = (sql: Sql, f: Fragment, from: ColumnType.ColumnType): Fragment => {
  switch (from.kind) {
    case "Timestamp":
      return sql`to_char(${f} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    case "Date":
      return sql`to_char(${f}, 'YYYY-MM-DD')`
    case "Json":
    case "Array":
      return sql`(${f} #>> '{}')`
    case "Binary":
      return sql`(${sql.literal(String.raw`'\x'`)} || encode(${f}, 'hex'))`
    default:
      return isText(from) ? f : sql`${f}::text`
  }
}

/** Text read as a number, refusing what `pattern` does not match as every version would. */
const parseText = (sql: Sql, f: Fragment, pattern: string, operator: string, type: string, what: string) =>
  sql`(CASE WHEN ${f} ${sql.literal(operator)} ${PgTypes.text(pattern)}::text THEN ${f} ELSE ${PgTypes.text(`${what}: `)}::text || ${f} END)::${sql.literal(type)}`

const toInt = (sql: Sql, f: Fragment, from: ColumnType.ColumnType): Fragment => {
  switch (from.kind) {
    case "Float":
      return sql`${f}::int8`
    case "Bool":
      return sql`${f}::int4::int8`
    case "Json":
    case "Array":
      return sql`${nullIfJsonNull(sql, f)}::int8`
    default:
      return parseText(sql, f, Evaluate.INT_PATTERN, "~", "int8", "not a decimal integer")
  }
}

const toFloat = (sql: Sql, f: Fragment, from: ColumnType.ColumnType): Fragment => {
  switch (from.kind) {
    case "Int":
      return sql`${f}::float8`
    case "Bool":
      return sql`${f}::int4::float8`
    case "Json":
    case "Array":
      return sql`${nullIfJsonNull(sql, f)}::float8`
    default:
      return parseText(sql, f, Evaluate.FLOAT_PATTERN, "~*", "float8", "not a decimal number")
  }
}

const toBool = (sql: Sql, f: Fragment, from: ColumnType.ColumnType): Fragment => {
  switch (from.kind) {
    case "Int":
      return sql`(${f} <> 0)`
    case "Float":
      return sql`(${f} <> 0::float8)`
    case "Json":
    case "Array":
      return sql`${nullIfJsonNull(sql, f)}::boolean`
    default:
      return sql`${f}::boolean`
  }
}

const toJson = (sql: Sql, f: Fragment, from: ColumnType.ColumnType, parseText: boolean): Fragment => {
  switch (from.kind) {
    case "String":
      return parseText ? nullIfJsonNull(sql, sql`${f}::jsonb`) : sql`to_jsonb(${f})`
    case "Json":
    case "Array":
      return f
    case "Timestamp":
    case "Date":
    case "Binary":
      return sql`to_jsonb(${toText(sql, f, from)})`
    case "Vector":
      return sql`to_jsonb(${f}::real[])`
    default:
      return sql`to_jsonb(${f})`
  }
}
