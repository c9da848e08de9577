import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import { Column, Expr, Fn, Media, Table } from "@tessera/core"
import { Database } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { Cause, Effect, Exit } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import { Image, MediaStore } from "../src/index.ts"
import { generateLong, generator } from "./fixtures/ffmpegFixtures.ts"
import { added, filesIn } from "./files.ts"

// Fixtures: three small images, a corrupt one, a missing path, a text file, a
// one-second video and a one-second WAV.
const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-media-values-"))
const fx = {
  red: NodePath.join(dir, "red-40x20.png"),
  green: NodePath.join(dir, "green-30x30.png"),
  blue: NodePath.join(dir, "blue-20x40.jpg"),
  corrupt: NodePath.join(dir, "corrupt.jpg"),
  missing: NodePath.join(dir, "missing.png"),
  text: NodePath.join(dir, "notes.txt"),
  video: NodePath.join(dir, "clip.mp4"),
  audio: NodePath.join(dir, "tone.wav")
}

const solid = (width: number, height: number, r: number, g: number, b: number) =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } })

beforeAll(async () => {
  await solid(40, 20, 255, 0, 0).png().toFile(fx.red)
  await solid(30, 30, 0, 255, 0).png().toFile(fx.green)
  await solid(20, 40, 0, 0, 255).jpeg().toFile(fx.blue)
  NodeFs.writeFileSync(fx.corrupt, Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7919 + 13) % 251)))
  NodeFs.writeFileSync(fx.text, "Not an image, but a fine document.\n")
  generateLong(fx.video, 1, "160x120", 10)
  NodeChildProcess.execFileSync(generator, [
    ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"],
    ...["-i", "sine=frequency=440:sample_rate=8000:duration=1", fx.audio]
  ])
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

/** The typed failure of an effect that must fail. */
const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    return error as E
  })

/** Runs a test body with the media store under the test database's home; passes the store's root. */
const withStore = <A, E, R>(body: (media: string) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.service(Database.Database), ({ home }) =>
    body(NodePath.join(home, "media")).pipe(Effect.provide(MediaStore.layer(home)))
  )

let unique = 0
/** A function that fails for the name "boom": makes an insert abort after its thumbnails were made. */
const failsOnBoom = () =>
  Fn.make({
    name: `mediaValues_failsOnBoom_${process.pid}_${unique++}`,
    params: { name: Column.String },
    returns: Column.String,
    run: ({ name }) => {
      if (name === "boom") throw new Error("boom")
      return name
    }
  })

const images = () => [
  { name: "red", img: fx.red },
  { name: "corrupt", img: fx.corrupt },
  { name: "green", img: fx.green },
  { name: "missing", img: fx.missing },
  { name: "blue", img: fx.blue }
]

Harness.forEachBackend("Media values", (test) => {
  test("images as bytes go to the media store; results are handles with the local path and bytes; handles insert back", () =>
    withStore((media) =>
      Effect.gen(function* () {
        const bytes = new Uint8Array(NodeFs.readFileSync(fx.red))
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        yield* t.insert([
          { name: "bytes", img: bytes },
          { name: "path", img: fx.green }
        ])
        const rows = yield* t.orderBy("name").collect()
        const [fromBytes, fromPath] = rows
        assert.instanceOf(fromBytes!.img, Media.MediaRef)
        assert.strictEqual(fromBytes!.img.kind, "Image")
        assert.isTrue(fromBytes!.img.uri.startsWith(media + NodePath.sep), fromBytes!.img.uri)
        assert.isTrue(fromBytes!.img.uri.endsWith(".png"))
        assert.strictEqual(yield* fromBytes!.img.localPath, fromBytes!.img.uri)
        assert.deepStrictEqual(yield* fromBytes!.img.bytes, bytes)
        // A local path is referenced in place, not copied.
        assert.strictEqual(fromPath!.img.uri, fx.green)
        assert.strictEqual(String(fromPath!.img), fx.green)
        assert.strictEqual(JSON.stringify({ img: fromPath!.img }), JSON.stringify({ img: fx.green }))

        // Rows copied to another table: the handles are stored as their references.
        const copy = yield* Table.create("copy", { name: Column.String, img: Column.Image })
        yield* copy.insert(rows)
        assert.deepStrictEqual(
          (yield* copy.orderBy("name").collect()).map((r) => r.img.uri),
          rows.map((r) => r.img.uri)
        )
        // A handle is also a function argument.
        const [sized] = yield* copy
          .select(() => ({ w: Image.width(fromPath!.img) }))
          .limit(1)
          .collect()
        assert.strictEqual(sized!.w, 30)
        // Corrupt bytes are refused.
        const error = yield* failureOf(t.insert([{ name: "bad", img: new Uint8Array([1, 2, 3]) }]))
        assert.strictEqual(error._tag, "ValidationError")
        assert.strictEqual(yield* t.count(), 2)
      })
    ))

  test('onError "abort": 2 bad files in a batch of 5 fail the insert naming the file; nothing is written', () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        const t2 = yield* t.addComputedColumn("thumb", t.c.img.thumbnail({ size: 16 }))
        const before = filesIn(media)
        const error = yield* failureOf(t2.insert(images()))
        assert.strictEqual(error._tag, "ValidationError")
        if (error._tag !== "ValidationError") return
        assert.strictEqual(error.row, 1)
        assert.strictEqual(error.column, "img")
        assert.strictEqual(error.file, fx.corrupt)
        assert.include(error.message, fx.corrupt)
        assert.strictEqual(yield* t2.count(), 0)
        assert.deepStrictEqual(added(before, filesIn(media)), [])
        assert.strictEqual((yield* t2.history()).length, 2, "no version was made")
      })
    ))

  test('onError "record": 3 rows with thumbnails, 2 cell errors naming the files; other rows unaffected', () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        const t2 = yield* t.addComputedColumn("thumb", t.c.img.thumbnail({ size: 16 }))
        const result = yield* t2.insert(images(), { onError: "record" })
        assert.strictEqual(result.inserted, 5)
        assert.strictEqual(result.errors, 4, "2 invalid images, 2 thumbnails computed from them")
        assert.deepStrictEqual(result.columnsWithErrors, ["img", "thumb"])
        const rows = yield* t2
          .select((c) => ({
            name: c.name,
            img: c.img,
            imgError: c.img.errorType,
            imgMessage: c.img.errorMessage,
            thumb: c.thumb,
            thumbError: c.thumb.errorType,
            thumbMessage: c.thumb.errorMessage
          }))
          .orderBy("name")
          .collect()
        const bad = new Map([
          ["corrupt", fx.corrupt],
          ["missing", fx.missing]
        ])
        for (const r of rows) {
          const file = bad.get(r.name)
          if (file !== undefined) {
            assert.isNull(r.img, "an invalid value reads as null")
            assert.strictEqual(r.imgError, "MediaError")
            assert.include(r.imgMessage, file)
            assert.isNull(r.thumb)
            assert.strictEqual(r.thumbError, "MediaError", "a dependent fails with the same cause")
            assert.include(r.thumbMessage, file)
            continue
          }
          assert.isNull(r.imgError)
          assert.isNull(r.thumbError)
          assert.isTrue(r.thumb!.uri.startsWith(media + NodePath.sep))
          assert.isTrue(NodeFs.existsSync(yield* r.thumb!.localPath))
        }
        assert.strictEqual(yield* t2.where((c) => c.img.errorType.isNotNull()).count(), 2)
        // A column added later fails alike on the recorded rows, and is done for the others.
        const t3 = yield* t2.addComputedColumn("w", t2.c.img.width(), { onError: "record" })
        const widths = yield* t3
          .select((c) => ({ name: c.name, w: c.w, error: c.w.errorType }))
          .orderBy("name")
          .collect()
        assert.deepStrictEqual(
          widths.map((r) => [r.name, r.w, r.error]),
          [
            ["blue", 20, null],
            ["corrupt", null, "MediaError"],
            ["green", 30, null],
            ["missing", null, "MediaError"],
            ["red", 40, null]
          ]
        )
        // Updating the value with a valid file clears the error.
        yield* t3.update({ img: fx.red }, (c) => c.name.eq("corrupt"))
        const fixed = yield* t3
          .where((c) => c.name.eq("corrupt"))
          .select((c) => ({ error: c.img.errorType, w: c.w }))
          .collect()
        assert.deepStrictEqual(fixed, [{ error: null, w: 40 }])
      })
    ))

  test("wrong formats: a text file as an image, a PNG as a video, audio or document, are refused naming the file", () =>
    withStore(() =>
      Effect.gen(function* () {
        const t = yield* Table.create("media", {
          img: Column.nullable(Column.Image),
          video: Column.nullable(Column.Video),
          audio: Column.nullable(Column.Audio),
          doc: Column.nullable(Column.Document)
        })
        const refused = (row: Parameters<typeof t.insert>[0][number], column: string, file: string) =>
          Effect.gen(function* () {
            const error = yield* failureOf(t.insert([row]))
            assert.strictEqual(error._tag, "ValidationError", `${column}: ${String(error)}`)
            if (error._tag !== "ValidationError") return
            assert.strictEqual(error.column, column)
            assert.strictEqual(error.file, file)
            assert.include(error.message, file)
          })
        yield* refused({ img: fx.text }, "img", fx.text)
        yield* refused({ video: fx.red }, "video", fx.red)
        yield* refused({ audio: fx.red }, "audio", fx.red)
        yield* refused({ doc: fx.red }, "doc", fx.red)
        yield* refused({ video: fx.missing }, "video", fx.missing)
        assert.strictEqual(yield* t.count(), 0)
        // The right formats are accepted (a video's audio track makes it an audio file too).
        yield* t.insert([{ img: fx.blue, video: fx.video, audio: fx.audio, doc: fx.text }])
        // Remote references are not fetched on write (this one could not be).
        yield* t.insert([{ img: "http://127.0.0.1:9/never-fetched.png" }])
        const rows = yield* t.collect()
        assert.deepStrictEqual(
          rows.map((r) => [r.img?.uri, r.video?.uri ?? null, r.audio?.uri ?? null, r.doc?.uri ?? null]),
          [
            [fx.blue, fx.video, fx.audio, fx.text],
            ["http://127.0.0.1:9/never-fetched.png", null, null, null]
          ]
        )
      })
    ))

  test("image methods chain: resize then grayscale, width, height, metadata, toDataUrl", () =>
    withStore(() =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        yield* t.insert([{ name: "red", img: fx.red }])
        const small = t.c.img.resize({ width: 20 }).grayscale()
        expectTypeOf(small).toEqualTypeOf<Media.ImageExpr>()
        const t2 = yield* t.addComputedColumn("small", small)
        const [row] = yield* t2
          .select((c) => ({
            small: c.small,
            w: c.small.width(),
            h: c.small.height(),
            meta: c.small.metadata(),
            w0: c.img.width(),
            url: c.img.toDataUrl()
          }))
          .collect()
        assert.strictEqual(row!.w, 20)
        assert.strictEqual(row!.h, 10)
        assert.strictEqual(row!.meta.mode, "L")
        assert.strictEqual(row!.w0, 40)
        assert.isTrue(row!.url.startsWith("data:image/png;base64,"))
        const info = yield* Effect.promise(() => sharp(row!.small!.uri).metadata())
        assert.deepStrictEqual([info.width, info.height, info.channels], [20, 10, 1])
        // The same calls as the Image functions.
        assert.strictEqual(
          Expr.show(t.c.img.thumbnail({ size: 8 }).node),
          Expr.show(Image.thumbnail(t.c.img, { size: 8 }).node)
        )
        // Expressions of other types do not have the methods.
        assert.isFalse("resize" in t.c.name)
      })
    ))

  test("revert removes exactly the files the reverted version made; older versions keep theirs", () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        const t2 = yield* t.addComputedColumn("thumb", t.c.img.thumbnail({ size: 16 }))
        const v0 = filesIn(media)
        yield* t2.insert([{ name: "red", img: fx.red }])
        const first = added(v0, filesIn(media))
        assert.strictEqual(first.length, 1)
        const v1 = filesIn(media)
        // Another red (its thumbnail is the first one's file), a green, and bytes.
        yield* t2.insert([
          { name: "red again", img: fx.red },
          { name: "green", img: fx.green },
          { name: "bytes", img: new Uint8Array(NodeFs.readFileSync(fx.blue)) }
        ])
        const second = added(v1, filesIn(media))
        assert.strictEqual(second.length, 3, "the green thumbnail, the stored bytes and their thumbnail")
        yield* t2.revert()
        assert.deepStrictEqual([...filesIn(media)].sort(), [...v1].sort(), "exactly the new files are gone")
        assert.strictEqual(yield* t2.count(), 1)
        // The version before still finds its files.
        const [old] = yield* (yield* Table.get("pictures", { version: 2 })).collect()
        assert.isTrue(NodeFs.existsSync(yield* (old!.thumb as Media.MediaRef).localPath))
        // The cached results that pointed at removed files are forgotten: inserting again remakes them.
        yield* t2.insert([{ name: "green", img: fx.green }])
        const [green] = yield* t2.where((c) => c.name.eq("green")).collect()
        assert.isTrue(NodeFs.existsSync(green!.thumb!.uri))

        // Reverting an added computed column removes its files.
        const before = filesIn(media)
        const t3 = yield* t2.addComputedColumn("gray", t2.c.img.grayscale())
        assert.strictEqual(added(before, filesIn(media)).length, 2)
        yield* t3.revert()
        assert.deepStrictEqual([...filesIn(media)].sort(), [...before].sort())
      })
    ))

  test("an aborted insert or backfill leaves no new files; files shared with another live row survive", () =>
    withStore((media) =>
      Effect.gen(function* () {
        const boom = failsOnBoom()
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        const t2 = yield* t.addComputedColumn("thumb", t.c.img.thumbnail({ size: 16 }))
        const t3 = yield* t2.addComputedColumn("checked", boom({ name: t2.c.name }))
        yield* t3.insert([{ name: "red", img: fx.red }])
        // Another table shares the green thumbnail.
        const other = yield* Table.create("other", { img: Column.Image })
        const other2 = yield* other.addComputedColumn("thumb", other.c.img.thumbnail({ size: 16 }))
        yield* other2.insert([{ img: fx.green }])
        const before = filesIn(media)

        // The thumbnails are made (red's and green's exist already), then "boom" aborts the insert.
        const error = yield* failureOf(
          t3.insert([
            { name: "red too", img: fx.red },
            { name: "green", img: fx.green },
            { name: "blue", img: fx.blue },
            { name: "bytes", img: new Uint8Array(NodeFs.readFileSync(fx.blue)) },
            { name: "boom", img: new Uint8Array(NodeFs.readFileSync(fx.red)) }
          ])
        )
        assert.strictEqual(error._tag, "ComputeError")
        assert.strictEqual(yield* t3.count(), 1)
        assert.deepStrictEqual(added(before, filesIn(media)), [], "no new file is left behind")
        for (const r of [...(yield* t3.collect()), ...(yield* other2.collect())]) {
          assert.isTrue(NodeFs.existsSync(r.thumb!.uri), "files of live rows survive")
        }

        // A backfill that aborts leaves no new files either.
        const failing = Fn.make({
          name: `mediaValues_failingGray_${process.pid}_${unique++}`,
          params: { image: Column.Image },
          returns: Column.Image,
          run: () => {
            throw new Error("no")
          }
        })
        const backfill = yield* Effect.exit(t3.addComputedColumn("gray", failing({ image: t3.c.img.grayscale() })))
        assert.isTrue(Exit.isFailure(backfill))
        assert.deepStrictEqual(added(before, filesIn(media)), [])
      })
    ))
})

describe("Media handles without a database", () => {
  it.effect("a local handle reads its file; a missing one fails naming it", () =>
    Effect.gen(function* () {
      const ref = new Media.MediaRef("Image", fx.red)
      assert.deepStrictEqual(yield* ref.bytes, new Uint8Array(NodeFs.readFileSync(fx.red)))
      const missing = yield* Effect.flip(new Media.MediaRef("Image", fx.missing).localPath)
      assert.strictEqual(missing.reason, "NotFound")
      assert.strictEqual(missing.path, fx.missing)
    })
  )
})
