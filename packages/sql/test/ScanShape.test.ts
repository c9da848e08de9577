import { assert, describe, it } from "@effect/vitest"
import { Column, type Expr, type Store, Table } from "@tessera/core"
import { Effect } from "effect"
import { fillSlots, scanShape, vectorSlots } from "../src/internal/scanShape.ts"
import { Harness } from "../src/testing/index.ts"
import { cosine, randomVectors } from "./vectors.ts"

const score = (vector: Float32Array): Expr.Node => ({
  _tag: "VectorScore",
  id: 2,
  name: "v",
  metric: "cosine",
  precision: "vector",
  vector
})
const idColumn: Expr.Node = { _tag: "Column", id: 1, name: "id" }
const spec = (output: Expr.Node, order: Expr.Node, where: ReadonlyArray<Expr.Node> = []): Store.ScanSpec => ({
  where,
  outputs: [
    { key: "$o0", node: idColumn },
    { key: "$o1", node: output }
  ],
  orderBy: [{ node: order, desc: true }],
  limit: 10,
  withRowid: true
})
const literal = (value: unknown, kind: "Int" | "Vector" = "Int"): Expr.Node => ({
  _tag: "Literal",
  value,
  type: kind === "Int" ? { kind: "Int" } : { kind: "Vector", dim: 3 }
})
const gt = (value: unknown): Expr.Node => ({ _tag: "Binary", op: ">", left: idColumn, right: literal(value) })

describe("scanShape", () => {
  it("leaves the query vectors of vector scores as holes, equal vectors sharing one", () => {
    const a = Float32Array.of(1, 2, 3)
    const b = Float32Array.of(4, 5, 6)
    const one = scanShape(spec(score(a), score(a)))!
    const other = scanShape(spec(score(b), score(b)))!
    assert.strictEqual(one.key, other.key, "only the vectors differ")
    assert.deepStrictEqual(one.vectors, [a])
    // Equal in value, distinct arrays: one hole (the SQL may send the vector once).
    const copies = scanShape(spec(score(a), score(a.slice())))!
    assert.strictEqual(copies.key, one.key)
    assert.strictEqual(copies.vectors.length, 1)
    // Two different vectors: two holes, another shape.
    const two = scanShape(spec(score(a), score(b)))!
    assert.notStrictEqual(two.key, one.key)
    assert.deepStrictEqual(two.vectors, [a, b])
  })

  it("keeps literal values (vectors included) in the key", () => {
    const a = Float32Array.of(1, 2, 3)
    assert.notStrictEqual(
      scanShape(spec(score(a), score(a), [gt(5)]))!.key,
      scanShape(spec(score(a), score(a), [gt(6)]))!.key
    )
    const withLiteral = (v: Float32Array) =>
      scanShape(spec(score(a), score(a), [{ _tag: "Binary", op: "=", left: idColumn, right: literal(v, "Vector") }]))!
        .key
    assert.notStrictEqual(withLiteral(Float32Array.of(1, 1, 1)), withLiteral(Float32Array.of(1, 1, 2)))
    // A literal sharing its array with a hole could not be told apart from it: not kept.
    assert.isUndefined(
      scanShape(spec(score(a), score(a), [{ _tag: "Binary", op: "=", left: idColumn, right: literal(a, "Vector") }]))
    )
  })

  it("does not keep scans of given rows, of cells, or with large literals", () => {
    const a = Float32Array.of(1, 2, 3)
    assert.isUndefined(scanShape({ ...spec(score(a), score(a)), rowids: [1, 2] }))
    assert.isUndefined(scanShape({ ...spec(score(a), score(a)), cells: [2] }))
    const many: Expr.Node = {
      _tag: "IsIn",
      expr: idColumn,
      values: Array.from({ length: 5000 }, (_, i) => literal(i))
    }
    assert.isUndefined(scanShape(spec(score(a), score(a), [many])), "large literals")
  })

  it("puts another scan's vectors in the compiled parameters' holes", () => {
    const a = Float32Array.of(1, 2, 3)
    const b = Float32Array.of(4, 5, 6)
    const first = scanShape(spec(score(a), score(b)))!
    const typed = (value: Float32Array) => ({ [Symbol.for("parameter")]: true, oid: 42, value })
    const params = [7, typed(b), "x", typed(a), a]
    const slots = vectorSlots(params, first)
    assert.deepStrictEqual(slots, [
      [1, 1],
      [3, 0],
      [4, 0]
    ])
    const c = Float32Array.of(7, 8, 9)
    const d = Float32Array.of(0, 1, 0)
    const next = scanShape(spec(score(c), score(d)))!
    assert.strictEqual(next.key, first.key)
    const filled = fillSlots(params, slots, next.vectors)
    assert.deepStrictEqual(filled, [7, typed(d), "x", typed(c), c])
    assert.strictEqual((filled[1] as { oid: number }).oid, 42, "the parameter keeps its type")
    assert.deepStrictEqual(params, [7, typed(b), "x", typed(a), a], "the compiled parameters are left as they were")
  })
})

Harness.forEachBackend("Scans compiled once per shape", (test) => {
  const setUp = Effect.gen(function* () {
    // Fewer rows than HNSW's search breadth (ef_search 40): the index's answers are exact.
    const vectors = randomVectors(30, 8, 11)
    const t = yield* Table.create("shapes", { id: Column.Int, tag: Column.String, v: Column.Vector(8) })
    yield* t.insert(vectors.map((v, id) => ({ id, tag: id % 2 === 0 ? "even" : "odd", v })))
    const indexed = yield* t.addEmbeddingIndex("v", { metric: "cosine", precision: "vector" })
    const probes = randomVectors(8, 8, 12)
    const exactTop = (probe: Float32Array, keep: (id: number) => boolean = () => true) =>
      vectors
        .map((v, id) => ({ id, score: cosine(v, probe) }))
        .filter((r) => keep(r.id))
        .sort((x, y) => y.score - x.score)
        .slice(0, 5)
    return { t, indexed, vectors, probes, exactTop }
  })

  test("queries of one shape with other vectors each get their own results", () =>
    Effect.gen(function* () {
      const { indexed, vectors, probes, exactTop } = yield* setUp
      for (const probe of probes) {
        const rows = yield* indexed
          .select((c) => ({ id: c.id, score: c.v.similarity(probe) }))
          .orderBy("score", "desc")
          .limit(5)
          .collect()
        const exact = exactTop(probe)
        assert.deepStrictEqual(
          rows.map((r) => r.id),
          exact.map((r) => r.id)
        )
        for (const [i, r] of rows.entries()) assert.approximately(r.score, exact[i]!.score, 1e-4)
      }
      // Ordered by one vector, scored against another; then both the same; then apart again.
      const scored = (order: Float32Array, output: Float32Array) =>
        indexed
          .select((c) => ({ id: c.id, other: c.v.similarity(output) }))
          .orderBy((c) => c.v.similarity(order), "desc")
          .limit(5)
          .collect()
      for (const [order, output] of [
        [probes[0]!, probes[1]!],
        [probes[2]!, probes[2]!],
        [probes[3]!, probes[4]!],
        [probes[5]!, probes[5]!.slice()]
      ] as const) {
        const rows = yield* scored(order, output)
        assert.deepStrictEqual(
          rows.map((r) => r.id),
          exactTop(order).map((r) => r.id)
        )
        for (const r of rows) assert.approximately(r.other, cosine(vectors[r.id]!, output), 1e-4)
      }
    }))

  test("literal values are part of a scan's shape; a probe array changed after use counts as new", () =>
    Effect.gen(function* () {
      const { indexed, probes, exactTop } = yield* setUp
      for (const [floor, tag] of [
        [5, "even"],
        [20, "even"],
        [5, "odd"]
      ] as const) {
        const rows = yield* indexed
          .where((c) => c.id.gt(floor).and(c.tag.eq(tag)))
          .select((c) => ({ id: c.id, score: c.v.similarity(probes[0]!) }))
          .orderBy("score", "desc")
          .limit(5)
          .collect()
        const exact = exactTop(probes[0]!, (id) => id > floor && (id % 2 === 0) === (tag === "even"))
        assert.deepStrictEqual(
          rows.map((r) => r.id),
          exact.map((r) => r.id),
          `id > ${floor}, ${tag}`
        )
      }
      const probe = probes[6]!.slice()
      const query = () =>
        indexed
          .select((c) => ({ id: c.id }))
          .orderBy((c) => c.v.similarity(probe), "desc")
          .limit(3)
          .collect()
      assert.deepStrictEqual(
        (yield* query()).map((r) => r.id),
        exactTop(probe)
          .slice(0, 3)
          .map((r) => r.id)
      )
      probe.set(probes[7]!)
      assert.deepStrictEqual(
        (yield* query()).map((r) => r.id),
        exactTop(probes[7]!)
          .slice(0, 3)
          .map((r) => r.id)
      )
    }))

  test("a changed table's scans are compiled afresh", () =>
    Effect.gen(function* () {
      const { indexed, probes, exactTop } = yield* setUp
      const top = (t: typeof indexed) =>
        t
          .select((c) => ({ id: c.id, score: c.v.similarity(probes[0]!) }))
          .orderBy("score", "desc")
          .limit(3)
          .collect()
      const before = yield* top(indexed)
      const added = yield* indexed.addColumn("note", Column.nullable(Column.String))
      yield* added.update({ note: "kept" }, (c) => c.id.eq(before[0]!.id))
      const after = yield* added
        .select((c) => ({ id: c.id, note: c.note, score: c.v.similarity(probes[0]!) }))
        .orderBy("score", "desc")
        .limit(3)
        .collect()
      assert.deepStrictEqual(
        after.map((r) => r.id),
        exactTop(probes[0]!)
          .slice(0, 3)
          .map((r) => r.id)
      )
      assert.deepStrictEqual(
        after.map((r) => r.note),
        ["kept", null, null]
      )
      const renamed = yield* added.renameColumn("note", "remark")
      const again = yield* renamed
        .select((c) => ({ id: c.id, remark: c.remark }))
        .orderBy((c) => c.v.similarity(probes[0]!), "desc")
        .limit(1)
        .collect()
      assert.deepStrictEqual(again, [{ id: before[0]!.id, remark: "kept" }])
    }))
})
