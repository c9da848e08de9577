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
 * 5. indexes captions and images with local embedding models (offline, no
 *    key), answers a text query (also filtered), an image query and a hybrid (keyword +
 *    meaning) query; with OPENAI_API_KEY set it also adds an LLM column.
 *
 * Run it with `npm run demo`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Column, Dir, Fn, Stage, Supervisor, Table } from "@tessera/core"
import { Ffmpeg, Video } from "@tessera/media"
import { LocalModels } from "@tessera/models"
import { OpenAI } from "@tessera/providers"
import { Database, Tessera } from "@tessera/sql"
import { Console, Effect, Stream } from "effect"
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

// Search, offline: local models embed captions (Universal Sentence Encoder)
// and images (MobileNetV2) on a pool of worker threads; a full-text index
// adds keyword search, and a hybrid query fuses the two rankings.
const pictures: ReadonlyArray<{ readonly name: string; readonly caption: string; readonly svg: string }> = [
  {
    name: "circle",
    caption: "A red ball lying on a white floor",
    svg: `<rect width="256" height="256" fill="white"/><circle cx="128" cy="128" r="80" fill="#d22"/>`
  },
  {
    name: "stripes",
    caption: "Blue and white stripes on a sailor's shirt",
    svg: Array.from({ length: 8 }, (_, i) => `<rect y="${i * 32}" width="256" height="16" fill="#24c"/>`).join("")
  },
  {
    name: "checkers",
    caption: "A chess board with black and green squares",
    svg: Array.from({ length: 64 }, (_, i) =>
      (Math.floor(i / 8) + i) % 2 === 0
        ? `<rect x="${(i % 8) * 32}" y="${Math.floor(i / 8) * 32}" width="32" height="32" fill="#1a1"/>`
        : ""
    ).join("")
  },
  {
    name: "sunset",
    caption: "An orange sunset over a calm sea",
    svg: `<defs><linearGradient id="g" x2="0" y2="1"><stop offset="0" stop-color="#fa3"/><stop offset="1" stop-color="#a20"/></linearGradient></defs><rect width="256" height="256" fill="url(#g)"/>`
  }
]

const render = (svg: string, file: string, size = 256) =>
  Effect.promise(() =>
    sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">${svg}</svg>`))
      .resize(size, size)
      .png()
      .toFile(file)
  )

const search = Effect.gen(function* () {
  const db = yield* Database.Database
  const dir = NodePath.join(db.home, "demo-media")
  for (const p of pictures) yield* render(p.svg, NodePath.join(dir, `${p.name}.png`))
  const photos = yield* Table.create(
    "demo/photos",
    { name: Column.String, caption: Column.String, image: Column.Image },
    { ifExists: "replace_force" }
  )
  yield* photos.insert(
    pictures.map((p) => ({ name: p.name, caption: p.caption, image: NodePath.join(dir, `${p.name}.png`) }))
  )
  const indexed = yield* photos.addEmbeddingIndex("caption", { embed: LocalModels.textEmbedding() }).pipe(
    Effect.flatMap((t) => t.addEmbeddingIndex("image", { embed: LocalModels.imageEmbedding() })),
    Effect.flatMap((t) => t.addTextIndex("caption"))
  )
  yield* Console.log(
    `Indexed ${pictures.length} photos: captions and images, embedded by local models (no key, no network)`
  )

  const textQuery = "a checkerboard for playing chess"
  const byText = yield* indexed
    .select((c) => ({ name: c.name, caption: c.caption, score: c.caption.similarity(textQuery) }))
    .orderBy("score", "desc")
    .limit(2)
    .collect()
  yield* Console.log(`Captions closest to "${textQuery}":`)
  for (const r of byText) yield* Console.log(`  ${r.name.padEnd(8)} ${r.score.toFixed(3)}  ${r.caption}`)

  // A filter combines with similarity: the index scan goes on until the limit is filled.
  // `efSearch` widens this query's HNSW search (pgvector's default is 40 candidates).
  const others = yield* indexed
    .where((c) => c.name.ne(byText[0]!.name))
    .select((c) => ({ name: c.name, score: c.caption.similarity(textQuery, { efSearch: 100 }) }))
    .orderBy("score", "desc")
    .limit(2)
    .collect()
  yield* Console.log(
    `Without the ${byText[0]!.name}, the closest are: ${others.map((r) => `${r.name} ${r.score.toFixed(3)}`).join(", ")}`
  )

  // An image query: a small copy of the stripes, which is in no row.
  const probe = NodePath.join(dir, "stripes-small.png")
  yield* render(pictures[1]!.svg, probe, 96)
  const byImage = yield* indexed
    .select((c) => ({ name: c.name, score: c.image.similarity(probe) }))
    .orderBy("score", "desc")
    .limit(2)
    .collect()
  yield* Console.log(
    `Images closest to ${NodePath.basename(probe)}: ${byImage.map((r) => `${r.name} ${r.score.toFixed(3)}`).join(", ")}`
  )

  const fused = yield* Table.hybridSearch(indexed, {
    text: { column: "caption", query: "sea" },
    vector: { column: "caption", query: "a toy to play with" },
    k: 2
  })
  yield* Console.log(
    `Hybrid search (keyword "sea" + meaning "a toy to play with"): ${fused.map((r) => r.name).join(", ")}`
  )

  // With a key, a real LLM column: computed durably, rate-limited by the API's headers.
  if (process.env.OPENAI_API_KEY) {
    const withTitles = yield* indexed.addComputedColumn(
      "title",
      OpenAI.chat({ model: "gpt-4o-mini", prompt: "A three-word title for a photo captioned: {prompt}" })({
        prompt: indexed.c.caption
      }),
      { onError: "record" }
    )
    for (const r of yield* withTitles
      .select((c) => ({ name: c.name, title: c.title, error: c.title.errorMessage }))
      .collect()) {
      yield* Console.log(`  ${r.name.padEnd(8)} ${r.title ?? `(error: ${r.error})`}`)
    }
  } else {
    yield* Console.log("Set OPENAI_API_KEY to also add an LLM column (OpenAI.chat) over the captions.")
  }
})

const program = Effect.gen(function* () {
  const db = yield* Database.Database
  yield* Console.log(`Tessera demo on the ${db.backend} database at ${db.location}`)
  yield* computedColumns
  yield* durable
  yield* versions
  yield* media
  yield* search
})

program.pipe(Effect.provide(Tessera.layer), NodeRuntime.runMain)
