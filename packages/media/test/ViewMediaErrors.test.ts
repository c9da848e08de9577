import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import sharp from "sharp"
import { MediaStore, Tiles } from "../src/index.ts"

const solid = (width: number, height: number, r: number, g: number, b: number) =>
  sharp({ create: { width, height, channels: 3, background: { r, g, b } } })

/** Two small images and two text files that are not images. */
const fixtures = Effect.gen(function* () {
  const dir = yield* Harness.tempDir()
  const fx = {
    red: NodePath.join(dir, "red-40x20.png"),
    green: NodePath.join(dir, "green-30x30.png"),
    text: NodePath.join(dir, "notes.txt"),
    fake: NodePath.join(dir, "fake.png")
  }
  yield* Effect.promise(() => solid(40, 20, 255, 0, 0).png().toFile(fx.red))
  yield* Effect.promise(() => solid(30, 30, 0, 255, 0).png().toFile(fx.green))
  NodeFs.writeFileSync(fx.text, "Not an image.\n")
  NodeFs.writeFileSync(fx.fake, "Not an image either, whatever its name says.\n")
  return fx
})

/** A row's media value as its reference (null when there is none). */
const uriOf = (value: unknown): string | null => (value === null ? null : String(value))

Harness.forEachBackend("View media errors", (test) => {
  test("a view carries a base row's recorded media error; its computed columns fail alike; inserts and updates follow", () =>
    Effect.gen(function* () {
      const fx = yield* fixtures
      const home = yield* Harness.tempDir()
      yield* Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        const result = yield* t.insert(
          [
            { name: "red", img: fx.red },
            { name: "green", img: fx.green },
            { name: "text", img: fx.text }
          ],
          { onError: "record" }
        )
        assert.strictEqual(result.errors, 1)
        const baseRows = () =>
          t
            .select((c) => ({ name: c.name, img: c.img, type: c.img.errorType, message: c.img.errorMessage }))
            .orderBy("name")
            .collect()
        const before = yield* baseRows()
        assert.deepStrictEqual(
          before.map((r) => [r.name, uriOf(r.img), r.type]),
          [
            ["green", fx.green, null],
            ["red", fx.red, null],
            ["text", null, "MediaError"]
          ]
        )
        assert.include(before[2]!.message, fx.text)

        // A plain view and a filtered, renaming one, made while the base holds the error.
        const all = yield* Table.createView("all", t)
        const some = yield* Table.createView(
          "some",
          t.where((c) => c.name.ne("green")).select((c) => ({ name: c.name, picture: c.img }))
        )
        const allRows = () =>
          all
            .select((c) => ({ name: c.name, img: c.img, type: c.img.errorType, message: c.img.errorMessage }))
            .orderBy("name")
            .collect()
        const someRows = () =>
          some
            .select((c) => ({
              name: c.name,
              img: c.picture,
              type: c.picture.errorType,
              message: c.picture.errorMessage
            }))
            .orderBy("name")
            .collect()
        const shown = (
          rows: ReadonlyArray<{ name: string | null; img: unknown; type: string | null; message: unknown }>
        ) => rows.map((r) => [r.name, uriOf(r.img), r.type, r.message])
        assert.deepStrictEqual(shown(yield* allRows()), shown(before), "the view shows the base's values and errors")
        assert.deepStrictEqual(
          shown(yield* someRows()),
          shown(before.filter((r) => r.name !== "green")),
          "a filtered view too"
        )
        assert.strictEqual(yield* all.where((c) => c.img.errorType.isNotNull()).count(), 1)

        // A computed column of the view fails alike on the recorded row, and is done for the others.
        const all2 = yield* all.addComputedColumn("w", all.c.img.width(), { onError: "record" })
        const widths = () =>
          all2
            .select((c) => ({ name: c.name, w: c.w, type: c.w.errorType, message: c.w.errorMessage }))
            .orderBy("name")
            .collect()
        const first = yield* widths()
        assert.deepStrictEqual(
          first.map((r) => [r.name, r.w, r.type]),
          [
            ["green", 30, null],
            ["red", 40, null],
            ["text", null, "MediaError"]
          ]
        )
        assert.strictEqual(first[2]!.message, before[2]!.message, "the same error as the base's")

        // A view whose computed column aborts on errors (the default), over rows inserted later with
        // "record": the insert records the error in the view's cells too, as in the base's.
        const late = yield* Table.createView(
          "late",
          t.where((c) => c.name.eq("fake"))
        )
        const late2 = yield* late.addComputedColumn("h", late.c.img.height())

        // A bad row inserted after the views exist reaches them with its error.
        yield* t.insert([{ name: "fake", img: fx.fake }], { onError: "record" })
        const after = yield* baseRows()
        assert.deepStrictEqual(
          after.map((r) => [r.name, r.type]),
          [
            ["fake", "MediaError"],
            ["green", null],
            ["red", null],
            ["text", "MediaError"]
          ]
        )
        assert.include(after[0]!.message, fx.fake)
        assert.deepStrictEqual(shown(yield* allRows()), shown(after))
        assert.deepStrictEqual(shown(yield* someRows()), shown(after.filter((r) => r.name !== "green")))
        const second = yield* widths()
        assert.deepStrictEqual(
          second.map((r) => [r.name, r.w, r.type, r.message]),
          [
            ["fake", null, "MediaError", after[0]!.message],
            ["green", 30, null, null],
            ["red", 40, null, null],
            ["text", null, "MediaError", after[3]!.message]
          ]
        )
        assert.deepStrictEqual(
          yield* late2
            .select((c) => ({ name: c.name, h: c.h, type: c.h.errorType, message: c.h.errorMessage }))
            .collect(),
          [{ name: "fake", h: null, type: "MediaError", message: after[0]!.message }]
        )

        // Fixing the base's value clears the error in the views and recomputes their columns.
        yield* t.update({ img: fx.red }, (c) => c.name.eq("text"))
        const fixed = yield* widths()
        assert.deepStrictEqual(
          fixed.map((r) => [r.name, r.w, r.type]),
          [
            ["fake", null, "MediaError"],
            ["green", 30, null],
            ["red", 40, null],
            ["text", 40, null]
          ]
        )
        const fixedRows = shown(yield* allRows())
        assert.deepStrictEqual(fixedRows, shown(yield* baseRows()))
        assert.deepStrictEqual(fixedRows[3], ["text", fx.red, null, null])
        assert.deepStrictEqual(shown(yield* someRows())[2], ["text", fx.red, null, null])
        yield* t.update({ img: fx.green }, (c) => c.name.eq("fake"))
        assert.deepStrictEqual(yield* late2.select((c) => ({ name: c.name, h: c.h, type: c.h.errorType })).collect(), [
          { name: "fake", h: 30, type: null }
        ])
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))

  test("an iterator view: a bad image gives no tiles; a carried column's error reaches every tile", () =>
    Effect.gen(function* () {
      const fx = yield* fixtures
      const home = yield* Harness.tempDir()
      yield* Effect.gen(function* () {
        const t = yield* Table.create("pairs", { name: Column.String, img: Column.Image, mask: Column.Image })
        yield* t.insert(
          [
            { name: "good", img: fx.red, mask: fx.green },
            { name: "badMask", img: fx.green, mask: fx.text },
            { name: "badImage", img: fx.text, mask: fx.red }
          ],
          { onError: "record" }
        )
        const tiles = yield* Table.createView(
          "tiles",
          t.select((c) => ({ name: c.name, mask: c.mask })),
          { iterator: Tiles.tileIterator(t.c.img, { tileSize: 16 }) }
        )
        const tiles2 = yield* tiles.addComputedColumn("mw", tiles.c.mask.width(), { onError: "record" })
        const rows = () =>
          tiles2
            .select((c) => ({
              name: c.name,
              pos: c.pos,
              mask: c.mask,
              type: c.mask.errorType,
              mw: c.mw,
              mwType: c.mw.errorType
            }))
            .orderBy("name")
            .orderBy("pos")
            .collect()
        const summary = (
          list: ReadonlyArray<{
            name: string | null
            mask: unknown
            type: string | null
            mw: number | null
            mwType: string | null
          }>
        ) => {
          const out: Record<string, Array<unknown>> = {}
          for (const r of list) (out[r.name!] ??= []).push([uriOf(r.mask), r.type, r.mw, r.mwType])
          return out
        }
        // red 40x20 in 16-pixel tiles: 3 x 2; green 30x30: 2 x 2; the text file: none.
        const initial = summary(yield* rows())
        assert.deepStrictEqual(Object.keys(initial).sort(), ["badMask", "good"])
        assert.deepStrictEqual(initial.good, Array(6).fill([fx.green, null, 30, null]))
        assert.deepStrictEqual(initial.badMask, Array(4).fill([null, "MediaError", null, "MediaError"]))

        // Inserted later, alike; fixed later, cleared.
        yield* t.insert([{ name: "lateMask", img: fx.green, mask: fx.fake }], { onError: "record" })
        assert.deepStrictEqual(summary(yield* rows()).lateMask, Array(4).fill([null, "MediaError", null, "MediaError"]))
        yield* t.update({ mask: fx.red }, (c) => c.name.eq("badMask"))
        yield* t.update({ img: fx.red }, (c) => c.name.eq("badImage"))
        const fixed = summary(yield* rows())
        assert.deepStrictEqual(fixed.badMask, Array(4).fill([fx.red, null, 40, null]))
        assert.deepStrictEqual(fixed.badImage, Array(6).fill([fx.red, null, 40, null]))
        assert.deepStrictEqual(fixed.lateMask, Array(4).fill([null, "MediaError", null, "MediaError"]))
      }).pipe(Effect.provide(MediaStore.layer(home)))
    }))
})
