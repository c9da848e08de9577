import { assert } from "@effect/vitest"
import { Column, Fn, Iterator, Supervisor, Table } from "@tessera/core"
import { Effect } from "effect"
import { Harness } from "../src/testing/index.ts"

let unique = 0

const byC1 = <A extends { readonly c1?: unknown }>(rows: ReadonlyArray<A>) =>
  [...rows].sort((a, b) => (a.c1 as number) - (b.c1 as number))

Harness.forEachBackend("Views and snapshots", (test) => {
  test("a snapshot is frozen: the base grows, the snapshot does not, and every change to it fails", () =>
    Effect.gen(function* () {
      const base = yield* Table.create("base", { c1: Column.Int, c2: Column.Int })
      yield* base.insert(Array.from({ length: 5 }, (_, i) => ({ c1: i, c2: i * 10 })))
      const snap = yield* Table.createSnapshot(
        "snap",
        base.where((c) => c.c1.lt(3))
      )
      yield* base.insert(Array.from({ length: 10 }, (_, i) => ({ c1: 100 + i, c2: 0 })))
      assert.strictEqual(yield* base.count(), 15)
      assert.strictEqual(yield* snap.count(), 3)
      assert.deepStrictEqual(byC1(yield* snap.collect()), [
        { c1: 0, c2: 0 },
        { c1: 1, c2: 10 },
        { c1: 2, c2: 20 }
      ])
      const attempts = [
        ["insert", snap.insert([{} as never])],
        ["update", snap.update({ c2: 1 } as never)],
        ["delete", snap.delete()],
        ["addColumn", snap.addColumn("x", Column.nullable(Column.Int))],
        ["addComputedColumn", snap.addComputedColumn("y", snap.c.c1)],
        ["revert", snap.revert()]
      ] as const
      for (const [operation, attempt] of attempts) {
        const error = yield* Effect.flip(
          attempt as unknown as Effect.Effect<unknown, { readonly message: string }, never>
        )
        assert.include(error.message, `cannot ${operation} snap`)
        assert.include(error.message, "snapshot")
      }
      // A snapshot may have computed columns of its own, made at its creation.
      const withOwn = yield* Table.createSnapshot("snap2", base, { computed: (c) => ({ twice: c.c2.times(2) }) })
      assert.deepStrictEqual(byC1(yield* withOwn.where((c) => c.c1.lt(2)).collect()), [
        { c1: 0, c2: 0, twice: 0 },
        { c1: 1, c2: 10, twice: 20 }
      ])
      const late = yield* Effect.flip(withOwn.addComputedColumn("more", withOwn.c.c1))
      assert.include(late.message, "snapshot")
      // The base cannot be reverted past the version a snapshot needs.
      const pinned = yield* Effect.flip(base.revert())
      assert.include(pinned.message, "snap2")
    }))

  test("a filtered view follows its base through inserts, updates and deletes", () =>
    Effect.gen(function* () {
      const base = yield* Table.create("nums", { c1: Column.Int, c2: Column.Int })
      yield* base.insert(Array.from({ length: 100 }, (_, i) => ({ c1: i, c2: i })))
      const calls = { n: 0 }
      const label = Fn.make({
        name: `viewLabel_${process.pid}_${unique++}`,
        params: { x: Column.Int },
        returns: Column.String,
        run: ({ x }) => {
          calls.n++
          return `#${x}`
        }
      })
      const view = yield* Table.createView(
        "small",
        base.where((c) => c.c2.lt(10))
      )
      assert.strictEqual(yield* view.count(), 10)
      const withLabel = yield* view.addComputedColumn("label", label({ x: view.c.c2 }), { cache: false })
      assert.strictEqual(calls.n, 10)

      yield* base.insert(Array.from({ length: 20 }, (_, i) => ({ c1: 1000 + i, c2: 100 + i })))
      assert.strictEqual(yield* withLabel.count(), 10)
      assert.strictEqual(calls.n, 10)

      // 3 rows leave (c2 raised), 2 enter (c2 lowered).
      yield* base.update({ c2: 50 }, (c) => c.c1.isIn([0, 1, 2]))
      yield* base.update({ c2: 5 }, (c) => c.c1.isIn([1000, 1001]))
      const rows = byC1(yield* withLabel.collect())
      assert.deepStrictEqual(
        rows.map((r) => [r.c1, r.c2, r.label]),
        [
          [3, 3, "#3"],
          [4, 4, "#4"],
          [5, 5, "#5"],
          [6, 6, "#6"],
          [7, 7, "#7"],
          [8, 8, "#8"],
          [9, 9, "#9"],
          [1000, 5, "#5"],
          [1001, 5, "#5"]
        ]
      )
      assert.strictEqual(calls.n, 12, "only the rows that entered were computed")

      // A change to a copied column the view's computed column reads recomputes it; one it does not read does not.
      yield* base.update({ c2: 7 }, (c) => c.c1.eq(3))
      assert.strictEqual(calls.n, 13)
      yield* base.update({ c1: 3 }, (c) => c.c1.eq(3))
      assert.strictEqual(calls.n, 13)

      yield* base.delete((c) => c.c1.ge(1000))
      assert.deepStrictEqual(
        byC1(yield* withLabel.collect()).map((r) => r.c1),
        [3, 4, 5, 6, 7, 8, 9]
      )
      const insertError = yield* Effect.flip(withLabel.insert([{} as never]))
      assert.include(insertError.message, "cannot insert into small")
      const deleteError = yield* Effect.flip(withLabel.delete())
      assert.include(deleteError.message, "cannot delete from small")

      // Views of views, with a projection.
      const nested = yield* Table.createView(
        "tiny",
        withLabel.where((c) => c.c2.gt(5)).select((c) => ({ k: c.c1, tag: c.label }))
      )
      assert.deepStrictEqual(
        [...(yield* nested.collect())].sort((a, b) => (a.k ?? 0) - (b.k ?? 0)),
        [
          { k: 3, tag: "#7" },
          { k: 6, tag: "#6" },
          { k: 7, tag: "#7" },
          { k: 8, tag: "#8" },
          { k: 9, tag: "#9" }
        ]
      )
      yield* base.insert([{ c1: 2000, c2: 8 }])
      assert.include(
        (yield* nested.collect()).map((r) => r.k),
        2000
      )

      // Dropping what views depend on fails unless forced, and says what depends on it.
      const blocked = yield* Effect.flip(Table.drop("nums"))
      assert.include(blocked.message, "small")
      const blockedView = yield* Effect.flip(Table.drop("small"))
      assert.include(blockedView.message, "tiny")
      const replace = yield* Effect.flip(Table.create("nums", { z: Column.Int }, { ifExists: "replace" }))
      assert.include(replace.message, "small")
      yield* Table.drop("nums", { force: true })
      assert.deepStrictEqual(yield* Table.list(), [])
    }))

  test("a view follows its base back on revert", () =>
    Effect.gen(function* () {
      const base = yield* Table.create("rbase", { c1: Column.Int })
      yield* base.insert([{ c1: 1 }, { c1: 20 }])
      const view = yield* Table.createView(
        "rview",
        base.where((c) => c.c1.lt(10))
      )
      yield* base.insert([{ c1: 2 }, { c1: 30 }])
      assert.strictEqual(yield* view.count(), 2)
      yield* base.revert()
      assert.deepStrictEqual(yield* view.collect(), [{ c1: 1 }])
    }))

  test("a view over a computed column follows cells the supervisor computes later", () =>
    Effect.gen(function* () {
      const slowSquare = Fn.effect({
        name: `viewSquare_${process.pid}_${unique++}`,
        params: { x: Column.Int },
        returns: Column.Int,
        run: ({ x }) => Effect.as(Effect.sleep("2 millis"), x * x)
      })
      const base = yield* Table.create("lazybase", { x: Column.Int })
      const withSquare = yield* base.addComputedColumn("sq", slowSquare({ x: base.c.x }))
      const view = yield* Table.createView(
        "bigsquares",
        withSquare.where((c) => c.sq.gt(10))
      )
      yield* withSquare.insert(
        Array.from({ length: 6 }, (_, x) => ({ x })),
        { wait: false }
      )
      assert.strictEqual(yield* view.count(), 0, "nothing computed yet")
      const deadline = Date.now() + 20_000
      while ((yield* view.count()) < 2 && Date.now() < deadline) yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(
        [...(yield* view.collect())].sort((a, b) => (a.x ?? 0) - (b.x ?? 0)),
        [
          { x: 4, sq: 16 },
          { x: 5, sq: 25 }
        ]
      )
    }).pipe(Effect.provide(Supervisor.layer({ pollInterval: "50 millis", reconcileInterval: "200 millis" }))))

  test("an iterator view that cannot be filled is not left behind; its constant options are checked first", () =>
    Effect.gen(function* () {
      const pieces = Iterator.make({
        name: `pieces_${process.pid}_${unique++}`,
        params: { text: Column.String, size: Column.Int },
        outputs: { piece: Column.String },
        check: ({ size }) =>
          size === undefined || size > 0 ? Effect.void : Effect.fail(new Error(`size must be positive (got ${size})`)),
        run: ({ text, size }) =>
          text === "boom"
            ? Effect.fail(new Error("cannot split boom"))
            : Effect.succeed(
                Array.from({ length: Math.ceil(text.length / size) }, (_, i) => ({
                  piece: text.slice(i * size, (i + 1) * size)
                }))
              )
      })
      const docs = yield* Table.create("docs", { text: Column.String })
      const bad = yield* Effect.flip(
        Table.createView("pieces", docs, { iterator: pieces({ text: docs.c.text, size: 0 }) })
      )
      assert.include(bad.message, "size must be positive (got 0)")
      yield* docs.insert([{ text: "abcdef" }, { text: "boom" }])
      const failed = yield* Effect.flip(
        Table.createView("pieces", docs, { iterator: pieces({ text: docs.c.text, size: 4 }) })
      )
      assert.include(failed.message, "cannot split boom")
      assert.deepStrictEqual(yield* Table.list(), ["docs"], "the half-made view was dropped")
      yield* docs.delete((c) => c.text.eq("boom"))
      const view = yield* Table.createView("pieces", docs, { iterator: pieces({ text: docs.c.text, size: 4 }) })
      assert.deepStrictEqual(
        (yield* view.orderBy("pos").collect()).map((r) => r.piece),
        ["abcd", "ef"]
      )
    }))

  test("an iterator view has one row per component, follows its base, and runs its computed columns on new components only", () =>
    Effect.gen(function* () {
      const words = Iterator.make({
        name: `words_${process.pid}_${unique++}`,
        params: { text: Column.String },
        outputs: { word: Column.String, length: Column.Int },
        run: ({ text }) =>
          Effect.succeed(
            text
              .split(/\s+/)
              .filter((w) => w !== "")
              .map((word) => ({ word, length: word.length }))
          )
      })
      const calls = { n: 0 }
      const shout = Fn.make({
        name: `shout_${process.pid}_${unique++}`,
        params: { s: Column.String },
        returns: Column.String,
        run: ({ s }) => {
          calls.n++
          return s.toUpperCase()
        }
      })
      const docs = yield* Table.create("docs", { id: Column.Int, text: Column.nullable(Column.String) })
      yield* docs.insert([
        { id: 1, text: "the quick brown fox" },
        { id: 2, text: "jumps" }
      ])
      const view = yield* Table.createView(
        "words",
        docs.select((c) => ({ id: c.id })),
        {
          iterator: words({ text: docs.c.text })
        }
      )
      const loud = yield* view.addComputedColumn("loud", shout({ s: view.c.word }), { cache: false })
      assert.strictEqual(calls.n, 5)
      const rows = (yield* loud.orderBy("id").orderBy("pos").collect()).map((r) => [
        r.id,
        r.pos,
        r.word,
        r.length,
        r.loud
      ])
      assert.deepStrictEqual(rows, [
        [1, 0, "the", 3, "THE"],
        [1, 1, "quick", 5, "QUICK"],
        [1, 2, "brown", 5, "BROWN"],
        [1, 3, "fox", 3, "FOX"],
        [2, 0, "jumps", 5, "JUMPS"]
      ])
      yield* docs.insert([{ id: 3, text: "over the dog" }, { id: 4 }])
      assert.strictEqual(yield* loud.count(), 8)
      assert.strictEqual(calls.n, 8, "only the new components were computed")
      yield* docs.update({ text: "lazy dog" }, (c) => c.id.eq(2))
      assert.deepStrictEqual(
        (yield* loud
          .where((c) => c.id.eq(2))
          .orderBy("pos")
          .collect()).map((r) => r.word),
        ["lazy", "dog"]
      )
      yield* docs.delete((c) => c.id.eq(1))
      assert.strictEqual(yield* loud.count(), 5)
      assert.deepStrictEqual([...new Set((yield* loud.collect()).map((r) => r.id))].sort(), [2, 3])
    }))

  test("a view's copies keep the base's cell errors: a failed computed cell, and an output expression that fails", () =>
    Effect.gen(function* () {
      const base = yield* Table.create("ratios", { id: Column.Int, n: Column.Int, ten0: Column.Int })
      yield* base.insert([
        { id: 1, n: 2, ten0: 10 },
        { id: 2, n: 0, ten0: 10 }
      ])
      const ten = yield* base.addComputedColumn("ten", base.c.ten0.div(base.c.n), { onError: "record" })
      const view = yield* Table.createView(
        "ratios_view",
        ten.select((c) => ({ id: c.id, ten: c.ten, eleven: c.ten.plus(1) }))
      )
      const read = (t: typeof view) =>
        t
          .select((c) => ({
            id: c.id,
            ten: c.ten,
            tenError: c.ten.errorType,
            eleven: c.eleven,
            elevenError: c.eleven.errorType
          }))
          .orderBy("id")
          .collect()
      assert.deepStrictEqual(yield* read(view), [
        { id: 1, ten: 5, tenError: null, eleven: 6, elevenError: null },
        { id: 2, ten: null, tenError: "DivisionByZero", eleven: null, elevenError: "DivisionByZero" }
      ])
      // The view's own computed column over the copy gets the same error, as on the base.
      const twice = yield* view.addComputedColumn("twice", view.c.ten.times(2), { onError: "record" })
      const readTwice = twice
        .select((c) => ({ id: c.id, twice: c.twice, error: c.twice.errorType }))
        .orderBy("id")
        .collect()
      assert.deepStrictEqual(yield* readTwice, [
        { id: 1, twice: 10, error: null },
        { id: 2, twice: null, error: "DivisionByZero" }
      ])
      // Later rows follow, and fixing the base value clears the error in the view.
      yield* ten.insert([{ id: 3, n: 0, ten0: 10 }], { onError: "record" })
      yield* ten.update({ n: 5 }, (c) => c.id.eq(2))
      assert.deepStrictEqual(yield* readTwice, [
        { id: 1, twice: 10, error: null },
        { id: 2, twice: 4, error: null },
        { id: 3, twice: null, error: "DivisionByZero" }
      ])
    }))
})
