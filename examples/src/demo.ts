/**
 * The Tessera demo: opens the database chosen by configuration (the embedded
 * one under TESSERA_HOME, default ~/.tessera, unless TESSERA_DATABASE_URL is
 * set), then
 *
 * 1. builds a table with computed columns (an arithmetic one and one that
 *    calls a function), inserts rows, and queries them;
 * 2. writes rows without waiting and lets the supervisor compute them;
 * 3. keeps a view over the table, updates a row, and reads the history and
 *    an older version (time travel);
 * 4. makes thumbnails of generated images and a frames view of a generated
 *    video (media go to the content-addressed store under the home);
 * 5. stores a small table with a vector column and answers a similarity
 *    query with pgvector.
 *
 * Run it with `npm run demo`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Column, Dir, Fn, Stage, Supervisor, Table } from "@tessera/core"
import { Ffmpeg, Video } from "@tessera/media"
import { Database, Tessera } from "@tessera/sql"
import { Console, Effect, Stream } from "effect"
import { SqlClient } from "effect/sql"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import sharp from "sharp"

// A user function: plain TypeScript, registered under its name and version.
const wordCount = Fn.make({
  name: "demo.wordCount",
  params: { text: Column.String },
  returns: Column.Int,
  run: ({ text }) => text.split(/\s+/).filter((w) => w.length > 0).length
})

const computedColumns = Effect.gen(function* () {
  yield* Dir.create("demo", { ifExists: "ignore" })
  const films = yield* Table.create(
    "demo/films",
    { title: Column.String, year: Column.Int, tagline: Column.nullable(Column.String) },
    // The view below is made from this table: replace it too on a rerun.
    { ifExists: "replace_force" }
  )
  yield* films.insert([
    { title: "Alien", year: 1979, tagline: "In space no one can hear you scream." },
    { title: "Heat", year: 1995 }
  ])
  // Computed columns are backfilled now and kept up to date on every insert.
  const withAge = yield* films.addComputedColumn("age", films.c.year.minus(2026).neg())
  const withWords = yield* withAge.addComputedColumn("taglineWords", wordCount({ text: withAge.c.tagline }))
  const inserted = yield* withWords.insert([
    { title: "Arrival", year: 2016, tagline: "Why are they here?" },
    { title: "Gattaca", year: 1997, tagline: "There is no gene for the human spirit." }
  ])
  yield* Console.log(
    `Inserted ${inserted.inserted} films into demo/films (version ${inserted.version}); ${inserted.computed} computed cells`
  )
  const rows = yield* withWords
    .where((c) => c.year.lt(2000))
    .select((c) => ({ title: c.title, age: c.age, words: c.taglineWords }))
    .orderBy("age", "desc")
    .collect()
  yield* Console.log("Films before 2000, oldest first (age and words are computed columns):")
  for (const row of rows) {
    yield* Console.log(`  ${row.title.padEnd(8)} age=${row.age} words=${row.words ?? "null (no tagline)"}`)
  }
})

// Rows written without waiting: the supervisor (running in this process, as it
// would in a `tessera serve` daemon) computes their cells durably.
const durable = Effect.gen(function* () {
  const films = yield* Table.get("demo/films")
  const result = yield* films.insert(
    [
      { title: "Solaris", year: 1972, tagline: "The ocean remembers everything." },
      { title: "Stalker", year: 1979, tagline: "Enter the zone." }
    ],
    { wait: false }
  )
  yield* Console.log(`Inserted 2 films without waiting: ${result.pending} cells pending`)
  const meta = yield* films.load
  const words = meta.columns.find((c) => c.name === "taglineWords")!
  yield* Stream.runDrain(Stage.progress(meta, words, 50))
  const supervisor = yield* Supervisor.Supervisor
  yield* Console.log("Stages (table.column state pending/done/error):")
  for (const s of yield* supervisor.status) {
    yield* Console.log(`  ${s.table}.${s.column} ${s.state} ${s.pending}/${s.done}/${s.error}`)
  }
})

// Every change is a version: a view follows its base, and old versions stay readable.
const versions = Effect.gen(function* () {
  const films = yield* Table.get("demo/films")
  const classics = yield* Table.createView(
    "demo/classics",
    films.where((c) => c.year.lt(1980)).select((c) => ({ title: c.title, year: c.year })),
    { ifExists: "replace" }
  )
  yield* films.update({ year: 1981 }, (c) => c.title.eq("Stalker"))
  const names = (rows: ReadonlyArray<{ readonly title: unknown }>) =>
    rows
      .map((r) => String(r.title))
      .sort()
      .join(", ")
  yield* Console.log(`View demo/classics (films before 1980): ${names(yield* classics.collect())}`)
  const history = yield* films.history()
  yield* Console.log(`demo/films has ${history.length} versions; the latest three:`)
  for (const v of history.slice(0, 3)) {
    yield* Console.log(
      `  v${v.version} ${v.changeType} ${v.schemaChange ?? `inserted=${v.inserted} updated=${v.updated} deleted=${v.deleted}`}`
    )
  }
  const before = yield* Table.get("demo/films", { version: history[1]!.version })
  const stalker = yield* before.where((c) => c.title.eq("Stalker")).collect()
  yield* Console.log(`Time travel: at v${history[1]!.version}, Stalker's year was ${stalker[0]?.year}`)
})

// Media: generated images and a short video, with thumbnails and a frames view.
const media = Effect.gen(function* () {
  const db = yield* Database.Database
  const dir = NodePath.join(db.home, "demo-media")
  NodeFs.mkdirSync(dir, { recursive: true })
  const colours = [
    { name: "red", rgb: { r: 220, g: 40, b: 40 } },
    { name: "green", rgb: { r: 40, g: 180, b: 60 } },
    { name: "blue", rgb: { r: 40, g: 60, b: 220 } }
  ]
  for (const c of colours) {
    yield* Effect.promise(() =>
      sharp({ create: { width: 640, height: 480, channels: 3, background: c.rgb } })
        .jpeg()
        .toFile(NodePath.join(dir, `${c.name}.jpg`))
    )
  }
  const binaries = yield* Ffmpeg.current
  const video = NodePath.join(dir, "pattern.mp4")
  if (!NodeFs.existsSync(video)) {
    NodeChildProcess.execFileSync(binaries.ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"],
      ...["-i", "testsrc=duration=3:size=320x240:rate=10", "-pix_fmt", "yuv420p", video]
    ])
  }
  const images = yield* Table.create(
    "demo/images",
    { name: Column.String, image: Column.Image },
    { ifExists: "replace_force" }
  )
  // Image columns have the image functions as methods (Image.thumbnail(images.c.image, ...) is the same).
  const withThumbs = yield* images.addComputedColumn("thumb", images.c.image.thumbnail({ size: 64 }))
  yield* withThumbs.insert(colours.map((c) => ({ name: c.name, image: NodePath.join(dir, `${c.name}.jpg`) })))
  const thumbs = yield* withThumbs.collect()
  yield* Console.log(
    `Thumbnails (${thumbs.length}), stored content-addressed under ${NodePath.join(db.home, "media")}:`
  )
  for (const t of thumbs) {
    // Queries give media as handles: the reference, and the local file (or bytes) on demand.
    const path = yield* t.thumb!.localPath
    const meta = yield* Effect.promise(() => sharp(path).metadata())
    yield* Console.log(`  ${t.name.padEnd(6)} ${meta.width}x${meta.height} ${NodePath.basename(path)}`)
  }
  const videos = yield* Table.create(
    "demo/videos",
    { name: Column.String, video: Column.Video },
    { ifExists: "replace_force" }
  )
  yield* videos.insert([{ name: "pattern", video }])
  const frames = yield* Table.createView(
    "demo/frames",
    videos.select((c) => ({ name: c.name })),
    {
      iterator: Video.frameIterator(videos.c.video, { fps: 1 })
    }
  )
  const rows = yield* frames.orderBy("pos").collect()
  yield* Console.log(
    `Frames view over ${NodePath.basename(video)} at 1 fps: ${rows.length} frames at ${rows.map((r) => `${r.time}s`).join(", ")}`
  )
})

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

const similarity = Effect.gen(function* () {
  const db = yield* Database.Database
  const sql = yield* SqlClient.SqlClient
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

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  yield* Console.log(`Tessera demo on the ${db.backend} database at ${db.location}`)
  yield* computedColumns
  yield* durable
  yield* versions
  yield* media
  yield* similarity
})

program.pipe(Effect.provide(Tessera.layer), NodeRuntime.runMain)
