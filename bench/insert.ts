/**
 * Insert throughput: 100k rows of 4 scalar columns plus 1 computed arithmetic
 * column, through Tessera (`Table.insert`) and through a raw multi-row INSERT
 * of the same five values on the same client, in the same run, on each
 * backend (embedded always; a server when TESSERA_BENCH_DATABASE_URL or
 * TESSERA_TEST_DATABASE_URL is set). ratio = Tessera rows/s / raw rows/s
 * (the lowest over the backends).
 */
import { Column, Table } from "@tessera/core"
import { Tessera } from "@tessera/sql"
import { Effect, type Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

// The driver sends the parameter count as an int16.
const MAX_PARAMS = 32000

const rowsOf = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ a: i, b: i * 0.5, c: `name ${i}`, d: i % 2 === 0 }))

const measure = (rows: ReturnType<typeof rowsOf>, runs: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const tessera: Array<number> = []
    const raw: Array<number> = []
    for (let run = 0; run < runs; run++) {
      // Tessera: validation, the computed column, cell states, versioning.
      const t = yield* Table.create(
        "bench/insert",
        { a: Column.Int, b: Column.Float, c: Column.String, d: Column.Bool },
        { ifExists: "replace" }
      )
      const t2 = yield* t.addComputedColumn("e", t.c.a.plus(1))
      let start = performance.now()
      yield* t2.insert(rows)
      tessera.push(rows.length / ((performance.now() - start) / 1000))

      // Raw: the same five values in multi-row INSERTs on the same client.
      yield* sql`DROP TABLE IF EXISTS bench_raw`
      yield* sql`CREATE TABLE bench_raw (a int8, b float8, c text, d boolean, e int8)`
      start = performance.now()
      const perStatement = Math.floor(MAX_PARAMS / 5)
      for (let i = 0; i < rows.length; i += perStatement) {
        const slice = rows.slice(i, i + perStatement)
        const params: Array<unknown> = []
        const tuples: Array<string> = []
        for (const r of slice) {
          const k = params.length
          params.push(r.a, r.b, r.c, r.d, r.a + 1)
          tuples.push(`($${k + 1}::int8, $${k + 2}::float8, $${k + 3}::text, $${k + 4}::boolean, $${k + 5}::int8)`)
        }
        yield* sql.unsafe(`INSERT INTO bench_raw (a, b, c, d, e) VALUES ${tuples.join(", ")}`, params)
      }
      raw.push(rows.length / ((performance.now() - start) / 1000))
      const check = yield* sql<{ n: bigint }>`SELECT count(*) AS n FROM bench_raw`
      if (Number(check[0]!.n) !== rows.length) throw new Error("raw insert lost rows")
      const count = yield* t2.count()
      if (count !== rows.length) throw new Error("Tessera insert lost rows")
    }
    const median = (xs: Array<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
    return { tessera: median(tessera), raw: median(raw) }
  })

export const main = async (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const n = quick ? 10_000 : 100_000
  const runs = quick ? 1 : 3
  const rows = rowsOf(n)
  const home = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-bench-"))
  const backends: Array<[string, Layer.Layer<Tessera.Services, unknown>]> = [
    ["embedded", Tessera.layerEmbedded({ home })]
  ]
  const url = process.env.TESSERA_BENCH_DATABASE_URL || process.env.TESSERA_TEST_DATABASE_URL
  if (url) backends.push(["server", Tessera.layerServer({ url: Redacted.make(url), home })])
  const fields: Array<string> = [`rows=${n}`]
  const ratios: Array<number> = []
  try {
    for (const [name, layer] of backends) {
      const result = await Effect.runPromise(
        Effect.gen(function* () {
          yield* Effect.ignore(Table.drop("bench/insert", { ifNotExists: "ignore" }))
          const { Dir } = yield* Effect.promise(() => import("@tessera/core"))
          yield* Dir.create("bench", { ifExists: "ignore" })
          return yield* measure(rows, runs)
        }).pipe(Effect.provide(layer))
      )
      const ratio = result.tessera / result.raw
      ratios.push(ratio)
      console.log(
        `${name}: tessera ${Math.round(result.tessera)} rows/s, raw INSERT ${Math.round(result.raw)} rows/s, ratio ${ratio.toFixed(2)}`
      )
      fields.push(
        `${name}_tessera_rows_per_s=${Math.round(result.tessera)}`,
        `${name}_raw_rows_per_s=${Math.round(result.raw)}`,
        `${name}_ratio=${ratio.toFixed(2)}`
      )
    }
  } finally {
    NodeFs.rmSync(home, { recursive: true, force: true })
  }
  console.log(`BENCH insert ${fields.join(" ")} ratio=${Math.min(...ratios).toFixed(2)}`)
}
