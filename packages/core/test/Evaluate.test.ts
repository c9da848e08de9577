import { assert, describe, it } from "@effect/vitest"
import { ColumnType, Evaluate, Expr } from "@tessera/core"

const Json = ColumnType.Json()

/** One row: column values by id, error properties of column 5. */
const row = (values: Record<number, unknown>, errors: Record<string, string> = {}): Evaluate.Env => ({
  column: (id) => values[id] ?? null,
  error: (id, prop) => (id === 5 ? (errors[prop] ?? null) : null),
  call: (node, args) => `${node.fn}(${args.map((a) => JSON.stringify(a)).join(", ")})`
})

const empty = row({})

const eval_ = (expr: Expr.Expr<unknown>, env: Evaluate.Env = empty, types?: Expr.ColumnTypes): unknown =>
  Evaluate.evaluate(expr.node, env, types)

/** The error type `expr` fails with. */
const failure = (expr: Expr.Expr<unknown>, env: Evaluate.Env = empty): string => {
  try {
    Evaluate.evaluate(expr.node, env)
  } catch (error) {
    assert.instanceOf(error, Evaluate.EvalError)
    return (error as Evaluate.EvalError).errorType
  }
  return assert.fail(`${Expr.show(expr.node)} did not fail`)
}

const lit = Expr.lit
const int = (n: number | null) => lit<number | null>(n, ColumnType.Int)
const float = (n: number | null) => lit<number | null>(n, ColumnType.Float)
const text = (s: string | null) => lit<string | null>(s, ColumnType.String)
const bool = (b: boolean | null) => lit<boolean | null>(b, ColumnType.Bool)
const json = (v: unknown) => lit<unknown>(v, Json)

const a = new Expr.ColumnRef<number | null>(1, "a", ColumnType.Int, false)
const x = new Expr.ColumnRef<number | null>(2, "x", ColumnType.Float, false)
const s = new Expr.ColumnRef<string | null>(5, "s", ColumnType.String, true)
const meta = new Expr.ColumnRef<unknown>(9, "meta", Json, false)
const types: Expr.ColumnTypes = (id) => ({ 1: ColumnType.Int, 2: ColumnType.Float, 5: ColumnType.String, 9: Json })[id]

describe("Evaluate", () => {
  describe("arithmetic", () => {
    it("propagates null", () => {
      assert.isNull(eval_(int(1).plus(int(null))))
      assert.isNull(eval_(float(null).times(2)))
      assert.isNull(eval_(int(null).neg()))
      assert.isNull(eval_(int(null).div(0)), "a null operand is null even when dividing by zero")
    })

    it("divides integers truncating toward zero, with the dividend's sign for modulo", () => {
      assert.strictEqual(eval_(int(7).div(2)), 3)
      assert.strictEqual(eval_(int(-7).div(2)), -3)
      assert.strictEqual(eval_(int(7).div(-2)), -3)
      assert.strictEqual(eval_(int(-7).mod(3)), -1)
      assert.strictEqual(eval_(int(7).mod(-3)), 1)
      assert.isTrue(Object.is(eval_(int(-6).mod(3)), 0), "no negative zero for integers")
      assert.isTrue(Object.is(eval_(int(0).neg()), 0))
    })

    it("uses the column types: Int / Int truncates, Int / Float does not", () => {
      const env = row({ 1: 7, 2: 2 })
      assert.strictEqual(eval_(a.div(2), env, types), 3)
      assert.strictEqual(eval_(a.div(x), env, types), 3.5)
      assert.strictEqual(eval_(x.div(a), env, types), 2 / 7)
    })

    it("fails on division or modulo by zero", () => {
      assert.strictEqual(failure(int(1).div(0)), "DivisionByZero")
      assert.strictEqual(failure(int(1).mod(0)), "DivisionByZero")
      assert.strictEqual(failure(float(1).div(0)), "DivisionByZero")
      assert.strictEqual(failure(float(0).div(0)), "DivisionByZero")
      assert.strictEqual(failure(float(1.5).mod(0)), "DivisionByZero")
      assert.isNaN(eval_(float(Number.NaN).div(0)) as number, "NaN / 0 is NaN, as in PostgreSQL")
    })

    it("keeps int8 results exact and fails beyond int8", () => {
      assert.strictEqual(eval_(int(Number.MAX_SAFE_INTEGER).plus(2)), Number(9007199254740993n))
      assert.strictEqual(eval_(int(Number.MAX_SAFE_INTEGER).times(1000)), Number(9007199254740991000n))
      assert.strictEqual(failure(int(Number.MAX_SAFE_INTEGER).times(2000)), "NumericOutOfRange")
    })

    it("fails on float8 overflow and underflow like PostgreSQL", () => {
      assert.strictEqual(failure(float(1e308).times(10)), "NumericOutOfRange")
      assert.strictEqual(failure(float(1e308).plus(1e308)), "NumericOutOfRange")
      assert.strictEqual(failure(float(1e-308).times(1e-308)), "NumericOutOfRange")
      assert.strictEqual(failure(float(1e-300).div(1e300)), "NumericOutOfRange")
      assert.strictEqual(eval_(float(Number.POSITIVE_INFINITY).times(2)), Number.POSITIVE_INFINITY)
      assert.isNaN(eval_(float(Number.POSITIVE_INFINITY).minus(Number.POSITIVE_INFINITY)) as number)
    })

    it("computes Float % Float on the numeric values of the operands", () => {
      assert.strictEqual(eval_(float(0.3).mod(0.1)), 0, "0.3 and 0.1 as numeric, not binary fmod")
      assert.strictEqual(eval_(float(-5.5).mod(2)), -1.5)
      assert.strictEqual(eval_(float(5.5).mod(-2)), 1.5)
      assert.strictEqual(eval_(float(1000000000000005).mod(7)), 6, "15 significant digits, ties to even")
      assert.strictEqual(eval_(float(0.1 + 0.2).mod(Number.POSITIVE_INFINITY)), 0.3)
      assert.isTrue(Object.is(eval_(float(-4).mod(2)), 0))
      assert.isNaN(eval_(float(Number.POSITIVE_INFINITY).mod(2)) as number)
      assert.isNaN(eval_(float(Number.NaN).mod(0)) as number)
      assert.strictEqual(failure(float(Number.POSITIVE_INFINITY).mod(0)), "DivisionByZero")
    })

    it("mixes Int and Float as Float, and reads JSON numbers", () => {
      assert.strictEqual(eval_(int(1).plus(float(0.5))), 1.5)
      assert.strictEqual(eval_((json(2.5) as Expr.Expr<number>).plus(1)), 3.5)
      assert.strictEqual(eval_((json(2.5) as Expr.Expr<number>).neg()), -2.5)
      assert.strictEqual(failure((json("x") as Expr.Expr<number>).plus(1)), "InvalidCast")
    })
  })

  describe("logic", () => {
    const values = [true, false, null] as const

    it("and / or / not are three-valued", () => {
      const and = values.map((l) => values.map((r) => eval_(bool(l).and(bool(r)))))
      assert.deepStrictEqual(and, [
        [true, false, null],
        [false, false, false],
        [null, false, null]
      ])
      const or = values.map((l) => values.map((r) => eval_(bool(l).or(bool(r)))))
      assert.deepStrictEqual(or, [
        [true, true, true],
        [true, false, null],
        [true, null, null]
      ])
      assert.deepStrictEqual(
        values.map((v) => eval_(bool(v).not())),
        [false, true, null]
      )
    })

    it("short-circuits like PostgreSQL's executor", () => {
      assert.isFalse(eval_(bool(false).and(int(1).div(0).eq(1))))
      assert.isTrue(eval_(bool(true).or(int(1).div(0).eq(1))))
      assert.strictEqual(failure(bool(null).and(int(1).div(0).eq(1))), "DivisionByZero")
    })

    it("isNull is never null", () => {
      assert.isTrue(eval_(int(null).isNull()))
      assert.isFalse(eval_(int(0).isNull()))
      assert.isTrue(eval_(int(0).isNotNull()))
    })
  })

  describe("isIn", () => {
    it("is null for a null value, or when nothing matches and a candidate is null", () => {
      assert.isNull(eval_(int(null).isIn([1, 2])))
      assert.isTrue(eval_(int(1).isIn([1, int(null) as Expr.Expr<number>])))
      assert.isNull(eval_(int(3).isIn([1, int(null) as Expr.Expr<number>])))
      assert.isFalse(eval_(int(3).isIn([1, 2])))
    })

    it("an empty list is false, even for null", () => {
      assert.isFalse(eval_(int(null).isIn([])))
    })

    it("compares across types like `=`", () => {
      assert.isTrue(eval_(int(2).isIn([float(2.0) as Expr.Expr<number>])))
      assert.isTrue(eval_(json({ a: 1 }).isIn([json({ a: 1.0 }), "x"])))
      assert.isTrue(eval_(float(Number.NaN).isIn([Number.NaN])))
    })
  })

  describe("comparison", () => {
    it('compares strings by code point, like COLLATE "C"', () => {
      assert.isTrue(eval_(text("\uffff").lt("😀")), "U+FFFF < U+1F600 although UTF-16 says otherwise")
      assert.isTrue(eval_(text("B").lt("a")))
      assert.isTrue(eval_(text("abc").lt("abcd")))
      assert.isTrue(eval_(text("é").gt("z")))
      assert.strictEqual(Evaluate.compareText("a\u{10000}", "a\uffff"), 1)
    })

    it("orders floats with NaN above everything and equal to itself", () => {
      assert.isTrue(eval_(float(Number.NaN).eq(Number.NaN)))
      assert.isTrue(eval_(float(Number.NaN).gt(Number.POSITIVE_INFINITY)))
      assert.isTrue(eval_(float(-0).eq(0)))
      assert.isNull(eval_(float(null).eq(1)))
    })

    it("compares timestamps by instant", () => {
      const t1 = lit(new Date("2024-01-01T00:00:00.000Z"))
      assert.isTrue(eval_(t1.eq(new Date(Date.UTC(2024, 0, 1)))))
      assert.isTrue(eval_(t1.lt(new Date("2024-01-01T00:00:00.001Z"))))
    })

    it("compares JSON as jsonb: key order irrelevant, 1 = 1.0, jsonb's type order", () => {
      assert.isTrue(eval_(json({ a: 1, b: [1, 2] }).eq(json({ b: [1, 2.0], a: 1 }))))
      assert.isFalse(eval_(json({ a: 1 }).eq(json({ a: 1, b: null }))))
      assert.isTrue(eval_(json("a").lt(json(1))), "string < number")
      assert.isTrue(eval_(json(true).lt(json([0]))), "boolean < array")
      assert.isTrue(eval_(json([9]).lt(json({}))), "array < object")
      assert.isTrue(eval_(json([1, 2]).gt(json([3]))), "longer arrays are greater")
      assert.isTrue(eval_(json({ aa: 1 }).lt(json({ b: 1 }))), "keys in storage order")
      assert.isTrue(eval_(json([]).lt(json("a"))), "a top-level [] sorts below scalars")
      assert.isTrue(eval_(json({ n: 1 }).eq({ n: 1 })))
      assert.isTrue(eval_(json("x").eq("x")), "a string compares as a JSON string")
      assert.isTrue(eval_(json(1).eq(1)))
    })

    it("compares vectors and bytes element by element, then by length", () => {
      const v = lit(Float32Array.from([1, 2, 3]))
      assert.isTrue(eval_(v.eq(Float32Array.from([1, 2, 3]))))
      assert.isTrue(eval_(v.gt(Float32Array.from([1, 2]))))
      assert.isTrue(eval_(v.lt(Float32Array.from([1, 3]))))
      const b = lit(Uint8Array.from([1, 255]))
      assert.isTrue(eval_(b.gt(Uint8Array.from([1, 2, 3]))))
      assert.isTrue(eval_(b.lt(Uint8Array.from([1, 255, 0]))))
    })
  })

  describe("strings", () => {
    it("length counts code points", () => {
      assert.strictEqual(eval_(text("😀é").length()), 2)
      assert.strictEqual(eval_(text("").length()), 0)
      assert.isNull(eval_(text(null).length()))
    })

    it("lower and upper use full Unicode case mappings", () => {
      assert.strictEqual(eval_(text("Straße").upper()), "STRASSE")
      assert.strictEqual(eval_(text("ΣΑΣ ΟΔΟΣ").lower()), "σας οδος")
      assert.strictEqual(eval_(text("İ").lower()), "i\u0307")
      assert.strictEqual(eval_(text("ÉLAN").lower()), "élan")
    })

    it("trim removes spaces, tabs and line breaks at both ends only", () => {
      assert.strictEqual(eval_(text(" \t\r\n a b \n").trim()), "a b")
      assert.strictEqual(eval_(text("\u00a0x\u00a0").trim()), "\u00a0x\u00a0", "no-break spaces stay")
      assert.strictEqual(eval_(text(" \t ").trim()), "")
    })

    it("contains, startsWith and endsWith (an empty needle always matches)", () => {
      assert.isTrue(eval_(text("hello").contains("ell")))
      assert.isTrue(eval_(text("hello").contains("")))
      assert.isFalse(eval_(text("hello").contains("L")))
      assert.isTrue(eval_(text("hello").startsWith("")))
      assert.isTrue(eval_(text("hello").endsWith("llo")))
      assert.isNull(eval_(text("hello").contains(text(null))))
    })

    it("replace replaces every occurrence literally; an empty search changes nothing", () => {
      assert.strictEqual(eval_(text("a.b.c").replace(".", "$&-")), "a$&-b$&-c")
      assert.strictEqual(eval_(text("abc").replace("", "x")), "abc")
      assert.strictEqual(eval_(text("aaa").replace("aa", "b")), "ba")
      assert.isNull(eval_(text("abc").replace(text(null) as Expr.Expr<string>, "x")))
    })

    it("concat is null when any part is null", () => {
      assert.strictEqual(eval_(text("a").concat("b", "c")), "abc")
      assert.isNull(eval_(text("a").concat(text(null), "c")))
    })

    it("reads JSON strings as text", () => {
      assert.strictEqual(eval_((json("ABC") as Expr.Expr<string>).lower()), "abc")
      assert.strictEqual(eval_((json({ a: 1 }) as Expr.Expr<string>).length()), 8, '{"a": 1}')
    })
  })

  describe("JSON paths", () => {
    const env = row({ 9: { a: { b: [10, 20, 30] }, n: null, s: "x", "0": "zero" } })
    const path = (...keys: Array<string | number>) =>
      eval_(
        keys.reduce<Expr.Expr<unknown>>((e, k) => e.get(k), meta),
        env,
        types
      )

    it("navigates objects and arrays", () => {
      assert.deepStrictEqual(path("a", "b"), [10, 20, 30])
      assert.strictEqual(path("a", "b", 1), 20)
      assert.strictEqual(path("a", "b", -1), 30, "negative indexes count from the end")
      assert.strictEqual(path("0"), "zero")
    })

    it("is null for a missing key, an index out of range, or the wrong shape", () => {
      assert.isNull(path("missing"))
      assert.isNull(path("missing", "deeper"))
      assert.isNull(path("a", "b", 3))
      assert.isNull(path("a", "b", -4))
      assert.isNull(path("a", "b", "0"), "a string key on an array")
      assert.isNull(path(0), "an index on an object")
      assert.isNull(path("s", 0), "an index on a scalar")
      assert.isNull(path("n"), "a JSON null is SQL NULL")
      assert.isNull(path("a", "b", 1.5))
    })

    it("works through the typed builder's property access", () => {
      const m = meta as unknown as Record<string, Record<string, Expr.Expr<unknown>>>
      assert.deepStrictEqual(eval_(m.a!.b!, env, types), [10, 20, 30])
    })
  })

  describe("casts", () => {
    it("to String, in PostgreSQL's text forms", () => {
      assert.strictEqual(eval_(int(-42).cast("String")), "-42")
      assert.strictEqual(eval_(bool(true).cast("String")), "true")
      assert.deepStrictEqual(
        [1e15, 123456789012345, 0.0001, 1e-5, -0, 1.5e-7, 0.1 + 0.2, Number.NaN, Number.NEGATIVE_INFINITY].map((f) =>
          eval_(float(f).cast("String"))
        ),
        ["1e+15", "123456789012345", "0.0001", "1e-05", "-0", "1.5e-07", "0.30000000000000004", "NaN", "-Infinity"]
      )
      assert.strictEqual(eval_(json("x").cast("String")), "x", "a JSON string is unquoted")
      assert.strictEqual(
        eval_(json({ b: [1, 2], a: "x", aa: true, é: 1e-7 }).cast("String")),
        '{"a": "x", "b": [1, 2], "aa": true, "é": 0.0000001}'
      )
      assert.strictEqual(eval_(lit(new Date("2024-01-02T03:04:05.123Z")).cast("String")), "2024-01-02T03:04:05.123Z")
      assert.strictEqual(eval_(lit(Float32Array.from([1e6, 0.1, 1e-5, -0])).cast("String")), "[1e+06,0.1,1e-05,-0]")
      assert.strictEqual(eval_(lit(Uint8Array.from([1, 255])).cast("String")), "\\x01ff")
    })

    it("to Int: decimal text, float8 rounded half to even, numeric half away from zero", () => {
      assert.strictEqual(eval_(text(" +42 ").cast("Int")), 42)
      assert.strictEqual(failure(text("0x1F").cast("Int")), "InvalidCast")
      assert.strictEqual(failure(text("1_000").cast("Int")), "InvalidCast")
      assert.strictEqual(failure(text("1.5").cast("Int")), "InvalidCast")
      assert.strictEqual(failure(text("9223372036854775808").cast("Int")), "NumericOutOfRange")
      assert.deepStrictEqual(
        [2.5, 3.5, -2.5, -0.5, 0.49].map((f) => eval_(float(f).cast("Int"))),
        [2, 4, -2, 0, 0]
      )
      assert.strictEqual(failure(float(Number.NaN).cast("Int")), "NumericOutOfRange")
      assert.deepStrictEqual(
        [2.5, -2.5].map((n) => eval_(json(n).cast("Int"))),
        [3, -3]
      )
      assert.strictEqual(failure(json("12").cast("Int")), "InvalidCast")
      assert.strictEqual(eval_(bool(true).cast("Int")), 1)
    })

    it("to Float", () => {
      assert.strictEqual(eval_(text(" -2e3 ").cast("Float")), -2000)
      assert.strictEqual(eval_(text("-Infinity").cast("Float")), Number.NEGATIVE_INFINITY)
      assert.isNaN(eval_(text("nan").cast("Float")) as number)
      assert.strictEqual(failure(text("0x10").cast("Float")), "InvalidCast")
      assert.strictEqual(failure(text("1e400").cast("Float")), "NumericOutOfRange")
      assert.strictEqual(failure(text("1e-400").cast("Float")), "NumericOutOfRange")
      assert.strictEqual(eval_(text("1e-310").cast("Float")), 1e-310)
      assert.strictEqual(eval_(json(1.5).cast("Float")), 1.5)
      assert.strictEqual(eval_(int(3).cast("Float")), 3)
    })

    it("to Bool: PostgreSQL's boolean words, non-zero numbers, JSON booleans", () => {
      assert.deepStrictEqual(
        ["t", "TRUE", " yes ", "on", "1", "f", "no", "of", "0"].map((t) => eval_(text(t).cast("Bool"))),
        [true, true, true, true, true, false, false, false, false]
      )
      assert.strictEqual(failure(text("o").cast("Bool")), "InvalidCast")
      assert.strictEqual(failure(text("2").cast("Bool")), "InvalidCast")
      assert.isTrue(eval_(int(-3).cast("Bool")))
      assert.isTrue(eval_(json(true).cast("Bool")))
      assert.strictEqual(failure(json(1).cast("Bool")), "InvalidCast")
    })

    it("to Json: text is parsed, other values become JSON values", () => {
      assert.deepStrictEqual(eval_(text('{"a":[1,2.50]}').cast("Json")), { a: [1, 2.5] })
      assert.isNull(eval_(text("null").cast("Json")), "JSON null is SQL NULL")
      assert.isTrue(Object.is(eval_(text("-0").cast("Json")), 0))
      assert.strictEqual(failure(text("[1,").cast("Json")), "InvalidCast")
      assert.strictEqual(failure(text('"\\u0000"').cast("Json")), "InvalidCast")
      assert.strictEqual(eval_(float(Number.NaN).cast("Json")), "NaN")
      assert.strictEqual(eval_(lit(new Date(0)).cast("Json")), "1970-01-01T00:00:00.000Z")
      assert.deepStrictEqual(eval_(lit(Float32Array.from([0.1, 1.5])).cast("Json")), [0.1, 1.5])
    })

    it("has no cast between unrelated types", () => {
      const timestampToInt = new Expr.Expr<number>(
        { _tag: "Cast", expr: lit(new Date(0)).node, to: ColumnType.Int },
        ColumnType.Int
      )
      assert.isFalse(Evaluate.castable(ColumnType.Timestamp, ColumnType.Int))
      assert.strictEqual(failure(timestampToInt), "InvalidCast")
    })
  })

  describe("error properties and calls", () => {
    it("reads a computed cell's error type and message", () => {
      const env = row({}, { errorType: "DivisionByZero", errorMessage: "division by zero" })
      assert.strictEqual(eval_(s.errorType, env), "DivisionByZero")
      assert.strictEqual(eval_(s.errorMessage, env), "division by zero")
      assert.isNull(eval_(s.errorType, empty))
    })

    it("evaluates a call's arguments, then asks the engine for its result", () => {
      const call = new Expr.Expr<string>(
        {
          _tag: "Call",
          fn: "greet",
          version: 1,
          args: [a.plus(1).node, text("x").upper().node],
          type: ColumnType.String
        },
        ColumnType.String
      )
      assert.strictEqual(eval_(call.concat("!"), row({ 1: 41 }), types), 'greet(42, "X")!')
    })
  })
})
