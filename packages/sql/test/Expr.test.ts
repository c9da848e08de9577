import { PgTypes } from "@effect/sql-pg"
import { assert } from "@effect/vitest"
import { ColumnType, Evaluate, Expr } from "@tessera/core"
import { Cause, Effect, Exit, Option } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import { Database } from "../src/index.ts"
import { type CompileContext, compile, evalErrorOf, fromSql, sqlType } from "../src/internal/compileExpr.ts"
import { Harness } from "../src/testing/index.ts"

// ---------------------------------------------------------------------------
// The table: columns c_1 ... c_18 of every kind, with nulls and edge values.
// ---------------------------------------------------------------------------

const col = <T>(id: number, name: string, type: ColumnType.ColumnType) => new Expr.ColumnRef<T>(id, name, type, false)

const a = col<number | null>(1, "a", ColumnType.Int)
const b = col<number | null>(2, "b", ColumnType.Int)
const x = col<number | null>(3, "x", ColumnType.Float)
const y = col<number | null>(4, "y", ColumnType.Float)
const s = col<string | null>(5, "s", ColumnType.String)
const t = col<string | null>(6, "t", ColumnType.String)
const p = col<boolean | null>(7, "p", ColumnType.Bool)
const q = col<boolean | null>(8, "q", ColumnType.Bool)
const meta = col<unknown>(9, "meta", ColumnType.Json()) as unknown as Expr.JsonExpr<unknown>
const ts = col<Date | null>(10, "ts", ColumnType.Timestamp)
const d = col<string | null>(11, "d", ColumnType.Date)
const u = col<string | null>(12, "u", ColumnType.UUID)
const v = col<Float32Array | null>(13, "v", ColumnType.Vector(3))
const bin = col<Uint8Array | null>(14, "bin", ColumnType.Binary)
const num = col<string | null>(15, "num", ColumnType.String)
const list = col<unknown>(16, "list", ColumnType.Json()) as unknown as Expr.JsonExpr<unknown>
const z = col<number | null>(17, "z", ColumnType.Float)
const img = col<string | null>(18, "img", ColumnType.Image)
/** `s` as a computed column, to read its error properties. */
const sComputed = new Expr.ColumnRef<string | null>(5, "s", ColumnType.String, true)

const columns: ReadonlyArray<readonly [id: number, name: string, type: ColumnType.ColumnType]> = [
  [1, "a", ColumnType.Int],
  [2, "b", ColumnType.Int],
  [3, "x", ColumnType.Float],
  [4, "y", ColumnType.Float],
  [5, "s", ColumnType.String],
  [6, "t", ColumnType.String],
  [7, "p", ColumnType.Bool],
  [8, "q", ColumnType.Bool],
  [9, "meta", ColumnType.Json()],
  [10, "ts", ColumnType.Timestamp],
  [11, "d", ColumnType.Date],
  [12, "u", ColumnType.UUID],
  [13, "v", ColumnType.Vector(3)],
  [14, "bin", ColumnType.Binary],
  [15, "num", ColumnType.String],
  [16, "list", ColumnType.Json()],
  [17, "z", ColumnType.Float],
  [18, "img", ColumnType.Image]
]
const typeById = new Map(columns.map(([id, , type]) => [id, type]))
const types: Expr.ColumnTypes = (id) => typeById.get(id)

const date = (iso: string) => new Date(iso)
const vec = (...xs: Array<number>) => Float32Array.from(xs)
const bytes = (...xs: Array<number>) => Uint8Array.from(xs)

const rows: ReadonlyArray<Record<string, unknown>> = [
  {
    a: 7,
    b: 2,
    x: 1.5,
    y: 0.25,
    s: "hello",
    t: "ell",
    p: true,
    q: true,
    meta: { a: { b: 1 }, name: "Zoë", n: 2.5, tags: ["x", "y"], flag: true },
    ts: date("2024-01-02T03:04:05.123Z"),
    d: "2024-01-02",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(1, 2, 3),
    bin: bytes(1, 2, 255),
    num: " 42 ",
    list: [1, "x", null, [2, 3]],
    z: Number.NaN,
    img: "/img/a.png",
    et: "DivisionByZero",
    em: "division by zero"
  },
  {
    a: -7,
    b: 2,
    x: -2.5,
    y: 3,
    s: "Straße",
    t: "SS",
    p: true,
    q: false,
    meta: { a: { b: "two" }, name: "ΣΑΣ", n: -3.5, tags: [], flag: false },
    ts: date("2023-12-31T23:59:59.999Z"),
    d: "2023-12-31",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12",
    v: vec(0.1, -0, 1e-7),
    bin: bytes(),
    num: "-7",
    list: [],
    z: Number.POSITIVE_INFINITY,
    img: "/img/b.png",
    et: null,
    em: null
  },
  {
    a: -7,
    b: -2,
    x: 0.1,
    y: 0.2,
    s: "  padded\t\n",
    t: " ",
    p: false,
    q: true,
    meta: { a: null, z: 0 },
    ts: date("1999-06-15T12:00:00.000Z"),
    d: "1999-06-15",
    u: "00000000-0000-0000-0000-000000000000",
    v: vec(3, 2, 1),
    bin: bytes(0),
    num: "+3",
    list: [null],
    z: Number.NEGATIVE_INFINITY,
    img: "/img/c.png",
    et: "InvalidCast",
    em: 'invalid input syntax for type bigint: "x"'
  },
  {
    a: 0,
    b: 5,
    x: -0,
    y: 7.5,
    s: "",
    t: "",
    p: false,
    q: false,
    meta: {},
    ts: date("2024-01-02T03:04:05.123Z"),
    d: "2024-01-02",
    u: "ffffffff-ffff-ffff-ffff-ffffffffffff",
    v: vec(1, 2, 3),
    bin: bytes(1, 2),
    num: "007",
    list: "str",
    z: 1e308,
    img: "/img/a.png",
    et: null,
    em: null
  },
  {
    a: null,
    b: 3,
    x: null,
    y: 1,
    s: null,
    t: "x",
    p: null,
    q: true,
    meta: null,
    ts: null,
    d: null,
    u: null,
    v: null,
    bin: null,
    num: null,
    list: null,
    z: null,
    img: null,
    et: null,
    em: null
  },
  {
    a: 5,
    b: null,
    x: 3.25,
    y: null,
    s: "İstanbul",
    t: null,
    p: true,
    q: null,
    meta: { a: { b: [1, 2, 3] }, tags: ["only"] },
    ts: date("2030-01-01T00:00:00.000Z"),
    d: "2030-01-01",
    u: "12345678-1234-1234-1234-123456789abc",
    v: vec(-1, -2, -3),
    bin: bytes(255),
    num: "-0",
    list: 5,
    z: 5e-324,
    img: "/img/d.png",
    et: null,
    em: null
  },
  {
    a: Number.MAX_SAFE_INTEGER,
    b: 1,
    x: 0.5,
    y: -0.5,
    s: "😀é",
    t: "é",
    p: null,
    q: false,
    meta: { n: 1e-7, name: "é", flag: true },
    ts: date("1970-01-01T00:00:00.000Z"),
    d: "1970-01-01",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(1, 2, 4),
    bin: bytes(1, 2, 255, 0),
    num: "9007199254740993",
    list: true,
    z: -1e-300,
    img: "/img/a.png",
    et: null,
    em: null
  },
  {
    a: 123,
    b: 10,
    x: 2.5,
    y: 1e300,
    s: "\uffff",
    t: "😀",
    p: false,
    q: null,
    meta: { a: { b: { c: true } }, name: null },
    ts: date("2024-01-02T03:04:05.124Z"),
    d: "2024-01-03",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a10",
    v: vec(1, 2, 2.5),
    bin: bytes(1, 3),
    num: "12",
    list: { "0": "zero" },
    z: 1e15,
    img: "/img/e.png",
    et: null,
    em: null
  },
  {
    a: -1,
    b: 7,
    x: 1e-7,
    y: 3,
    s: "abc",
    t: "abd",
    p: true,
    q: true,
    meta: [1, 2],
    ts: date("2024-01-02T03:04:05.000Z"),
    d: "2024-02-29",
    u: "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(1, 2, 3),
    bin: bytes(1, 2, 255),
    num: "1",
    list: [[1]],
    z: 0.30000000000000004,
    img: "/img/f.png",
    et: null,
    em: null
  },
  {
    a: 2,
    b: -3,
    x: 1234567.891,
    y: 0.1,
    s: "Abc",
    t: "abc",
    p: false,
    q: true,
    meta: "just a string",
    ts: date("2024-01-02T03:04:05.123Z"),
    d: "2024-01-02",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(0.5, 0.25, 0.125),
    bin: bytes(2),
    num: "0",
    list: { a: [1, { b: 2 }] },
    z: 1.2345678901234568e20,
    img: "/img/g.png",
    et: null,
    em: null
  },
  {
    a: 1000000,
    b: 1000000,
    x: -3.5,
    y: 2,
    s: "ΣΑΣ ΟΔΟΣ",
    t: "σ",
    p: true,
    q: false,
    meta: 42,
    ts: date("2024-01-02T03:04:05.123Z"),
    d: "2024-01-02",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(1, 2, 3),
    bin: bytes(1, 2, 255),
    num: "-9223372036854775808",
    list: [1, 2, 3],
    z: -0,
    img: "/img/a.png",
    et: null,
    em: null
  },
  {
    a: -Number.MAX_SAFE_INTEGER,
    b: 3,
    x: 0.5,
    y: 0.5,
    s: "x_y%z",
    t: "_",
    p: null,
    q: null,
    meta: { aa: 1, b: 2, é: 3 },
    ts: date("2024-01-02T03:04:05.123Z"),
    d: "2024-01-02",
    u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    v: vec(1, 2, 3),
    bin: bytes(1, 2, 255),
    num: "  +15\t",
    list: [true, false],
    z: 2.5,
    img: "/img/a.png",
    et: null,
    em: null
  }
]

/** A typed parameter for a cell, independent of the compiler under test. */
const param = (db: Database.Database["Service"], type: ColumnType.ColumnType, value: unknown): unknown => {
  if (value === null) return null
  switch (type.kind) {
    case "Int":
      return PgTypes.int8(BigInt(value as number))
    case "Float":
      return PgTypes.float8(value as number)
    case "Json":
      return PgTypes.jsonb(value)
    case "Vector":
      return db.vector(value as Float32Array)
    case "Binary":
      return PgTypes.bytea(value as Uint8Array)
    case "Timestamp":
      return PgTypes.timestamptz(value as Date)
    case "Date":
      return PgTypes.date(value as string)
    case "UUID":
      return PgTypes.uuid(value as string)
    case "Bool":
      return PgTypes.bool(value as boolean)
    default:
      return PgTypes.text(value as string)
  }
}

const setup = Effect.fnUntraced(function* () {
  const sql = yield* SqlClient.SqlClient
  const db = yield* Database.Database
  const definitions = columns.map(([id, , type]) => `c_${id} ${sqlType(type)}`).join(", ")
  yield* sql.unsafe(`CREATE TABLE t (id int4 PRIMARY KEY, ${definitions}, et_5 text, em_5 text)`)
  for (const [i, row] of rows.entries()) {
    const values = columns.map(([, name, type]) => sql`${param(db, type, row[name])}::${sql.literal(sqlType(type))}`)
    yield* sql`INSERT INTO t VALUES (${i + 1}, ${sql.csv(values)}, ${row.et as string | null}::text, ${row.em as string | null}::text)`
  }
  const ctx: CompileContext = {
    sql,
    column: (id) => sql(`c_${id}`),
    errorColumn: (id, prop) => sql(prop === "errorType" ? `et_${id}` : `em_${id}`),
    types,
    vector: (value) => db.vector(value)
  }
  // Evaluate reads the rows back exactly as the engine would: through fromSql.
  const raw = yield* sql<Record<string, unknown>>`SELECT * FROM t ORDER BY id`
  const envs = raw.map(
    (r): Evaluate.Env => ({
      column: (id) => fromSql(types(id)!, r[`c_${id}`]),
      error: (id, prop) => (r[prop === "errorType" ? `et_${id}` : `em_${id}`] as string | null) ?? null,
      call: () => {
        throw new Error("no calls here")
      }
    })
  )
  return { sql, ctx, envs }
})

const noRow: Evaluate.Env = {
  column: () => {
    throw new Error("no columns here")
  },
  error: () => null,
  call: () => {
    throw new Error("no calls here")
  }
}

type Outcome = { readonly value: unknown } | { readonly error: string }

const evaluateOutcome = (node: Expr.Node, env: Evaluate.Env): Outcome => {
  try {
    return { value: Evaluate.evaluate(node, env, types) }
  } catch (error) {
    if (error instanceof Evaluate.EvalError) return { error: error.errorType }
    throw error
  }
}

/**
 * Runs `expr` in SQL (over the table, or alone) and in the engine over the
 * same rows. Both succeed with deep-equal values, or both fail with the same
 * error type (SQL stops at the first failing row, in id order).
 */
const agree = Effect.fnUntraced(function* (
  env: { readonly sql: SqlClient.SqlClient; readonly ctx: CompileContext; readonly envs: ReadonlyArray<Evaluate.Env> },
  expr: Expr.Expr<unknown>,
  overTable = true
) {
  const { sql, ctx } = env
  const label = Expr.show(expr.node)
  const fragment = Option.getOrThrowWith(compile(expr.node, ctx), () => new Error(`${label} does not compile`))
  const type = Expr.typeOf(expr.node, types)
  const statement = overTable
    ? sql<{ v: unknown }>`SELECT ${fragment} AS v FROM t ORDER BY id`
    : sql<{ v: unknown }>`SELECT ${fragment} AS v`
  const exit = yield* Effect.exit(statement)
  const engine = (overTable ? env.envs : [noRow]).map((e) => evaluateOutcome(expr.node, e))
  if (Exit.isFailure(exit)) {
    const error = Cause.squash(exit.cause)
    assert.instanceOf(error, SqlError.SqlError, label)
    const evalError = evalErrorOf(error as SqlError.SqlError)
    assert.isDefined(evalError, `${label}: SQL failed with ${(error as Error).message}`)
    const first = engine.find((o) => "error" in o)
    assert.deepStrictEqual(
      first,
      { error: evalError!.errorType },
      `${label}: SQL failed with ${evalError!.errorType} (${evalError!.message})`
    )
    return { sql: { error: evalError!.errorType }, engine } as const
  }
  const values = exit.value.map((r) => fromSql(type, r.v))
  assert.deepStrictEqual(
    engine,
    values.map((value) => ({ value })),
    label
  )
  return { sql: { values }, engine } as const
})

const call = (fn: string, ...args: ReadonlyArray<Expr.Expr<unknown>>): Expr.Expr<number | null> =>
  new Expr.Expr(
    { _tag: "Call", fn, version: 1, args: args.map((e) => e.node), type: ColumnType.Int },
    ColumnType.Int
  ) as Expr.Expr<number | null>

const jlit = (value: unknown): Expr.Expr<unknown> => Expr.lit(value, ColumnType.Json())
/** A JSON path: `j(meta, "a", "b")` is `meta.a.b`. */
const j = (e: Expr.Expr<unknown>, ...keys: ReadonlyArray<string | number>): Expr.Expr<unknown> =>
  keys.reduce<Expr.Expr<unknown>>((acc, key) => acc.get(key), e)
const str = (e: Expr.Expr<unknown>) => e as Expr.Expr<string | null>
const numeric = (e: Expr.Expr<unknown>) => e as Expr.Expr<number | null>
const bool = (e: Expr.Expr<unknown>) => e as Expr.Expr<boolean | null>
const any = (e: Expr.Expr<unknown>) => e as any

// ---------------------------------------------------------------------------
// The expressions
// ---------------------------------------------------------------------------

const arithmetic: ReadonlyArray<Expr.Expr<unknown>> = [
  a.plus(b),
  a.minus(b),
  a.times(b),
  a.div(b),
  a.mod(b),
  a.div(2),
  a.mod(3),
  a.mod(-3),
  a.div(-2),
  a.neg(),
  a.plus(a),
  a.times(1000),
  a.plus(1),
  x.plus(y),
  x.minus(y),
  x.times(y),
  x.div(y),
  x.mod(y),
  x.neg(),
  x.mod(0.1),
  x.times(0),
  a.plus(x),
  a.div(y),
  a.mod(y),
  a.times(0.5),
  z.mod(2),
  z.neg(),
  z.plus(1),
  numeric(j(meta, "n")).plus(1),
  numeric(j(meta, "n")).neg(),
  numeric(j(meta, "n")).times(a)
]

const comparisons: ReadonlyArray<Expr.Expr<unknown>> = [
  a.eq(b),
  a.ne(b),
  a.lt(b),
  a.le(b),
  a.gt(b),
  a.ge(b),
  a.lt(x),
  a.eq(7),
  x.lt(y),
  x.eq(y),
  x.eq(0),
  z.eq(z),
  z.gt(x),
  z.lt(1e300),
  z.eq(Number.NaN),
  s.lt(t),
  s.eq(t),
  s.gt(t),
  s.ge("b"),
  s.le("Z"),
  p.eq(q),
  p.lt(q),
  p.ne(true),
  ts.lt(date("2024-01-01T00:00:00Z")),
  ts.eq(date("2024-01-02T03:04:05.123Z")),
  ts.ge(ts),
  d.lt("2024-01-02"),
  d.eq("2024-01-02"),
  u.eq("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
  u.lt("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
  s.eq(u),
  v.eq(vec(1, 2, 3)),
  v.lt(vec(1, 2, 3)),
  v.gt(vec(1, 2)),
  bin.eq(bytes(1, 2, 255)),
  bin.lt(bytes(1, 2, 255)),
  img.eq("/img/a.png"),
  img.lt(s),
  meta.eq({ flag: true, tags: ["x", "y"], n: 2.5, name: "Zoë", a: { b: 1.0 } }),
  meta.eq(42),
  meta.eq("just a string"),
  j(meta, "a", "b").eq(1),
  j(meta, "a", "b").eq("two"),
  j(meta, "name").eq("ΣΑΣ"),
  j(meta, "n").lt(0),
  meta.lt(list),
  meta.gt(list),
  list.eq([1, 2, 3]),
  list.le([]),
  list.gt("str"),
  j(meta, "a").lt(meta)
]

const logic: ReadonlyArray<Expr.Expr<unknown>> = [
  p.and(q),
  p.or(q),
  p.not(),
  q.not(),
  p.and(q).not(),
  p.or(q.not()),
  a.gt(0).and(p),
  a.gt(0).or(x.lt(0)),
  bool(j(meta, "flag")).and(p),
  bool(j(meta, "flag")).or(q),
  bool(j(meta, "flag")).not(),
  a.isNull(),
  a.isNotNull(),
  meta.isNull(),
  j(meta, "a").isNull(),
  j(meta, "a", "b").isNotNull(),
  j(list, 2).isNull(),
  Expr.and(p, q, a.gt(0)),
  Expr.or(p, q, a.gt(0)),
  a.isIn([7, 0, 123]),
  a.isIn([any(b), 5]),
  a.isIn([]),
  b.isIn([any(a), 3]),
  s.isIn(["hello", "", "😀é"]),
  s.isIn([any(t), "abc"]),
  x.isIn([1.5, any(a)]),
  a.isIn([0.5, 5]),
  j(meta, "n").isIn([2.5, -3.5]),
  meta.isIn([42, "just a string", { z: 0, a: null }]),
  z.isIn([Number.NaN, 1e15]),
  d.isIn(["2024-01-02", "1970-01-01"]),
  v.isIn([vec(1, 2, 3), vec(3, 2, 1)])
]

const strings: ReadonlyArray<Expr.Expr<unknown>> = [
  s.length(),
  t.length(),
  s.lower(),
  s.upper(),
  t.upper(),
  s.trim(),
  t.trim(),
  s.contains(t),
  s.contains(""),
  s.contains("l"),
  s.startsWith(t),
  s.startsWith("He"),
  s.endsWith(t),
  s.endsWith("c"),
  s.replace("l", "L"),
  s.replace("", "x"),
  s.replace(any(t), "-"),
  s.replace("l", "$&$&"),
  s.concat(t),
  s.concat(t, "!"),
  s.concat("<", ">"),
  s.lower().contains("a"),
  s.lower().lt(t.upper()),
  s.lower().eq(t),
  s.lower().isIn([t.upper() as Expr.Expr<string>, "hello"]),
  s.lower().concat(t.upper()).ge(s),
  str(j(meta, "name")).lower(),
  str(j(meta, "name")).length(),
  str(j(meta, "name")).concat("!"),
  img.concat("?v=1"),
  sComputed.errorType,
  sComputed.errorMessage,
  sComputed.errorType.eq("DivisionByZero"),
  sComputed.errorMessage.isNull()
]

const paths: ReadonlyArray<Expr.Expr<unknown>> = [
  j(meta, "a"),
  j(meta, "a", "b"),
  j(meta, "a", "b", "c"),
  j(meta, "a", "b", 1),
  j(meta, "a", "b", -1),
  j(meta, "a", "b", -4),
  j(meta, "a", "b", "x"),
  j(meta, "tags", 0),
  j(meta, "tags", -1),
  j(meta, "tags", 5),
  j(meta, "missing"),
  j(meta, "missing", "deeper"),
  j(meta, "n"),
  j(meta, "name"),
  j(meta, 0),
  j(meta, 1),
  j(meta, "0"),
  j(list, 0),
  j(list, -1),
  j(list, 3, 0),
  j(list, "0"),
  j(list, "a", 1, "b"),
  j(list, 2)
]

const casts: ReadonlyArray<Expr.Expr<unknown>> = [
  a.cast("String"),
  a.cast("Float"),
  a.cast("Bool"),
  a.cast("Json"),
  a.cast("Int"),
  x.cast("String"),
  x.cast("Int"),
  x.cast("Bool"),
  x.cast("Json"),
  z.cast("String"),
  z.cast("Json"),
  z.cast("Bool"),
  p.cast("String"),
  p.cast("Int"),
  p.cast("Float"),
  p.cast("Json"),
  s.cast("String"),
  s.cast("Json"),
  num.cast("Int"),
  num.cast("Float"),
  num.cast("Bool"),
  num.cast("Json"),
  meta.cast("String"),
  meta.cast("Int"),
  j(meta, "name").cast("String"),
  j(meta, "a").cast("String"),
  j(meta, "n").cast("Int"),
  j(meta, "n").cast("Float"),
  j(meta, "n").cast("String"),
  j(meta, "flag").cast("Bool"),
  j(meta, "flag").cast("String"),
  list.cast("String"),
  ts.cast("String"),
  ts.cast("Json"),
  d.cast("String"),
  d.cast("Json"),
  u.cast("String"),
  u.cast("Json"),
  v.cast("String"),
  v.cast("Json"),
  bin.cast("String"),
  bin.cast("Json"),
  img.cast("String"),
  img.cast("Json"),
  a.cast("String").cast("Int"),
  x.cast("String").cast("Float"),
  x.cast("Json").cast("String")
]

/** Expressions of literals alone, each run on its own. */
const textCasts = (texts: ReadonlyArray<string>, to: "Int" | "Float" | "Bool" | "Json") =>
  texts.map((text) => Expr.lit(text).cast(to))

const literals: ReadonlyArray<Expr.Expr<unknown>> = [
  ...textCasts(
    [" 42 ", "-0", "+7", "0x1F", "1_000", "1.5", "", " ", "99999999999999999999", "-9223372036854775809", "12a"],
    "Int"
  ),
  ...textCasts(
    [
      "1.5",
      " -2e3 ",
      ".5",
      "5.",
      "-.5E-3",
      "NaN",
      "-nan",
      "-inf",
      "Infinity",
      "INF",
      "0x10",
      "1e400",
      "-1e400",
      "1e-400",
      "1e-310",
      "0e999",
      "abc",
      "",
      "1e",
      ".",
      "infin"
    ],
    "Float"
  ),
  ...textCasts(["t", "TRUE", " yes ", "of", "on", "o", "1", "0", "2", "tr", "", "n", "False", "offx"], "Bool"),
  ...textCasts(
    [
      '{"b":1,"a":[1,2.50]}',
      '"x"',
      "null",
      "[1,",
      '"\\u0000"',
      '"\\ud800"',
      "-0",
      "1e400",
      ' [ 1 , { "k" : null } ] ',
      "01",
      '{"a":1,"a":2}'
    ],
    "Json"
  ),
  ...[2.5, 3.5, -2.5, -0.5, 0.5, 1e19, -9.2e18, Number.NaN, Number.POSITIVE_INFINITY, 1.5e-300].map((f) =>
    Expr.lit(f, ColumnType.Float).cast("Int")
  ),
  ...[
    1e15,
    123456789012345,
    0.0001,
    1e-5,
    -0,
    Number.NaN,
    Number.NEGATIVE_INFINITY,
    0.1 + 0.2,
    5e-324,
    Number.MAX_VALUE,
    -1.5e-7,
    1e21,
    100
  ].map((f) => Expr.lit(f, ColumnType.Float).cast("String")),
  ...[2.5, -2.5, 0.5, 1e20].map((n) => jlit(n).cast("Int")),
  jlit("x").cast("Int"),
  jlit(true).cast("Int"),
  jlit(true).cast("Bool"),
  jlit(1).cast("Bool"),
  jlit([1]).cast("Float"),
  Expr.lit(
    { b: [1, 2, { c: null }], a: 'x\ny\u0001"\\', aa: true, é: 1, ab: 2, n: 1e-7, big: 1e25, neg: -0.5 },
    ColumnType.Json()
  ).cast("String"),
  Expr.lit(vec(1000000, 0.00001, 0.1, 123456.7, 1e-7, -0, 1.5, 16777216, 3.4028234663852886e38)).cast("String"),
  Expr.lit(vec(1000000, 0.00001, 0.1, 123456.7, 1e-7, -0, 1.5, 16777216)).cast("Json"),
  Expr.lit(1000000000000005, ColumnType.Float).mod(7),
  Expr.lit(0.3, ColumnType.Float).mod(0.1),
  Expr.lit(-5.5, ColumnType.Float).mod(2),
  Expr.lit(5.5, ColumnType.Float).mod(-2),
  Expr.lit(1e300, ColumnType.Float).mod(7),
  Expr.lit(1e300, ColumnType.Float).mod(1e-300),
  Expr.lit(5, ColumnType.Float).mod(Number.POSITIVE_INFINITY),
  Expr.lit(Number.POSITIVE_INFINITY, ColumnType.Float).mod(2),
  Expr.lit(Number.NaN, ColumnType.Float).mod(0),
  Expr.lit(Number.POSITIVE_INFINITY, ColumnType.Float).mod(0),
  Expr.lit(5.5, ColumnType.Float).mod(0),
  Expr.lit(1 / 3, ColumnType.Float).mod(0.1),
  Expr.lit(-4, ColumnType.Float).mod(2),
  Expr.lit(1e308, ColumnType.Float).times(10),
  Expr.lit(1e-308, ColumnType.Float).times(1e-308),
  Expr.lit(1e308, ColumnType.Float).plus(1e308),
  Expr.lit(-1e308, ColumnType.Float).minus(1e308),
  Expr.lit(1, ColumnType.Float).div(0),
  Expr.lit(0, ColumnType.Float).div(0),
  Expr.lit(Number.NaN, ColumnType.Float).div(0),
  Expr.lit(1e-300, ColumnType.Float).div(1e300),
  Expr.lit(1e300, ColumnType.Float).div(1e-300),
  Expr.lit(Number.POSITIVE_INFINITY, ColumnType.Float).minus(Number.POSITIVE_INFINITY),
  Expr.lit(Number.POSITIVE_INFINITY, ColumnType.Float).times(0),
  Expr.lit(Number.MAX_SAFE_INTEGER).times(2000),
  Expr.lit(Number.MAX_SAFE_INTEGER).times(-1000),
  Expr.lit(Number.MAX_SAFE_INTEGER).plus(2),
  Expr.lit(Number.MAX_SAFE_INTEGER).div(3),
  Expr.lit(-Number.MAX_SAFE_INTEGER).mod(1000),
  Expr.lit(5).div(0),
  Expr.lit(5).mod(0),
  Expr.lit(-7).div(2),
  Expr.lit(-7).mod(2),
  jlit([]).lt(jlit("a")),
  jlit(1).lt(jlit([1])),
  jlit(true).lt(jlit([])),
  jlit({ aa: 1 }).lt(jlit({ b: 1 })),
  jlit([1, 2]).gt(jlit([3])),
  jlit({ a: 1, b: 2 }).eq(jlit({ b: 2, a: 1.0 })),
  jlit({ a: [1, { b: "x" }] }).lt(jlit({ a: [1, { b: "y" }] })),
  Expr.lit("\uffff").lt("😀"),
  Expr.lit("ǅ").lower(),
  Expr.lit("ŉ ǰ ﬁ ß").upper(),
  Expr.lit("ΌΣΟΣ Σ").lower(),
  Expr.lit(null, ColumnType.String).length(),
  Expr.lit(null, ColumnType.Int).plus(1),
  Expr.lit(null, ColumnType.Bool).and(false),
  Expr.lit(null, ColumnType.Bool).or(true),
  Expr.lit<number | null>(null, ColumnType.Int).isIn([1, 2]),
  Expr.lit(3).isIn([1, any(Expr.lit(null, ColumnType.Int))]),
  Expr.lit(1).isIn([1, any(Expr.lit(null, ColumnType.Int))]),
  Expr.lit(null, ColumnType.Int).isIn([])
]

const suites = { arithmetic, comparisons, logic, strings, paths, casts } as const

Harness.forEachBackend("Expr: SQL and Evaluate agree", (test) => {
  for (const [name, exprs] of Object.entries(suites)) {
    test(`${name}: ${exprs.length} expressions over every row`, () =>
      Effect.gen(function* () {
        const env = yield* setup()
        for (const expr of exprs) yield* agree(env, expr)
      }))
  }

  test(`literals: ${literals.length} expressions, values and errors`, () =>
    Effect.gen(function* () {
      const env = yield* setup()
      for (const expr of literals) yield* agree(env, expr, false)
    }))

  test("hand-written expected values", () =>
    Effect.gen(function* () {
      const env = yield* setup()
      const values = Effect.fnUntraced(function* (expr: Expr.Expr<unknown>, overTable = true) {
        const result = yield* agree(env, expr, overTable)
        assert.property(result.sql, "values", Expr.show(expr.node))
        return (result.sql as { values: ReadonlyArray<unknown> }).values
      })
      assert.deepStrictEqual(yield* values(a.div(b)), [
        3,
        -3,
        3,
        0,
        null,
        null,
        9007199254740991,
        12,
        0,
        0,
        1,
        -3002399751580330
      ])
      assert.deepStrictEqual(yield* values(a.mod(b)), [1, -1, -1, 0, null, null, 0, 3, -1, 2, 0, -1])
      assert.deepStrictEqual((yield* values(a.plus(b)))[6], 9007199254740992)
      assert.deepStrictEqual(yield* values(p.and(q)), [
        true,
        false,
        false,
        false,
        null,
        null,
        false,
        false,
        true,
        false,
        false,
        null
      ])
      assert.deepStrictEqual(yield* values(p.or(q)), [
        true,
        true,
        true,
        false,
        true,
        true,
        null,
        null,
        true,
        true,
        true,
        null
      ])
      assert.deepStrictEqual((yield* values(s.length())).slice(0, 7), [5, 6, 10, 0, null, 8, 2])
      assert.deepStrictEqual((yield* values(s.upper())).slice(0, 2), ["HELLO", "STRASSE"])
      assert.deepStrictEqual((yield* values(s.lower()))[10], "σας οδος")
      assert.deepStrictEqual((yield* values(s.lower()))[5], "i\u0307stanbul")
      assert.deepStrictEqual((yield* values(s.lt(t))).slice(6, 9), [false, true, true])
      assert.deepStrictEqual(yield* values(j(meta, "a", "b")), [
        1,
        "two",
        null,
        null,
        null,
        [1, 2, 3],
        null,
        { c: true },
        null,
        null,
        null,
        null
      ])
      assert.deepStrictEqual(yield* values(a.isIn([any(b), 5])), [
        false,
        false,
        false,
        false,
        null,
        true,
        false,
        false,
        false,
        false,
        true,
        false
      ])
      assert.deepStrictEqual((yield* values(x.mod(y))).slice(0, 4), [0, -2.5, 0.1, 0])
      assert.deepStrictEqual((yield* values(z.cast("String"))).slice(0, 4), ["NaN", "Infinity", "-Infinity", "1e+308"])
      assert.deepStrictEqual(yield* values(Expr.lit(0.3, ColumnType.Float).mod(0.1), false), [0])
      const hex = yield* agree(env, Expr.lit("0x1F").cast("Float"), false)
      assert.deepStrictEqual(hex.sql, { error: "InvalidCast" })
    }))

  test("division by zero fails in SQL and throws DivisionByZero in the engine", () =>
    Effect.gen(function* () {
      const { sql, ctx, envs } = yield* setup()
      for (const expr of [a.div(0), a.mod(b.minus(b)), x.div(0)]) {
        const fragment = Option.getOrThrow(compile(expr.node, ctx))
        const error = yield* sql`SELECT ${fragment} AS v FROM t ORDER BY id`.pipe(Effect.flip)
        assert.strictEqual(evalErrorOf(error)?.errorType, "DivisionByZero")
        assert.strictEqual(evalErrorOf(error)?.message, "division by zero")
        const thrown = envs.map((env) => evaluateOutcome(expr.node, env))
        assert.deepStrictEqual(thrown[0], { error: "DivisionByZero" })
        assert.deepStrictEqual(thrown[4], { value: null }, "a null operand is null, not an error")
        assert.throws(() => Evaluate.evaluate(expr.node, envs[0]!, types), Evaluate.EvalError, "division by zero")
      }
    }))

  test("a user function call is not expressible in SQL", () =>
    Effect.gen(function* () {
      const { ctx } = yield* setup()
      assert.isTrue(Option.isNone(compile(call("embed", s).node, ctx)))
      assert.isTrue(Option.isNone(compile(a.plus(call("f", a)).node, ctx)))
      assert.isTrue(Option.isNone(compile(p.and(call("g").eq(1)).node, ctx)))
      assert.isTrue(Option.isNone(compile(ts.cast("Int" as "String").node, ctx)), "no cast from Timestamp to Int")
      assert.isTrue(Option.isSome(compile(a.plus(1).node, ctx)))
    }))

  test("fromSql converts what the driver returns", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<Record<string, unknown>>`SELECT 9007199254740993::int8 AS i, 'NaN'::float8 AS f,
        '2024-02-29'::date AS d, '{"a":[1,2.0]}'::jsonb AS j, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS u,
        '\\x01ff'::bytea AS b, '[1,2]'::vector AS v, NULL::int8 AS n`
      assert.strictEqual(typeof row!.i, "bigint")
      assert.strictEqual(fromSql(ColumnType.Int, row!.i), 9007199254740992)
      assert.isNaN(fromSql(ColumnType.Float, row!.f) as number)
      assert.strictEqual(fromSql(ColumnType.Date, row!.d), "2024-02-29")
      assert.deepStrictEqual(fromSql(ColumnType.Json(), row!.j), { a: [1, 2] })
      assert.strictEqual(fromSql(ColumnType.UUID, row!.u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
      assert.deepStrictEqual(fromSql(ColumnType.Binary, row!.b), bytes(1, 255))
      assert.deepStrictEqual(fromSql(ColumnType.Vector(2), row!.v), vec(1, 2))
      assert.isNull(fromSql(ColumnType.Int, row!.n))
    }))
})

// ---------------------------------------------------------------------------
// Random values: arithmetic, float text forms and casts over many rows.
// ---------------------------------------------------------------------------

/** Deterministic pseudo-random numbers (mulberry32), so failures reproduce. */
const prng = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let r = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
  return ((r ^ (r >>> 14)) >>> 0) / 4294967296
}

Harness.forEachBackend("Expr: random values", (test) => {
  test("arithmetic, mod, casts and text forms of 300 random rows agree", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const db = yield* Database.Database
      const next = prng(42)
      const randomFloat = () => {
        const magnitude = 10 ** Math.floor(next() * 24 - 12)
        const digits = Math.floor(next() * 4)
        const value = (next() - 0.5) * magnitude
        return digits === 0 ? Number(value.toPrecision(3)) : value
      }
      const randomInt = () =>
        next() < 0.1 ? Math.floor((next() - 0.5) * 2 * Number.MAX_SAFE_INTEGER) : Math.floor((next() - 0.5) * 2e6)
      const nonZero = (f: () => number) => () => {
        const value = f()
        return value === 0 ? 1 : value
      }
      yield* sql`CREATE TABLE t (id int4 PRIMARY KEY, c_1 int8, c_2 int8, c_3 float8, c_4 float8, c_5 text)`
      const count = 300
      const data = Array.from({ length: count }, (_, i) => {
        const f = randomFloat()
        return {
          id: i + 1,
          c_1: PgTypes.int8(BigInt(randomInt())),
          c_2: PgTypes.int8(BigInt(nonZero(() => Math.floor((next() - 0.5) * 2000))())),
          c_3: PgTypes.float8(f),
          c_4: PgTypes.float8(nonZero(randomFloat)()),
          c_5: PgTypes.text(next() < 0.5 ? String(f) : f.toExponential(Math.floor(next() * 17)))
        }
      })
      const [first, ...rest] = data
      yield* sql`INSERT INTO t ${sql.insert([first!, ...rest])}`
      const randomTypes = new Map<number, ColumnType.ColumnType>([
        [1, ColumnType.Int],
        [2, ColumnType.Int],
        [3, ColumnType.Float],
        [4, ColumnType.Float],
        [5, ColumnType.String]
      ])
      const ri = col<number | null>(1, "i", ColumnType.Int)
      const rj = col<number | null>(2, "j", ColumnType.Int)
      const rf = col<number | null>(3, "f", ColumnType.Float)
      const rg = col<number | null>(4, "g", ColumnType.Float)
      const rs = col<string | null>(5, "s", ColumnType.String)
      const randomColumnTypes: Expr.ColumnTypes = (id) => randomTypes.get(id)
      const ctx: CompileContext = {
        sql,
        column: (id) => sql(`c_${id}`),
        errorColumn: () => sql.literal("NULL::text"),
        types: randomColumnTypes,
        vector: (value) => db.vector(value)
      }
      const raw = yield* sql<Record<string, unknown>>`SELECT * FROM t ORDER BY id`
      const envs = raw.map(
        (r): Evaluate.Env => ({
          column: (id) => fromSql(randomTypes.get(id)!, r[`c_${id}`]),
          error: () => null,
          call: () => null
        })
      )
      const exprs = [
        ri.plus(rj),
        ri.minus(rj),
        ri.times(rj),
        ri.div(rj),
        ri.mod(rj),
        rf.plus(rg),
        rf.minus(rg),
        rf.times(rg),
        rf.div(rg),
        rf.mod(rg),
        rf.mod(rj),
        ri.mod(rg),
        ri.div(rg),
        rf.lt(rg),
        ri.lt(rf),
        rf.cast("String"),
        rf.cast("Json"),
        rf.cast("Int"),
        ri.cast("String"),
        rs.cast("Float"),
        rf.cast("String").cast("Float").eq(rf),
        rs.lt(rf.cast("String"))
      ]
      for (const expr of exprs) {
        const fragment = Option.getOrThrow(compile(expr.node, ctx))
        const type = Expr.typeOf(expr.node, randomColumnTypes)
        const result = yield* sql<{ v: unknown }>`SELECT ${fragment} AS v FROM t ORDER BY id`
        const label = Expr.show(expr.node)
        assert.deepStrictEqual(
          envs.map((env) => Evaluate.evaluate(expr.node, env, randomColumnTypes)),
          result.map((r) => fromSql(type, r.v)),
          label
        )
      }
      assert.strictEqual(envs.length, count)
    }))
})
