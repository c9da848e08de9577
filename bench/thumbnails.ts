/**
 * Thumbnails: 500 generated 1024x768 JPEGs (made once, before timing) to
 * 224 px thumbnails, through a Tessera computed column
 * (`Image.thumbnail`, embedded backend: insert of the rows with the column
 * present, the thumbnails written to the media store) and through raw sharp
 * in the same process (the same resize, `toFile` beside the inputs, with the
 * same concurrency as the Tessera function). ratio = Tessera time / raw time
 * (target <= 1.3). `--quick`: 50 images, one run.
 */
import { Column, Dir, Table } from "@tessera/core"
import { Image, MediaStore } from "@tessera/media"
import { Tessera } from "@tessera/sql"
import { Effect, Layer } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"

const SIZE = 224

const generate = async (dir: string, n: number): Promise<Array<string>> => {
  const width = 1024
  const height = 768
  const base = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3
      base[i] = (x * 255) / width
      base[i + 1] = (y * 255) / height
      base[i + 2] = ((x ^ y) & 0xff) / 2
    }
  }
  NodeFs.mkdirSync(dir, { recursive: true })
  const paths: Array<string> = []
  for (let i = 0; i < n; i++) {
    const path = NodePath.join(dir, `img-${i}.jpg`)
    // Every image differs, so no two thumbnails share a file in the store.
    const scale = [i % 10, Math.floor(i / 10) % 10, Math.floor(i / 100) % 10].map((d) => 1 - d * 0.04)
    await sharp(base, { raw: { width, height, channels: 3 } })
      .linear(scale, [0, 0, 0])
      .jpeg({ quality: 85 })
      .toFile(path)
    paths.push(path)
  }
  return paths
}

/** Raw sharp: the same resize with the same concurrency, writing the thumbnails as files. */
const raw = async (paths: ReadonlyArray<string>, outDir: string, concurrency: number): Promise<number> => {
  NodeFs.mkdirSync(outDir, { recursive: true })
  const start = performance.now()
  let next = 0
  const worker = async () => {
    while (next < paths.length) {
      const i = next++
      await sharp(paths[i]!, { autoOrient: true })
        .resize({ width: SIZE, height: SIZE, fit: "inside", withoutEnlargement: true })
        .toFile(NodePath.join(outDir, `thumb-${i}.jpg`))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return performance.now() - start
}

const tessera = (paths: ReadonlyArray<string>, run: number) =>
  Effect.gen(function* () {
    yield* Dir.create("bench", { ifExists: "ignore" })
    const t = yield* Table.create(`bench/thumbnails_${run}`, { img: Column.Image }, { ifExists: "replace" })
    // No result cache: every run computes every thumbnail.
    const t2 = yield* t.addComputedColumn("thumb", Image.thumbnail(t.c.img, { size: SIZE }), { cache: false })
    // Let the supervisor start (and idle) the new column's stage: the insert is what is timed.
    yield* Effect.sleep("300 millis")
    const start = performance.now()
    const result = yield* t2.insert(paths.map((img) => ({ img })))
    const ms = performance.now() - start
    if (result.errors !== 0) throw new Error(`${result.errors} thumbnails failed`)
    const rows = yield* t2.select((c) => ({ thumb: c.thumb })).collect()
    const thumbs = rows.map((r) => r.thumb?.uri ?? null).filter((p): p is string => p !== null)
    if (thumbs.length !== paths.length || !NodeFs.existsSync(thumbs[0]!)) throw new Error("thumbnails missing")
    const meta = yield* Effect.promise(() => sharp(thumbs[0]!).metadata())
    if (Math.max(meta.width, meta.height) !== SIZE) throw new Error(`thumbnail is ${meta.width}x${meta.height}`)
    return ms
  })

export const main = async (args: ReadonlyArray<string>) => {
  const quick = args.includes("--quick")
  const n = quick ? 50 : 500
  const runs = quick ? 1 : 3
  const work = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-bench-thumbs-"))
  const home = NodePath.join(work, "home")
  try {
    let start = performance.now()
    const paths = await generate(NodePath.join(work, "images"), n)
    console.log(`generated ${n} 1024x768 JPEGs in ${Math.round(performance.now() - start)} ms`)
    const concurrency = Image.functions.thumbnail.definition.concurrency
    const layer = Tessera.layerEmbedded({ home }).pipe(Layer.provideMerge(MediaStore.layer(home)))
    const timings = await Effect.runPromise(
      Effect.gen(function* () {
        const tesseraMs: Array<number> = []
        const rawMs: Array<number> = []
        // Warm up both paths (sharp, the database, the function) on a few images.
        yield* tessera(paths.slice(0, 4), -1)
        yield* Effect.promise(() => raw(paths.slice(0, 4), NodePath.join(work, "raw-warmup"), concurrency))
        for (let run = 0; run < runs; run++) {
          start = performance.now()
          tesseraMs.push(yield* tessera(paths, run))
          rawMs.push(yield* Effect.promise(() => raw(paths, NodePath.join(work, `raw-${run}`), concurrency)))
        }
        const median = (xs: Array<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!
        return { tessera: median(tesseraMs), raw: median(rawMs) }
      }).pipe(Effect.provide(layer))
    )
    const ratio = timings.tessera / timings.raw
    const perS = (ms: number) => Math.round(n / (ms / 1000))
    console.log(
      `tessera: ${Math.round(timings.tessera)} ms (${perS(timings.tessera)} images/s), raw sharp: ${Math.round(timings.raw)} ms (${perS(timings.raw)} images/s), ratio ${ratio.toFixed(2)}`
    )
    console.log(
      `BENCH thumbnails images=${n} size=${SIZE} concurrency=${concurrency} tessera_ms=${Math.round(timings.tessera)} raw_ms=${Math.round(timings.raw)} tessera_per_s=${perS(timings.tessera)} raw_per_s=${perS(timings.raw)} ratio=${ratio.toFixed(2)}`
    )
  } finally {
    NodeFs.rmSync(work, { recursive: true, force: true })
  }
}
