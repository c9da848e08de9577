/**
 * The Tessera demo: opens the database chosen by configuration (the embedded
 * one under TESSERA_HOME, default ~/.tessera, unless TESSERA_DATABASE_URL is
 * set), stores a small table with a vector column, and answers a similarity
 * query with pgvector.
 *
 * Run it with `npm run demo`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Database } from "@tessera/sql"
import { Console, Effect } from "effect"
import { SqlClient } from "effect/sql"

// Tiny hand-made "embeddings" over four features: [animal, vehicle, fast, large].
const items: ReadonlyArray<{ readonly name: string; readonly embedding: ReadonlyArray<number> }> = [
  { name: "cheetah", embedding: [0.8, 0.0, 1.0, 0.3] },
  { name: "elephant", embedding: [0.9, 0.0, 0.1, 0.9] },
  { name: "house cat", embedding: [0.9, 0.0, 0.4, 0.1] },
  { name: "race car", embedding: [0.0, 0.9, 0.9, 0.3] },
  { name: "cargo ship", embedding: [0.0, 0.9, 0.1, 0.9] },
  { name: "bicycle", embedding: [0.0, 0.8, 0.3, 0.1] },
  { name: "falcon", embedding: [0.8, 0.0, 1.0, 0.1] }
]

const query = { label: "something fast", embedding: [0.3, 0.3, 1.0, 0.2] }

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  const sql = yield* SqlClient.SqlClient
  yield* Console.log(`Tessera demo on the ${db.backend} database at ${db.location}`)

  yield* sql`CREATE SCHEMA IF NOT EXISTS demo`
  yield* sql`DROP TABLE IF EXISTS demo.things`
  yield* sql`CREATE TABLE demo.things (name text PRIMARY KEY, embedding vector(4) NOT NULL)`
  const rows = items.map((item) => ({ name: item.name, embedding: db.vector(item.embedding) }))
  yield* sql`INSERT INTO demo.things ${sql.insert(rows as [(typeof rows)[number], ...typeof rows])}`
  yield* Console.log(`Inserted ${items.length} rows into demo.things`)

  const top = yield* sql<{ name: string; distance: number }>`
    SELECT name, embedding <=> ${db.vector(query.embedding)} AS distance
    FROM demo.things
    ORDER BY distance
    LIMIT 3`
  yield* Console.log(`Top 3 by cosine distance to "${query.label}":`)
  for (const [rank, row] of top.entries()) {
    yield* Console.log(`  ${rank + 1}. ${row.name.padEnd(10)} distance=${row.distance.toFixed(4)}`)
  }
})

program.pipe(Effect.provide(Database.layer), NodeRuntime.runMain)
