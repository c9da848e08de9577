/**
 * Similarity search: N random 384-d vectors (100k on the server, 20k
 * embedded; --quick: 5k), an HNSW cosine index built through
 * `addEmbeddingIndex`, then top-10 queries through Tessera's query API vs the
 * same query as raw SQL on the same index, in the same run. Prints latency
 * p50/p95 for both, the ratio of p50s (target <= 1.2), recall@10 against an
 * exact scan, and the index build time per backend. The timed queries make
 * three passes over the 100 probes (300 per side; --quick: one pass over 30).
 */
import { Column, Table } from "@tessera/core"
import { Tessera } from "@tessera/sql"
import { Effect, type Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Database } from "@tessera/sql"

const DIM = 384

const random = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648 - 0.5
}

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

const run = (n: number, queries: number, passes: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const db = yield* Database.Database
    const next = random(42)
    const vectors = Array.from({ length: n }, () => Float32Array.from({ length: DIM }, next))
    const t = yield* Table.create(
      "bench/vectors",
      { id: Column.Int, v: Column.Vector(DIM) },
      { ifExists: "replace_force" }
    )
    for (let i = 0; i < n; i += 5000) {
      yield* t.insert(vectors.slice(i, i + 5000).map((v, j) => ({ id: i + j, v })))
    }
    const start = performance.now()
    const indexed = yield* t.addEmbeddingIndex("v", {
      metric: "cosine",
      precision: "vector",
      m: 16,
      efConstruction: 64
    })
    const buildSeconds = (performance.now() - start) / 1000
    const meta = yield* indexed.load
    const column = meta.columns.find((c) => c.name === "v")!.id
    const physical = `tessera_data.t_${meta.id}`
    const probes = Array.from({ length: queries }, () => Float32Array.from({ length: DIM }, next))

    // Recall@10 against an exact scan (in JS), computed before the timed queries so
    // that its allocations (and their garbage collection) stay out of the timings.
    const exact = probes.map((probe) =>
      vectors
        .map((v, id) => {
          let dot = 0
          let na = 0
          let nb = 0
          for (let i = 0; i < DIM; i++) {
            dot += v[i]! * probe[i]!
            na += v[i]! * v[i]!
            nb += probe[i]! * probe[i]!
          }
          return { id, score: dot / Math.sqrt(na * nb) }
        })
        .sort((a, b) => b.score - a.score)
        .slice(0, 10)
        .map((r) => r.id)
    )
    const tessera = (probe: Float32Array) =>
      indexed
        .select((c) => ({ id: c.id, score: c.v.similarity(probe) }))
        .orderBy("score", "desc")
        .limit(10)
        .collect()
    const raw = (probe: Float32Array) =>
      sql.unsafe<{ id: bigint }>(
        `SELECT c_1 AS id FROM ${physical} WHERE v_max = 2147483647
         ORDER BY c_${column}::vector(${DIM}) <=> $1::vector(${DIM}) LIMIT 10`,
        [db.vector(probe)]
      )
    // Warm both paths (prepared statements, JIT) on other probes.
    for (const probe of probes.slice(0, 10)) {
      yield* tessera(probe)
      yield* raw(probe)
    }
    const viaTessera: Array<number> = []
    const viaSql: Array<number> = []
    let hits = 0
    const timed = <A, E, R>(effect: Effect.Effect<A, E, R>, into: Array<number>) =>
      Effect.gen(function* () {
        const s = performance.now()
        const result = yield* effect
        into.push(performance.now() - s)
        return result
      })
    // Several passes over the probes steady the medians (recall counts the first).
    for (let pass = 0; pass < passes; pass++) {
      for (const [q, probe] of probes.entries()) {
        // Alternate the order so that neither side always runs first.
        const first = (q + pass) % 2 === 0
        if (!first) yield* timed(raw(probe), viaSql)
        const rows = yield* timed(tessera(probe), viaTessera)
        if (first) yield* timed(raw(probe), viaSql)
        if (pass === 0) hits += rows.filter((r) => exact[q]!.includes(r.id)).length
      }
    }
    return {
      buildSeconds,
      tessera: { p50: percentile(viaTessera, 50), p95: percentile(viaTessera, 95) },
      raw: { p50: percentile(viaSql, 50), p95: percentile(viaSql, 95) },
      recall: hits / (queries * 10)
    }
  })

export const main = async (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const home = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-bench-"))
  const url = process.env.TESSERA_BENCH_DATABASE_URL || process.env.TESSERA_TEST_DATABASE_URL
  const backends: Array<[string, Layer.Layer<Tessera.StoreServices, unknown>, number]> = [
    ["embedded", Tessera.layerOn(Tessera.databaseEmbedded({ home })), quick ? 5_000 : 20_000]
  ]
  if (url) {
    backends.push([
      "server",
      Tessera.layerOn(Tessera.databaseServer({ url: Redacted.make(url), home })),
      quick ? 5_000 : 100_000
    ])
  }
  const fields: Array<string> = []
  const ratios: Array<number> = []
  try {
    for (const [name, layer, n] of backends) {
      const r = await Effect.runPromise(
        Effect.gen(function* () {
          const { Dir } = yield* Effect.promise(() => import("@tessera/core"))
          yield* Dir.create("bench", { ifExists: "ignore" })
          return yield* run(n, quick ? 30 : 100, quick ? 1 : 3)
        }).pipe(Effect.provide(layer))
      )
      const ratio = r.tessera.p50 / r.raw.p50
      ratios.push(ratio)
      console.log(
        `${name}: ${n} vectors, index built in ${r.buildSeconds.toFixed(1)} s; top-10 p50/p95 tessera ${r.tessera.p50.toFixed(2)}/${r.tessera.p95.toFixed(2)} ms, raw SQL ${r.raw.p50.toFixed(2)}/${r.raw.p95.toFixed(2)} ms, ratio ${ratio.toFixed(2)}, recall@10 ${r.recall.toFixed(3)}`
      )
      fields.push(
        `${name}_n=${n}`,
        `${name}_build_s=${r.buildSeconds.toFixed(1)}`,
        `${name}_tessera_p50_ms=${r.tessera.p50.toFixed(2)}`,
        `${name}_tessera_p95_ms=${r.tessera.p95.toFixed(2)}`,
        `${name}_raw_p50_ms=${r.raw.p50.toFixed(2)}`,
        `${name}_raw_p95_ms=${r.raw.p95.toFixed(2)}`,
        `${name}_recall=${r.recall.toFixed(3)}`
      )
    }
  } finally {
    NodeFs.rmSync(home, { recursive: true, force: true })
  }
  console.log(`BENCH search ${fields.join(" ")} ratio=${Math.max(...ratios).toFixed(2)}`)
}
