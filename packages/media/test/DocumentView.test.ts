import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Document } from "../src/index.ts"

Harness.forEachBackend("Document chunks view", (test) => {
  test("an iterator view has one row per chunk, with heading metadata, and follows its base", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const guide = NodePath.join(dir, "guide.md")
      NodeFs.writeFileSync(
        guide,
        "# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\n## Use\n\nOpen it. Then use it.\n"
      )
      const notes = NodePath.join(dir, "notes.md")
      NodeFs.writeFileSync(notes, "# Notes\n\nOne line.\n")
      const docs = yield* Table.create("docs", { name: Column.String, doc: Column.Document })
      yield* docs.insert([{ name: "guide", doc: guide }])
      const chunks = yield* Table.createView(
        "chunks",
        docs.select((c) => ({ name: c.name })),
        {
          iterator: Document.chunkIterator(docs.c.doc, { separators: ["heading"] })
        }
      )
      const rows = yield* chunks.orderBy("pos").collect()
      assert.deepStrictEqual(
        rows.map((r) => [r.pos, r.headingPath, (r.text ?? "").replace(/\s+/g, " ").trim()]),
        [
          [0, ["Guide"], "Guide Intro text."],
          [1, ["Guide", "Install"], "Install Run the installer."],
          [2, ["Guide", "Use"], "Use Open it. Then use it."]
        ]
      )
      yield* docs.insert([{ name: "notes", doc: notes }])
      assert.strictEqual(yield* chunks.count(), 4)
      yield* docs.delete((c) => c.name.eq("guide"))
      assert.deepStrictEqual(
        (yield* chunks.collect()).map((r) => r.name),
        ["notes"]
      )
    }))
})
