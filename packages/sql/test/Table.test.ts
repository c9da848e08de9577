import { assert, describe, it } from "@effect/vitest"
import { Column, Dir, Expr, Fn, Media, Table } from "@tessera/core"
import { Effect, Schema, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeChildProcess from "node:child_process"
import * as NodePath from "node:path"
import { Migrations } from "../src/index.ts"
import { Harness } from "../src/testing/index.ts"

/** A function that counts its calls, so tests can prove what was (not) computed. */
const counted = <A>(name: string, f: (x: number) => A, returns: Column.Any = Column.Int) => {
  const calls = { n: 0, args: [] as Array<unknown> }
  const fn = Fn.make({
    name,
    params: { x: Column.Int },
    returns,
    run: ({ x }) => {
      calls.n++
      calls.args.push(x)
      return f(x) as any
    }
  })
  return { fn, calls }
}

let unique = 0
const name = (base: string) => `${base}_${process.pid}_${unique++}`

Harness.forEachBackend("Catalog", (test) => {
  test("directories: create, nested, list, drop (force), errors", () =>
    Effect.gen(function* () {
      yield* Dir.create("proj")
      yield* Dir.create("proj/a/b", { parents: true })
      assert.deepStrictEqual(yield* Dir.list(""), ["proj"])
      assert.deepStrictEqual(yield* Dir.list("proj", { recursive: true }), ["proj/a", "proj/a/b"])
      const exists = yield* Effect.flip(Dir.create("proj"))
      assert.propertyVal(exists, "reason", "AlreadyExists")
      yield* Dir.create("proj", { ifExists: "ignore" })
      const missingParent = yield* Effect.flip(Dir.create("nope/child"))
      assert.propertyVal(missingParent, "reason", "NotFound")
      assert.match(missingParent.message, /nope/)
      yield* Table.create("proj/a/t", { x: Column.Int })
      const notEmpty = yield* Effect.flip(Dir.drop("proj/a"))
      assert.propertyVal(notEmpty, "reason", "NotEmpty")
      yield* Dir.drop("proj/a", { force: true })
      assert.deepStrictEqual(yield* Dir.list("proj", { recursive: true }), [])
      assert.deepStrictEqual(yield* Table.list("", { recursive: true }), [])
      const gone = yield* Effect.flip(Table.get("proj/a/t"))
      assert.propertyVal(gone, "reason", "NotFound")
      yield* Dir.drop("ghost", { ifNotExists: "ignore" })
    }))

  test("tables: create with ifExists, get, list, move, drop; names validated", () =>
    Effect.gen(function* () {
      yield* Dir.create("d")
      const t = yield* Table.create("d/films", { title: Column.String, year: Column.nullable(Column.Int) })
      assert.strictEqual(t.path, "d/films")
      const dup = yield* Effect.flip(Table.create("d/films", { x: Column.Int }))
      assert.propertyVal(dup, "reason", "AlreadyExists")
      const same = yield* Table.create("d/films", { x: Column.Int }, { ifExists: "ignore" })
      assert.strictEqual(same.id, t.id)
      yield* t.insert([{ title: "Alien" }])
      const replaced = yield* Table.create("d/films", { x: Column.Int }, { ifExists: "replace" })
      assert.notStrictEqual(replaced.id, t.id)
      assert.strictEqual(yield* replaced.count(), 0)
      // The old handle refers to a table that no longer exists.
      const stale = yield* Effect.flip(t.count())
      assert.strictEqual(stale._tag, "CatalogError")

      const opened = yield* Table.get("d/films")
      assert.deepStrictEqual(
        (yield* opened.describe()).map((c) => [c.name, c.type, c.nullable]),
        [["x", "Int", false]]
      )
      yield* Table.create("top", { a: Column.String })
      assert.deepStrictEqual(yield* Table.list(), ["d/films", "top"])
      assert.deepStrictEqual(yield* Table.list("", { recursive: false }), ["top"])
      yield* Table.move("top", "d/top2")
      assert.deepStrictEqual(yield* Table.list("d"), ["d/films", "d/top2"])
      yield* Table.drop("d/top2")
      assert.deepStrictEqual(yield* Table.list(), ["d/films"])
      const dropMissing = yield* Effect.flip(Table.drop("d/top2"))
      assert.propertyVal(dropMissing, "reason", "NotFound")

      const bad = [
        ["", "empty"],
        ["_hidden", "reserved"],
        ["has space", "letters, digits"],
        ["a//b", "empty segment"],
        ["missing/t", "does not exist"]
      ] as const
      for (const [path, hint] of bad) {
        const error = yield* Effect.flip(Table.create(path, { x: Column.Int }))
        assert.include(error.message, hint, path)
      }
      const reservedColumn = yield* Effect.flip(Table.create("r", { insert: Column.Int } as any))
      assert.propertyVal(reservedColumn, "reason", "InvalidName")
      const badColumn = yield* Effect.flip(Table.create("r", { "1x": Column.Int } as any))
      assert.propertyVal(badColumn, "reason", "InvalidName")
      const dirClash = yield* Effect.flip(Table.create("d", { x: Column.Int }))
      assert.propertyVal(dirClash, "reason", "AlreadyExists")
    }))
})

Harness.forEachBackend("Insert and column types", (test) => {
  test("every column type round-trips", () =>
    Effect.gen(function* () {
      const Meta = Schema.Struct({ a: Schema.Number, tags: Schema.Array(Schema.String) })
      const t = yield* Table.create("types", {
        s: Column.String,
        i: Column.Int,
        f: Column.Float,
        b: Column.Bool,
        ts: Column.Timestamp,
        d: Column.Date,
        u: Column.UUID,
        j: Column.Json(),
        tj: Column.Json(Meta),
        arr: Column.Array([2, null], "Float"),
        v: Column.Vector(3),
        bin: Column.Binary,
        img: Column.Image,
        vid: Column.nullable(Column.Video),
        n: Column.nullable(Column.Int)
      })
      const when = new Date("2024-05-06T07:08:09.123Z")
      const result = yield* t.insert([
        {
          s: "héllo",
          i: 9007199254740991,
          f: 1.5,
          b: true,
          ts: when,
          d: "2024-02-29",
          u: "123E4567-E89B-12D3-A456-426614174000",
          j: { x: [1, { y: null }] },
          tj: { a: 1, tags: ["x"] },
          arr: [
            [1, 2],
            [3, 4.5]
          ],
          v: [0.5, -1, 2],
          bin: new Uint8Array([0, 255, 7]),
          img: "/tmp/cat.jpg"
        }
      ])
      assert.strictEqual(result.inserted, 1)
      const [row] = yield* t.collect()
      assert.deepStrictEqual(row, {
        s: "héllo",
        i: 9007199254740991,
        f: 1.5,
        b: true,
        ts: when,
        d: "2024-02-29",
        u: "123e4567-e89b-12d3-a456-426614174000",
        j: { x: [1, { y: null }] },
        tj: { a: 1, tags: ["x"] },
        arr: [
          [1, 2],
          [3, 4.5]
        ],
        v: new Float32Array([0.5, -1, 2]),
        bin: new Uint8Array([0, 255, 7]),
        img: new Media.MediaRef("Image", "/tmp/cat.jpg"),
        vid: null,
        n: null
      })
    }))

  test("a media column made before media cells (migration 8) gets them; its rows read and write as before", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const t = yield* Table.create("old", { name: Column.String, img: Column.Image })
      yield* t.insert([{ name: "a", img: "/tmp/a.png" }])
      const id = t.meta.columns.find((c) => c.name === "img")!.id
      // As an older Tessera left it: the value column only, migration 8 not applied.
      yield* sql.unsafe(
        `ALTER TABLE tessera_data.t_${t.id} DROP COLUMN s_${id}, DROP COLUMN et_${id}, DROP COLUMN em_${id}, DROP COLUMN ea_${id}`
      )
      yield* sql`DELETE FROM tessera.migrations WHERE id = 8`
      assert.deepStrictEqual(yield* Migrations.run(sql), [8])
      yield* t.insert([{ name: "b", img: "/tmp/b.png" }])
      const rows = yield* t
        .select((c) => ({ name: c.name, img: c.img, error: c.img.errorType }))
        .orderBy("name")
        .collect()
      assert.deepStrictEqual(rows, [
        { name: "a", img: new Media.MediaRef("Image", "/tmp/a.png"), error: null },
        { name: "b", img: new Media.MediaRef("Image", "/tmp/b.png"), error: null }
      ])
    }))

  test("invalid input is rejected with the row index and column, and nothing is written", () =>
    Effect.gen(function* () {
      const Meta = Schema.Struct({ a: Schema.Number })
      const t = yield* Table.create("strict", {
        id: Column.Int,
        name: Column.nullable(Column.String),
        meta: Column.nullable(Column.Json(Meta)),
        v: Column.nullable(Column.Vector(2))
      })
      const wrongType = yield* Effect.flip(t.insert([{ id: 1 }, { id: "two" as any }, { id: 3 }]))
      assert.strictEqual(wrongType._tag, "ValidationError")
      if (wrongType._tag !== "ValidationError") return
      assert.strictEqual(wrongType.row, 1)
      assert.strictEqual(wrongType.column, "id")
      assert.match(wrongType.message, /row 1: column id \(Int\).*expected an integer, got a string/)
      assert.strictEqual(yield* t.count(), 0)

      const missing = yield* Effect.flip(t.insert([{ id: 1 }, { name: "x" } as any]))
      assert.deepInclude(missing, { row: 1, column: "id" })
      const unknown = yield* Effect.flip(t.insert([{ id: 1, nope: 2 } as any]))
      assert.deepInclude(unknown, { row: 0, column: "nope" })
      const badJson = yield* Effect.flip(
        t.insert([{ id: 1 }, { id: 2 }, { id: 3, meta: { a: "not a number" } as any }])
      )
      assert.deepInclude(badJson, { row: 2, column: "meta" })
      assert.match(badJson.message, /schema/)
      const badVector = yield* Effect.flip(t.insert([{ id: 1, v: [1, 2, 3] }]))
      assert.deepInclude(badVector, { row: 0, column: "v" })
      assert.strictEqual(yield* t.count(), 0)

      const ok = yield* t.insert([
        { id: 1, meta: { a: 2 } },
        { id: 2, name: null }
      ])
      assert.strictEqual(ok.inserted, 2)
      assert.strictEqual(yield* t.count(), 2)
    }))

  test("a typed Json column reopened by path still validates against its schema", () =>
    Effect.gen(function* () {
      yield* Table.create("typed", { meta: Column.Json(Schema.Struct({ n: Schema.Int })) })
      const opened = yield* Table.get("typed")
      const error = yield* Effect.flip(opened.insert([{ meta: { n: 1.5 } }]))
      assert.deepInclude(error, { row: 0, column: "meta" })
      yield* opened.insert([{ meta: { n: 2 } }])
      assert.deepStrictEqual(yield* opened.collect(), [{ meta: { n: 2 } }])
    }))

  test("large inserts are written in batches and read back in order", () =>
    Effect.gen(function* () {
      const t0 = yield* Table.create("big", { i: Column.Int, s: Column.String })
      // A computed column makes each row 8 parameters: more than one statement can bind.
      const t = yield* t0.addComputedColumn("j", t0.c.i.times(2))
      const rows = Array.from({ length: 12_345 }, (_, i) => ({ i, s: `row ${i}` }))
      const result = yield* t.insert(rows)
      assert.strictEqual(result.inserted, rows.length)
      assert.strictEqual(yield* t.count(), rows.length)
      const tail = yield* t.tail(2)
      assert.deepStrictEqual(tail, [
        { i: 12343, s: "row 12343", j: 24686 },
        { i: 12344, s: "row 12344", j: 24688 }
      ])
      const updated = yield* t.update((c) => ({ i: c.i.plus(1) }))
      assert.strictEqual(updated.updated, rows.length)
      assert.strictEqual(yield* t.where((c) => c.j.eq(c.i.times(2))).count(), rows.length)
    }))
})

Harness.forEachBackend("Queries", (test) => {
  const setup = Effect.gen(function* () {
    const Meta = Schema.Struct({ a: Schema.Struct({ b: Schema.Number }), list: Schema.Array(Schema.Number) })
    const t = yield* Table.create("q", {
      id: Column.Int,
      name: Column.String,
      score: Column.nullable(Column.Float),
      meta: Column.nullable(Column.Json(Meta))
    })
    yield* t.insert([
      { id: 1, name: "Alpha", score: 3.5, meta: { a: { b: 1 }, list: [10, 20] } },
      { id: 2, name: "beta", score: null, meta: { a: { b: 2 }, list: [30] } },
      { id: 3, name: "Gamma ray", score: 9, meta: null },
      { id: 4, name: "delta", score: 1.25, meta: { a: { b: 4 }, list: [] } },
      { id: 5, name: "  epsilon ", score: 9, meta: { a: { b: 5 }, list: [1, 2, 3] } }
    ])
    return t
  })

  test("select, where, orderBy (several keys), limit/offset, count, head, tail, stream", () =>
    Effect.gen(function* () {
      const t = yield* setup
      const rows = yield* t
        .where((c) => c.score.gt(2))
        .select((c) => ({ id: c.id, double: c.score.times(2), upper: c.name.upper() }))
        .orderBy("double", "desc")
        .orderBy("id", "asc")
        .collect()
      assert.deepStrictEqual(rows, [
        { id: 3, double: 18, upper: "GAMMA RAY" },
        { id: 5, double: 18, upper: "  EPSILON " },
        { id: 1, double: 7, upper: "ALPHA" }
      ])
      const page = yield* t.orderBy("id", "desc").limit(2).offset(1).collect()
      assert.deepStrictEqual(
        page.map((r) => r.id),
        [4, 3]
      )
      assert.strictEqual(yield* t.count(), 5)
      assert.strictEqual(yield* t.where((c) => c.score.isNull()).count(), 1)
      assert.deepStrictEqual(
        (yield* t.head(2)).map((r) => r.id),
        [1, 2]
      )
      assert.deepStrictEqual(
        (yield* t.tail(2)).map((r) => r.id),
        [4, 5]
      )
      const streamed = yield* Stream.runCollect(
        t
          .where((c) => c.id.ne(2))
          .select((c) => ({ id: c.id, n: c.name.length() }))
          .stream()
      )
      assert.deepStrictEqual(streamed, [
        { id: 1, n: 5 },
        { id: 3, n: 9 },
        { id: 4, n: 5 },
        { id: 5, n: 10 }
      ])
    }))

  test("expressions give the same answers pushed down to SQL and evaluated in the engine", () =>
    Effect.gen(function* () {
      const t = yield* setup
      const c = t.c
      const outputs = {
        id: c.id,
        arith: c.id.times(10).plus(c.id.div(2)).minus(c.id.mod(3)),
        flt: c.score.div(2),
        cmp: c.score.ge(3.5),
        logic: c.score.gt(2).and(c.name.startsWith("G")).or(c.id.eq(4)),
        notNull: c.score.isNull().not(),
        isIn: c.id.isIn([1, 3, 5]),
        len: c.name.length(),
        lower: c.name.lower(),
        trim: c.name.trim(),
        contains: c.name.contains("ta"),
        ends: c.name.endsWith("a"),
        replace: c.name.replace("a", "4"),
        concat: c.name.concat("!", "?"),
        path: c.meta.a.b,
        index: c.meta.list[0],
        missing: c.meta.get("nope"),
        cast: c.score.cast("Int"),
        castStr: c.id.cast("String"),
        neg: c.id.neg()
      }
      const pushed = yield* t.select(outputs).orderBy("id").collect()
      const engine = yield* t.select(outputs).orderBy("id").inEngine().collect()
      assert.deepStrictEqual(engine, pushed)
      assert.deepStrictEqual(pushed[0], {
        id: 1,
        arith: 9,
        flt: 1.75,
        cmp: true,
        logic: false,
        notNull: true,
        isIn: true,
        len: 5,
        lower: "alpha",
        trim: "Alpha",
        contains: false,
        ends: true,
        replace: "Alph4",
        concat: "Alpha!?",
        path: 1,
        index: 10,
        missing: null,
        cast: 4,
        castStr: "1",
        neg: -1
      })
      assert.strictEqual(pushed[1]!.cmp, null)
      const where = (q: typeof t) =>
        q
          .where((c) => c.name.lower().contains("a").and(c.score.lt(9).or(c.score.isNull())))
          .select((c) => ({ id: c.id }))
          .orderBy("id")
      assert.deepStrictEqual(yield* where(t).collect(), [{ id: 1 }, { id: 2 }, { id: 4 }])
      assert.deepStrictEqual(yield* where(t).inEngine().collect(), [{ id: 1 }, { id: 2 }, { id: 4 }])
      assert.strictEqual(yield* where(t).inEngine().count(), 3)
      const ordered = yield* t
        .orderBy((c) => c.name.lower())
        .select((c) => ({ id: c.id }))
        .inEngine()
        .collect()
      const orderedSql = yield* t
        .orderBy((c) => c.name.lower())
        .select((c) => ({ id: c.id }))
        .collect()
      assert.deepStrictEqual(ordered, orderedSql)
    }))

  test("functions in where, select and orderBy are evaluated in the engine", () =>
    Effect.gen(function* () {
      const t = yield* setup
      const { fn: square, calls } = counted(name("square"), (x) => x * x)
      const rows = yield* t
        .where((c) => square({ x: c.id }).gt(4))
        .select((c) => ({ id: c.id, sq: square({ x: c.id }) }))
        .orderBy((c) => square({ x: c.id }).neg())
        .limit(2)
        .collect()
      assert.deepStrictEqual(rows, [
        { id: 5, sq: 25 },
        { id: 4, sq: 16 }
      ])
      assert.isAbove(calls.n, 0)
    }))
})

Harness.forEachBackend("Computed columns", (test) => {
  test("backfill, then incremental inserts; a counting function is called exactly once per new row", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("cc", { c1: Column.Int })
      yield* t.insert(Array.from({ length: 100 }, (_, i) => ({ c1: i })))
      const t2 = yield* t.addComputedColumn("c2", t.c.c1.plus(1))
      const { fn, calls } = counted(name("triple"), (x) => x * 3)
      const t3 = yield* t2.addComputedColumn("c3", fn({ x: t2.c.c1 }))
      assert.strictEqual(calls.n, 100)
      const rows = yield* t3.collect()
      assert.strictEqual(rows.length, 100)
      for (const r of rows) {
        assert.strictEqual(r.c2, r.c1 + 1)
        assert.strictEqual(r.c3, r.c1 * 3)
      }
      const result = yield* t3.insert(Array.from({ length: 10 }, (_, i) => ({ c1: 1000 + i })))
      assert.strictEqual(result.inserted, 10)
      assert.strictEqual(result.computed, 20)
      assert.strictEqual(calls.n, 110)
      const all = yield* t3.collect()
      assert.strictEqual(all.length, 110)
      assert.isTrue(all.every((r) => r.c2 === r.c1 + 1 && r.c3 === r.c1 * 3))
      yield* t3
        .where((c) => c.c3.gt(100))
        .select((c) => ({ c3: c.c3 }))
        .collect()
      assert.strictEqual(calls.n, 110, "collect never calls the function of a stored column")
      const described = yield* t3.describe()
      assert.deepStrictEqual(
        described.map((c) => [c.name, c.type, c.computed !== undefined, c.state]),
        [
          ["c1", "Int", false, "ok"],
          ["c2", "Int", true, "ok"],
          ["c3", "Int", true, "ok"]
        ]
      )
    }))

  test("onError abort fails and leaves no column; record keeps per-cell errors; dependents fail with the same cause; errorsOnly recompute", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("errs", { c1: Column.Int })
      yield* t.insert(Array.from({ length: 100 }, (_, i) => ({ c1: i })))
      let broken = true
      const calls = { n: 0, args: [] as Array<number> }
      const flaky = Fn.effect({
        name: name("flaky"),
        params: { x: Column.Int },
        returns: Column.Int,
        run: ({ x }) => {
          calls.n++
          calls.args.push(x)
          return broken && x % 10 === 3
            ? Effect.fail(new Fn.FunctionError({ fn: "flaky", errorType: "Boom", message: `no ${x}` }))
            : Effect.succeed(x * 2)
        }
      })
      const aborted = yield* Effect.flip(t.addComputedColumn("f", flaky({ x: t.c.c1 })))
      assert.strictEqual(aborted._tag, "ComputeError")
      assert.match(aborted.message, /Boom: no 3/)
      assert.deepStrictEqual(
        (yield* t.describe()).map((c) => c.name),
        ["c1"]
      )

      const t2 = yield* t.addComputedColumn("f", flaky({ x: t.c.c1 }), { onError: "record" })
      const t3 = yield* t2.addComputedColumn("g", t2.c.f.plus(1), { onError: "record" })
      const failed = yield* t3
        .where((c) => c.f.errorType.isNotNull())
        .select((c) => ({
          c1: c.c1,
          f: c.f,
          type: c.f.errorType,
          msg: c.f.errorMessage,
          gType: c.g.errorType,
          gMsg: c.g.errorMessage
        }))
        .orderBy("c1")
        .collect()
      assert.strictEqual(failed.length, 10)
      for (const r of failed) {
        assert.strictEqual(r.c1 % 10, 3)
        assert.isNull(r.f)
        assert.strictEqual(r.type, "Boom")
        assert.strictEqual(r.msg, `no ${r.c1}`)
        assert.strictEqual(r.gType, "Boom")
        assert.strictEqual(r.gMsg, `no ${r.c1}`)
      }
      const good = yield* t3.where((c) => c.f.errorType.isNull()).collect()
      assert.strictEqual(good.length, 90)
      assert.isTrue(good.every((r) => r.f === r.c1 * 2 && r.g === r.c1 * 2 + 1))

      broken = false
      calls.args = []
      const recomputed = yield* t3.recompute(["f"], { errorsOnly: true })
      assert.strictEqual(recomputed.updated, 10)
      assert.deepStrictEqual(
        [...calls.args].sort((a, b) => a - b),
        [3, 13, 23, 33, 43, 53, 63, 73, 83, 93]
      )
      assert.strictEqual(yield* t3.where((c) => c.g.errorType.isNotNull()).count(), 0)
      const fixed = yield* t3.where((c) => c.c1.eq(13)).collect()
      assert.deepStrictEqual(fixed, [{ c1: 13, f: 26, g: 27 }])
    }))

  test("a function is not called when a required argument is null", () =>
    Effect.gen(function* () {
      const calls: Array<[number, number]> = []
      const add = Fn.make({
        name: name("add2"),
        params: { a: Column.Int, b: Column.Int },
        returns: Column.Int,
        run: ({ a, b }) => {
          calls.push([a, b])
          return a + b
        }
      })
      const t = yield* Table.create("nulls", { x: Column.nullable(Column.Int), y: Column.nullable(Column.Int) })
      yield* t.insert([
        { x: 1, y: 1 },
        { x: 1, y: null },
        { x: null, y: 1 },
        { x: null, y: null }
      ])
      const t2 = yield* t.addComputedColumn("s", add({ a: t.c.x, b: t.c.y }))
      assert.deepStrictEqual(calls, [[1, 1]])
      const rows = yield* t2.collect()
      assert.deepStrictEqual(
        rows.map((r) => r.s),
        [2, null, null, null]
      )
    }))

  test("update recomputes exactly the dependents; delete removes rows", () =>
    Effect.gen(function* () {
      const a = counted(name("fa"), (x) => x + 1)
      const b = counted(name("fb"), (x) => x * 10)
      const t = yield* Table.create("upd", { x: Column.Int, y: Column.Int })
      yield* t.insert(Array.from({ length: 5 }, (_, i) => ({ x: i, y: 100 + i })))
      const t2 = yield* t.addComputedColumn("ax", a.fn({ x: t.c.x }))
      const t3 = yield* t2.addComputedColumn("by", b.fn({ x: t2.c.y }))
      const t4 = yield* t3.addComputedColumn("ax2", t3.c.ax.times(2))
      assert.deepStrictEqual([a.calls.n, b.calls.n], [5, 5])
      const result = yield* t4.update(
        (c) => ({ x: c.x.plus(100) }),
        (c) => c.x.lt(2)
      )
      assert.strictEqual(result.updated, 2)
      assert.deepStrictEqual([a.calls.n, b.calls.n], [7, 5], "only the function reading x runs again")
      const rows = yield* t4.orderBy("y").collect()
      assert.deepStrictEqual(
        rows.map((r) => [r.x, r.ax, r.by, r.ax2]),
        [
          [100, 101, 1000, 202],
          [101, 102, 1010, 204],
          [2, 3, 1020, 6],
          [3, 4, 1030, 8],
          [4, 5, 1040, 10]
        ]
      )
      yield* t4.update({ y: 7 }, (c) => c.x.eq(2))
      assert.deepStrictEqual([a.calls.n, b.calls.n], [7, 6])
      const bad = yield* Effect.flip(t4.update({ x: "nope" as any }))
      assert.strictEqual(bad._tag, "ValidationError")
      const deleted = yield* t4.delete((c) => c.x.ge(100))
      assert.strictEqual(deleted, 2)
      assert.strictEqual(yield* t4.count(), 3)
      assert.deepStrictEqual([a.calls.n, b.calls.n], [7, 6])
    }))

  test("unstored computed columns are evaluated when read", () =>
    Effect.gen(function* () {
      const { fn, calls } = counted(name("lazy"), (x) => x - 1)
      const t = yield* Table.create("lazy", { x: Column.Int })
      yield* t.insert([{ x: 1 }, { x: 2 }])
      const t2 = yield* t.addComputedColumn("y", fn({ x: t.c.x }), { stored: false })
      assert.strictEqual(calls.n, 0)
      yield* t2.insert([{ x: 3 }])
      assert.strictEqual(calls.n, 0)
      assert.deepStrictEqual(
        (yield* t2.collect()).map((r) => r.y),
        [0, 1, 2]
      )
      assert.strictEqual(calls.n, 3)
      const t3 = yield* t2.addComputedColumn("z", t2.c.y.times(10))
      assert.deepStrictEqual(
        (yield* t3.collect()).map((r) => r.z),
        [0, 10, 20]
      )
    }))

  test("a table whose function this process lacks still opens; inserts that need it fail clearly", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("orphan", { x: Column.Int })
      yield* t.insert([{ x: 1 }])
      const fnName = name("ghost")
      const ghost = Fn.make({ name: fnName, params: { x: Column.Int }, returns: Column.Int, run: ({ x }) => x })
      yield* t.addComputedColumn("g", ghost({ x: t.c.x }))
      // Simulate a process that never defined the function.
      Fn.unregister(fnName, 1)
      const opened = yield* Table.get("orphan")
      const described = yield* opened.describe()
      assert.strictEqual(described.find((c) => c.name === "g")?.state, "UnknownFunction")
      assert.deepStrictEqual(yield* opened.collect(), [{ x: 1, g: 1 }])
      const error = yield* Effect.flip(opened.insert([{ x: 2 }]))
      assert.strictEqual(error._tag, "UnknownFunctionError")
      assert.include(error.message, `${fnName}@1`)
      assert.strictEqual(yield* opened.count(), 1)
    }))

  test("batched functions receive batches; effect functions retry with their schedule", () =>
    Effect.gen(function* () {
      const batches: Array<number> = []
      const embed = Fn.batched({
        name: name("embedish"),
        params: { s: Column.String },
        returns: Column.Int,
        batchSize: 4,
        run: (rows) => {
          batches.push(rows.length)
          return Effect.succeed(rows.map((r) => r.s.length))
        }
      })
      let attempts = 0
      const seen = new Set<string>()
      const retried = Fn.effect({
        name: name("retried"),
        params: { s: Column.String },
        returns: Column.String,
        retry: Fn.retryExponential(3, "1 millis"),
        run: ({ s }) => {
          attempts++
          // Every row fails its first attempt and succeeds on the retry.
          const first = !seen.has(s)
          seen.add(s)
          return first
            ? Effect.fail(new Fn.FunctionError({ fn: "retried", errorType: "Transient", message: "try again" }))
            : Effect.succeed(s.toUpperCase())
        }
      })
      const t = yield* Table.create("batched", { s: Column.String })
      yield* t.insert(Array.from({ length: 10 }, (_, i) => ({ s: "x".repeat(i) })))
      const t2 = yield* t.addComputedColumn("n", embed({ s: t.c.s }))
      assert.deepStrictEqual(batches, [4, 4, 2])
      assert.deepStrictEqual(
        (yield* t2.collect()).map((r) => r.n),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      )
      const t3 = yield* t2.addComputedColumn("u", retried({ s: t2.c.s }), { onError: "record" })
      assert.strictEqual(yield* t3.where((c) => c.u.errorType.isNotNull()).count(), 0)
      assert.strictEqual(attempts, 20)
    }))

  test("computed columns SQL can compute are written by the insert statement itself, on both insert paths", () =>
    Effect.gen(function* () {
      const { fn, calls } = counted(name("inc"), (x) => x + 1)
      for (const withVector of [false, true]) {
        const t = yield* Table.create(
          `sqlcomp_${withVector}`,
          withVector ? { i: Column.Int, v: Column.nullable(Column.Vector(2)) } : { i: Column.Int }
        )
        const t2 = yield* t.addComputedColumn("plus", t.c.i.plus(1).times(2))
        const t3 = yield* t2.addComputedColumn("half", t2.c.i.div(2), { onError: "record" })
        // The same inputs on the second table: without the result cache, it is called again.
        const t4 = yield* t3.addComputedColumn("viaFn", fn({ x: t3.c.plus }), { cache: false })
        const t5 = yield* t4.addComputedColumn("label", t4.c.i.gt(1).and(t4.c.plus.lt(100)))
        yield* t5.insert([{ i: 1 }, { i: 2 }, { i: 3 }])
        const rows = yield* t5
          .select((c) => ({ i: c.i, plus: c.plus, half: c.half, viaFn: c.viaFn, label: c.label }))
          .collect()
        assert.deepStrictEqual(rows, [
          { i: 1, plus: 4, half: 0, viaFn: 5, label: false },
          { i: 2, plus: 6, half: 1, viaFn: 7, label: true },
          { i: 3, plus: 8, half: 1, viaFn: 9, label: true }
        ])
      }
      assert.strictEqual(calls.n, 6)
    }))

  test("Expr literal helpers and and/or builders", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("lits", { x: Column.Int })
      yield* t.insert([{ x: 1 }, { x: 2 }, { x: 3 }])
      const rows = yield* t.where(Expr.or(t.c.x.eq(1), Expr.and(t.c.x.gt(1), t.c.x.lt(3)))).collect()
      assert.deepStrictEqual(rows, [{ x: 1 }, { x: 2 }])
    }))
})

describe("Catalog across processes", () => {
  it.live(
    "directories, tables, columns and rows written by one process are seen by another",
    () =>
      Effect.gen(function* () {
        const home = yield* Harness.tempDir()
        const script = NodePath.join(import.meta.dirname, "fixtures", "catalog-process.ts")
        const run = (mode: string) =>
          NodeChildProcess.execFileSync(process.execPath, [script, home, mode], { encoding: "utf8" }).trim()
        assert.strictEqual(run("write"), "written")
        const out = JSON.parse(run("read"))
        assert.deepStrictEqual(out.tables, ["shared/deep/notes"])
        assert.deepStrictEqual(out.dirs, ["shared", "shared/deep"])
        assert.deepStrictEqual(out.columns, ["text:String", "n:Int", 'loud:String=text.upper().concat("?")'])
        assert.deepStrictEqual(out.rows, [
          { text: "one", n: 1, loud: "ONE?" },
          { text: "two", n: 2, loud: "TWO?" },
          { text: "three", n: 3, loud: "THREE?" }
        ])
      }),
    120_000
  )
})
