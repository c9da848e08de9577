import { assert, describe, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Database, Migrations } from "../src/index.ts"
import { Harness } from "../src/testing/index.ts"
import { cosine, randomVectors } from "./vectors.ts"

const nonEmpty = <A>(rows: ReadonlyArray<A>): readonly [A, ...Array<A>] => {
  assert.isAbove(rows.length, 0)
  return rows as readonly [A, ...Array<A>]
}

const cosineDistance = (a: Float32Array, b: Float32Array): number => 1 - cosine(a, b)

Harness.forEachBackend("Database", (test, backend) => {
  test("reports its backend and applies the metadata migrations", () =>
    Effect.gen(function* () {
      const db = yield* Database.Database
      const sql = yield* SqlClient.SqlClient
      assert.strictEqual(db.backend, backend.name)
      const applied = yield* sql<{ id: number }>`SELECT id FROM tessera.migrations ORDER BY id`
      assert.deepStrictEqual(
        applied.map((r) => r.id),
        Migrations.all.map((m) => m.id)
      )
      const tables = yield* sql<{ table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'tessera' ORDER BY table_name`
      assert.includeMembers(
        tables.map((r) => r.table_name),
        ["columns", "dirs", "indexes", "meta", "migrations", "tables", "versions"]
      )
    }))

  test("vector and halfvec values round-trip as Float32Array, in bulk and with nulls", () =>
    Effect.gen(function* () {
      const db = yield* Database.Database
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE items (id int4 PRIMARY KEY, v vector(8), h halfvec(8))`
      const vectors = randomVectors(1000, 8, 1)
      // One multi-row statement with 2000 binary vector parameters.
      const rows = vectors.map((v, id) => ({
        id,
        v: db.vector(v),
        h: db.halfvec(id % 2 === 0 ? Array.from(v) : v)
      }))
      yield* sql`INSERT INTO items ${sql.insert(nonEmpty(rows))}`
      yield* sql`INSERT INTO items VALUES (-1, ${db.vector(null)}, ${db.halfvec(null)})`
      const back = yield* sql<{ id: number; v: Float32Array | null; h: Float32Array | null }>`
        SELECT id, v, h FROM items ORDER BY id`
      assert.strictEqual(back.length, 1001)
      assert.isNull(back[0]!.v)
      assert.isNull(back[0]!.h)
      for (let i = 0; i < 1000; i++) {
        const row = back[i + 1]!
        assert.strictEqual(row.id, i)
        assert.instanceOf(row.v, Float32Array)
        assert.deepStrictEqual(Array.from(row.v!), Array.from(vectors[i]!))
        // halfvec keeps ~3 significant digits.
        const h = row.h!
        for (let j = 0; j < 8; j++) assert.approximately(h[j]!, vectors[i]![j]!, 1e-3)
      }
      // The server agrees with what we sent: compare with its text rendering.
      const text = yield* sql<{ t: string }>`SELECT v::text AS t FROM items WHERE id = 0`
      const parsed: Array<number> = JSON.parse(text[0]!.t)
      assert.strictEqual(parsed.length, 8)
      for (const [j, x] of parsed.entries()) assert.approximately(x, vectors[0]![j]!, 1e-6)
    }))

  test("a vector with a non-finite element is rejected before it reaches the database", () =>
    Effect.gen(function* () {
      const db = yield* Database.Database
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE bad (v vector(2))`
      const exit = yield* sql`INSERT INTO bad VALUES (${db.vector([1, Number.NaN])})`.pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const count = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM bad`
      assert.strictEqual(count[0]!.n, 0)
    }))

  test("HNSW top-k equals exact top-k on a small set", () =>
    Effect.gen(function* () {
      const db = yield* Database.Database
      const sql = yield* SqlClient.SqlClient
      const dim = 16
      const vectors = randomVectors(300, dim, 7)
      yield* sql`CREATE TABLE docs (id int4 PRIMARY KEY, v vector(16) NOT NULL)`
      yield* sql`INSERT INTO docs ${sql.insert(nonEmpty(vectors.map((v, id) => ({ id, v: db.vector(v) }))))}`
      yield* sql`CREATE INDEX docs_v_hnsw ON docs USING hnsw (v vector_cosine_ops) WITH (m = 16, ef_construction = 200)`
      const queries = randomVectors(5, dim, 99)
      for (const q of queries) {
        const exact = vectors
          .map((v, id) => ({ id, d: cosineDistance(v, q) }))
          .sort((a, b) => a.d - b.d)
          .slice(0, 10)
          .map((r) => r.id)
        const viaIndex = yield* sql.withTransaction(
          Effect.gen(function* () {
            yield* sql`SET LOCAL enable_seqscan = off`
            yield* sql`SET LOCAL hnsw.ef_search = 300`
            const plan = yield* sql<{ "QUERY PLAN": string }>`
              EXPLAIN SELECT id FROM docs ORDER BY v <=> ${db.vector(q)} LIMIT 10`
            assert.match(plan.map((r) => r["QUERY PLAN"]).join("\n"), /docs_v_hnsw/)
            return yield* sql<{ id: number }>`SELECT id FROM docs ORDER BY v <=> ${db.vector(q)} LIMIT 10`
          })
        )
        assert.deepStrictEqual(
          viaIndex.map((r) => r.id),
          exact
        )
      }
    }))

  test("a transaction that fails leaves nothing behind", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE ledger (id int4 PRIMARY KEY, amount int4 NOT NULL)`
      const exit = yield* sql
        .withTransaction(
          Effect.gen(function* () {
            yield* sql`INSERT INTO ledger ${sql.insert([
              { id: 1, amount: 10 },
              { id: 2, amount: 20 }
            ])}`
            const inside = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger`
            assert.strictEqual(inside[0]!.n, 2)
            // Violates the primary key: the whole transaction must roll back.
            yield* sql`INSERT INTO ledger VALUES (1, 30)`
          })
        )
        .pipe(Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const after = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger`
      assert.strictEqual(after[0]!.n, 0)
      // The connection is usable afterwards.
      yield* sql`INSERT INTO ledger VALUES (3, 30)`
      const last = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ledger`
      assert.strictEqual(last[0]!.n, 1)
    }))

  test("50 concurrent queries and transactions all complete with their own results", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE counter (id int4 PRIMARY KEY, fiber int4 NOT NULL)`
      const results = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) =>
          i % 2 === 0
            ? sql<{ i: number }>`SELECT ${i}::int4 AS i, pg_sleep(0.002)`.pipe(Effect.map((rows) => rows[0]!.i))
            : sql.withTransaction(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO counter VALUES (${i}, ${i})`
                  const rows = yield* sql<{ fiber: number }>`SELECT fiber FROM counter WHERE id = ${i}`
                  return rows[0]!.fiber
                })
              ),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(
        results,
        Array.from({ length: 50 }, (_, i) => i)
      )
      const count = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM counter`
      assert.strictEqual(count[0]!.n, 25)
    }))

  test("applying the migrations twice is a no-op", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      // Opening the database already applied them once.
      const again = yield* Migrations.run(sql)
      assert.deepStrictEqual(again, [])
      const third = yield* Migrations.run(sql)
      assert.deepStrictEqual(third, [])
      const rows = yield* sql<{ n: number }>`SELECT count(*)::int4 AS n FROM tessera.migrations`
      assert.strictEqual(rows[0]!.n, Migrations.all.length)
    }))

  test("a database from an older version is migrated; one from a newer version is refused", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const next: Migrations.Migration = {
        id: Migrations.latest() + 1,
        name: "future",
        statements: ["CREATE TABLE tessera.future_thing (id int4 PRIMARY KEY)"]
      }
      const applied = yield* Migrations.run(sql, [...Migrations.all, next])
      assert.deepStrictEqual(applied, [next.id])
      const exists = yield* sql<{ n: number }>`
        SELECT count(*)::int4 AS n FROM information_schema.tables
        WHERE table_schema = 'tessera' AND table_name = 'future_thing'`
      assert.strictEqual(exists[0]!.n, 1)
      // This engine (without `next`) must refuse the newer metadata.
      const refused = yield* Migrations.run(sql).pipe(Effect.flip)
      assert.strictEqual(refused.reason, "NewerSchema")
      assert.match(refused.message, /newer Tessera/)
    }))
})

describe("Database configuration and errors", () => {
  it.live(
    "the embedded home keeps its data across processes, and an older home is migrated on open",
    () =>
      Effect.gen(function* () {
        const home = yield* Harness.tempDir()
        const script = NodePath.join(import.meta.dirname, "fixtures", "home-process.ts")
        const run = (...args: Array<string>) =>
          NodeChildProcess.execFileSync(process.execPath, [script, home, ...args], {
            encoding: "utf8",
            env: { ...process.env, TESSERA_HOME: home, TESSERA_DATABASE_URL: "" }
          }).trim()
        // Process 1 creates the home with only the first migration (an "older version").
        assert.strictEqual(run("write-old"), "wrote 3")
        assert.isTrue(NodeFs.existsSync(NodePath.join(home, "pgdata", "PG_VERSION")))
        // Process 2 opens it with the current engine: migrated on open, data intact.
        const out = JSON.parse(run("read"))
        assert.deepStrictEqual(out.rows, [
          { id: 1, v: [1, 0, 0] },
          { id: 2, v: [0, 1, 0] },
          { id: 3, v: [0, 0, 1] }
        ])
        assert.deepStrictEqual(
          out.migrations,
          Migrations.all.map((m) => m.id)
        )
      }),
    120_000
  )

  it.live(
    "configuration selects the embedded database under TESSERA_HOME",
    () =>
      Effect.gen(function* () {
        const home = yield* Harness.tempDir()
        const backend = yield* Effect.gen(function* () {
          const db = yield* Database.Database
          return [db.backend, db.home] as const
        }).pipe(
          Effect.provide(
            Database.layer.pipe(
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { TESSERA_HOME: home } })))
            )
          )
        )
        assert.deepStrictEqual(backend, ["embedded", home])
        assert.isTrue(NodeFs.existsSync(NodePath.join(home, "pgdata")))
      }),
    120_000
  )

  it.live("an unreachable server is a clear Unreachable error without the password", () =>
    Effect.gen(function* () {
      const home = yield* Harness.tempDir()
      const error = yield* Effect.gen(function* () {
        yield* Database.Database
      }).pipe(
        Effect.provide(
          Database.layer.pipe(
            Layer.provide(
              ConfigProvider.layer(
                ConfigProvider.fromEnv({
                  env: { TESSERA_HOME: home, TESSERA_DATABASE_URL: "postgres://bob:s3cret@127.0.0.1:1/nowhere" }
                })
              )
            )
          )
        ),
        Effect.flip
      )
      assert.strictEqual(error._tag, "DatabaseError")
      assert.strictEqual(error.reason, "Unreachable")
      assert.match(
        error.message,
        /Cannot reach the PostgreSQL server at postgres:\/\/bob:\*\*\*@127\.0\.0\.1:1\/nowhere/
      )
      assert.notInclude(error.message, "s3cret")
      assert.notInclude(error.location, "s3cret")
    })
  )

  it.live("a home that is not a writable directory is a clear HomeNotWritable error", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const file = NodePath.join(dir, "a-file")
      NodeFs.writeFileSync(file, "not a directory")
      const exit = yield* Effect.gen(function* () {
        yield* Database.Database
      }).pipe(Effect.provide(Database.layerEmbedded({ home: NodePath.join(file, "home") })), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.instanceOf(error, Database.DatabaseError)
      const dbError = error as Database.DatabaseError
      assert.strictEqual(dbError.reason, "HomeNotWritable")
      assert.include(dbError.message, file)
    })
  )

  it.live("redactUrl hides passwords", () =>
    Effect.sync(() => {
      assert.strictEqual(Database.redactUrl("postgres://u:p@h:5/d"), "postgres://u:***@h:5/d")
      assert.strictEqual(Database.redactUrl("postgres://u@h/d"), "postgres://u@h/d")
      assert.notInclude(Database.redactUrl(Redacted.value(Redacted.make("postgres://a:zz@h/d"))), "zz")
    })
  )
})
