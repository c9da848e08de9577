import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Effect } from "effect"
import { Harness } from "../src/testing/index.ts"

const sorted = <A extends Record<string, unknown>>(rows: ReadonlyArray<A>, key: keyof A) =>
  [...rows].sort((a, b) => ((a[key] as number) ?? 0) - ((b[key] as number) ?? 0))

Harness.forEachBackend("Versions and time travel", (test) => {
  test("revert undoes the latest version, down to version 0, then fails clearly", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("rev", { x: Column.Int })
      assert.strictEqual((yield* t.load).version, 0)
      assert.strictEqual((yield* t.insert([{ x: 1 }, { x: 2 }])).version, 1)
      assert.strictEqual((yield* t.insert([{ x: 3 }])).version, 2)
      const v1 = yield* t.revert()
      assert.strictEqual((yield* v1.load).version, 1)
      assert.deepStrictEqual(yield* t.collect(), [{ x: 1 }, { x: 2 }])
      assert.strictEqual((yield* t.insert([{ x: 4 }])).version, 2)
      assert.deepStrictEqual(yield* t.collect(), [{ x: 1 }, { x: 2 }, { x: 4 }])
      yield* t.revert()
      const v0 = yield* t.revert()
      assert.strictEqual((yield* v0.load).version, 0)
      assert.deepStrictEqual(yield* t.collect(), [])
      const error = yield* Effect.flip(t.revert())
      assert.propertyVal(error, "_tag", "CatalogError")
      assert.include(error.message, "version 0")
      assert.deepStrictEqual(
        (yield* t.history()).map((v) => [v.version, v.changeType, v.schemaChange]),
        [[0, "schema", "Initial Version"]]
      )
    }))

  test("revert restores updated and deleted rows, and undoes schema changes", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("rev2", { x: Column.Int, s: Column.String })
      yield* t.insert([
        { x: 1, s: "a" },
        { x: 2, s: "b" }
      ])
      yield* t.update({ s: "z" }, (c) => c.x.eq(1))
      yield* t.revert()
      assert.deepStrictEqual(yield* t.orderBy("x").collect(), [
        { x: 1, s: "a" },
        { x: 2, s: "b" }
      ])
      yield* t.delete((c) => c.x.eq(2))
      assert.strictEqual(yield* t.count(), 1)
      yield* t.revert()
      assert.strictEqual(yield* t.count(), 2)
      const t2 = yield* t.addComputedColumn("y", t.c.x.times(10))
      yield* t2.revert()
      assert.deepStrictEqual(
        (yield* t.describe()).map((c) => c.name),
        ["x", "s"]
      )
      yield* t.dropColumn("s")
      yield* t.revert()
      const renamed = yield* t.renameColumn("s", "label")
      assert.deepStrictEqual(
        (yield* renamed.describe()).map((c) => c.name),
        ["x", "label"]
      )
      yield* renamed.revert()
      assert.deepStrictEqual(yield* t.orderBy("x").collect(), [
        { x: 1, s: "a" },
        { x: 2, s: "b" }
      ])
    }))

  test("handles on every version show exactly that version's columns and rows", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("tt", { c1: Column.Int })
      yield* t.insert([{ c1: 1 }])
      yield* t.insert([{ c1: 2 }])
      const t3 = yield* t.addColumn("c2", Column.nullable(Column.Int))
      yield* t3.insert(Array.from({ length: 7 }, (_, i) => ({ c1: 10 + i, c2: i })))
      const t5 = yield* t3.dropColumn("c1")
      const t6 = yield* t5.renameColumn("c2", "balloon")
      yield* t6.insert(Array.from({ length: 10 }, (_, i) => ({ balloon: 100 + i })))

      const expected: Array<{ columns: Array<string>; rows: Array<Record<string, unknown>> }> = [
        { columns: ["c1"], rows: [] },
        { columns: ["c1"], rows: [{ c1: 1 }] },
        { columns: ["c1"], rows: [{ c1: 1 }, { c1: 2 }] },
        {
          columns: ["c1", "c2"],
          rows: [
            { c1: 1, c2: null },
            { c1: 2, c2: null }
          ]
        },
        {
          columns: ["c1", "c2"],
          rows: [
            { c1: 1, c2: null },
            { c1: 2, c2: null },
            ...Array.from({ length: 7 }, (_, i) => ({ c1: 10 + i, c2: i }))
          ]
        },
        { columns: ["c2"], rows: [{ c2: null }, { c2: null }, ...Array.from({ length: 7 }, (_, i) => ({ c2: i }))] },
        {
          columns: ["balloon"],
          rows: [{ balloon: null }, { balloon: null }, ...Array.from({ length: 7 }, (_, i) => ({ balloon: i }))]
        },
        {
          columns: ["balloon"],
          rows: [
            { balloon: null },
            { balloon: null },
            ...Array.from({ length: 7 }, (_, i) => ({ balloon: i })),
            ...Array.from({ length: 10 }, (_, i) => ({ balloon: 100 + i }))
          ]
        }
      ]
      for (const [version, want] of expected.entries()) {
        const handle = version % 2 === 0 ? yield* Table.get("tt", { version }) : yield* Table.get(`tt:${version}`)
        assert.strictEqual(handle.asOf, version)
        assert.deepStrictEqual(
          (yield* handle.describe()).map((c) => c.name),
          want.columns,
          `columns at version ${version}`
        )
        assert.deepStrictEqual(yield* handle.collect(), want.rows, `rows at version ${version}`)
        assert.strictEqual(yield* handle.count(), want.rows.length)
      }
      const history = yield* t.history()
      assert.deepStrictEqual(
        history.map((v) => [v.version, v.changeType, v.inserted, v.schemaChange]),
        [
          [7, "data", 10, null],
          [6, "schema", 0, "Renamed: c2 -> balloon"],
          [5, "schema", 0, "Dropped: c1"],
          [4, "data", 7, null],
          [3, "schema", 0, "Added: c2"],
          [2, "data", 1, null],
          [1, "data", 1, null],
          [0, "schema", 0, "Initial Version"]
        ]
      )
      assert.deepStrictEqual(
        (yield* t.history(2)).map((v) => v.version),
        [7, 6]
      )
      const old = yield* Table.get("tt:4")
      assert.deepStrictEqual(
        (yield* old.history()).map((v) => v.version),
        [4, 3, 2, 1, 0]
      )
      const missing = yield* Effect.flip(Table.get("tt", { version: 8 }))
      assert.include(missing.message, "no version 8")
    }))

  test("a handle on a past version is read-only, and says so", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("ro", { x: Column.Int })
      yield* t.insert([{ x: 1 }])
      const past = yield* Table.get("ro:1")
      const attempts = [
        ["insert", past.insert([{ x: 2 }])],
        ["update", past.update({ x: 3 })],
        ["delete", past.delete()],
        ["addComputedColumn", past.addComputedColumn("y", past.c.x)],
        ["addColumn", past.addColumn("z", Column.nullable(Column.Int))],
        ["dropColumn", past.dropColumn("x")],
        ["renameColumn", past.renameColumn("x", "w")],
        ["revert", past.revert()]
      ] as const
      for (const [operation, attempt] of attempts) {
        const error = yield* Effect.flip(
          attempt as unknown as Effect.Effect<unknown, { readonly message: string; readonly reason?: string }, never>
        )
        assert.propertyVal(error, "reason", "ReadOnly")
        assert.include(error.message, `cannot ${operation} ro:1`)
      }
      assert.deepStrictEqual(yield* past.collect(), [{ x: 1 }])
    }))

  test("schema evolution: non-null columns only on empty tables; renames keep computed columns working", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("evo", { a: Column.Int })
      const empty = yield* t.addColumn("b", Column.Int)
      yield* empty.insert([{ a: 1, b: 2 }])
      const error = yield* Effect.flip(empty.addColumn("c", Column.String))
      assert.include(error.message, "non-nullable")
      assert.include(error.message, "1 rows")
      const withSum = yield* empty.addComputedColumn("sum", empty.c.a.plus(empty.c.b))
      const renamed = yield* withSum.renameColumn("a", "first")
      yield* renamed.insert([{ first: 10, b: 5 }])
      assert.deepStrictEqual(sorted(yield* renamed.collect(), "b"), [
        { first: 1, b: 2, sum: 3 },
        { first: 10, b: 5, sum: 15 }
      ])
      const blocked = yield* Effect.flip(renamed.dropColumn("b"))
      assert.propertyVal(blocked, "reason", "HasDependents")
      assert.include(blocked.message, "sum")
    }))

  test("primary keys: a duplicate in a batch writes nothing; upsert updates and inserts; keys reusable after delete", () =>
    Effect.gen(function* () {
      const t = yield* Table.create(
        "films",
        { title: Column.String, year: Column.Int, score: Column.nullable(Column.Float) },
        { primaryKey: "title" }
      )
      const t2 = yield* t.addComputedColumn("next", t.c.year.plus(1))
      yield* t2.insert([
        { title: "Alien", year: 1979 },
        { title: "Heat", year: 1995 }
      ])
      const dup = yield* Effect.flip(
        t2.insert([
          { title: "Arrival", year: 2016 },
          { title: "Gattaca", year: 1997 },
          { title: "Arrival", year: 2017 }
        ])
      )
      assert.deepInclude(dup, { _tag: "ValidationError", row: 2, column: "title" })
      assert.include(dup.message, "duplicate primary key")
      const clash = yield* Effect.flip(
        t2.insert([
          { title: "Solaris", year: 1972 },
          { title: "Heat", year: 2000 }
        ])
      )
      assert.deepInclude(clash, { row: 1 })
      assert.include(clash.message, "already exists")
      assert.strictEqual(yield* t2.count(), 2)

      const result = yield* t2.upsert([
        { title: "Heat", year: 1996, score: 8.3 },
        { title: "Arrival", year: 2016 }
      ])
      assert.strictEqual(result.updated, 1)
      assert.strictEqual(result.inserted, 1)
      assert.deepStrictEqual(yield* t2.orderBy("title").collect(), [
        { title: "Alien", year: 1979, score: null, next: 1980 },
        { title: "Arrival", year: 2016, score: null, next: 2017 },
        { title: "Heat", year: 1996, score: 8.3, next: 1997 }
      ])
      const missing = yield* Effect.flip(t2.batchUpdate([{ title: "Nope", year: 1 }]))
      assert.include(missing.message, "no row of films has the key")
      const ignored = yield* t2.batchUpdate(
        [
          { title: "Nope", year: 1 },
          { title: "Alien", score: 9 }
        ],
        {
          ifNotExists: "ignore"
        }
      )
      assert.strictEqual(ignored.updated, 1)
      assert.strictEqual(yield* t2.count(), 3)

      const keyUpdate = yield* Effect.flip(t2.update({ title: "Aliens" }))
      assert.include(keyUpdate.message, "primary key")
      const keyDrop = yield* Effect.flip(t2.dropColumn("title"))
      assert.include(keyDrop.message, "primary key")

      yield* t2.delete((c) => c.title.eq("Alien"))
      yield* t2.insert([{ title: "Alien", year: 1986 }])
      assert.deepStrictEqual(yield* t2.where((c) => c.title.eq("Alien")).collect(), [
        { title: "Alien", year: 1986, score: null, next: 1987 }
      ])
    }))

  test("history lists a mixed sequence with its change types and counts; nullable widening", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("hist", { a: Column.Int, b: Column.Int })
      yield* t.insert([
        { a: 1, b: 1 },
        { a: 2, b: 2 },
        { a: 3, b: 3 }
      ])
      yield* t.update({ b: 0 }, (c) => c.a.le(2))
      yield* t.delete((c) => c.a.eq(3))
      const t2 = yield* t.addComputedColumn("c", t.c.a.div(t.c.b), { onError: "record" })
      const t3 = yield* t2.setNullable("b")
      yield* t3.insert([{ a: 5 }])
      assert.deepStrictEqual(
        (yield* t.history()).map((v) => [
          v.version,
          v.changeType,
          v.inserted,
          v.updated,
          v.deleted,
          v.errors,
          v.schemaChange
        ]),
        [
          [6, "data", 1, 0, 0, 0, null],
          [5, "schema", 0, 0, 0, 0, "Altered: b (nullable)"],
          [4, "schema", 0, 0, 0, 2, "Added: c"],
          [3, "data", 0, 0, 1, 0, null],
          [2, "data", 0, 2, 0, 0, null],
          [1, "data", 3, 0, 0, 0, null],
          [0, "schema", 0, 0, 0, 0, "Initial Version"]
        ]
      )
      yield* t.revert()
      const reverted = yield* t.revert()
      const b = (yield* reverted.describe()).find((c) => c.name === "b")!
      assert.isFalse(b.nullable)
      const error = yield* Effect.flip(t.insert([{ a: 6 } as never]))
      assert.include(error.message, "required")
    }))

  test("dropping a column a view uses fails unless forced", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("dcv", { a: Column.Int, b: Column.Int })
      yield* Table.createView(
        "dcv_view",
        t.where((c) => c.b.gt(0)).select((c) => ({ a: c.a }))
      )
      const error = yield* Effect.flip(t.dropColumn("b"))
      assert.include(error.message, "dcv_view")
      yield* t.dropColumn("b", { force: true })
      assert.deepStrictEqual(yield* Table.list(), ["dcv"])
    }))
})
