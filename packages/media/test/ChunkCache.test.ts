import { assert } from "@effect/vitest"
import { Column, Fn, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Document } from "../src/index.ts"

let unique = 0

/** A document of four headed sections, each sentence naming the document and the section. */
const markdown = (doc: number, edited?: number) =>
  [0, 1, 2, 3]
    .map((s) => `## Part ${s}\n\nDocument ${doc} says thing ${s}${s === edited ? ", now revised" : ""}.\n`)
    .join("\n")

Harness.forEachBackend("Result cache over chunked documents", (test) => {
  test("editing 5 of 50 chunked documents embeds only the chunks whose text changed", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const embedded: Array<string> = []
      const embed = Fn.batched({
        name: `chunk_embed_${process.pid}_${unique++}`,
        params: { text: Column.String },
        returns: Column.Vector(3),
        batchSize: 16,
        run: (rows) =>
          Effect.sync(() =>
            rows.map((r) => {
              embedded.push(r.text)
              return Float32Array.of(r.text.length, r.text.includes("revised") ? 1 : 0, 1)
            })
          )
      })
      const file = (doc: number, version: string) => {
        const path = NodePath.join(dir, `doc-${doc}-${version}.md`)
        NodeFs.writeFileSync(path, markdown(doc, version === "v1" ? undefined : 2))
        return path
      }
      const docs = yield* Table.create("docs", { n: Column.Int, doc: Column.Document })
      yield* docs.insert(Array.from({ length: 50 }, (_, n) => ({ n, doc: file(n, "v1") })))
      const chunks = yield* Table.createView(
        "chunks",
        docs.select((c) => ({ n: c.n })),
        { iterator: Document.chunkIterator(docs.c.doc, { separators: ["heading"] }) }
      )
      const indexed = yield* chunks.addEmbeddingIndex("text", { embed, metric: "l2" })
      assert.strictEqual(yield* indexed.count(), 200)
      assert.strictEqual(embedded.length, 200, "every chunk embedded once")

      // Five documents get a new version in which one of their four sections changed.
      embedded.length = 0
      for (const n of [3, 11, 20, 33, 47]) yield* docs.update({ doc: file(n, "v2") }, (c) => c.n.eq(n))
      assert.strictEqual(yield* indexed.count(), 200)
      assert.sameMembers(
        embedded,
        (yield* indexed
          .where((c) => c.text.contains("revised"))
          .select((c) => ({ text: c.text }))
          .collect()).map((r) => r.text!),
        "only the changed chunks were embedded"
      )
      assert.strictEqual(embedded.length, 5)
      for (const text of embedded) assert.include(text, "thing 2, now revised")
      // The index serves the new text: the revised chunks have vectors that say so.
      const revised = yield* indexed
        .select((c) => ({ n: c.n, v: c.text.embedding() }))
        .where((c) => c.text.contains("revised"))
        .collect()
      assert.sameMembers(
        revised.map((r) => r.n),
        [3, 11, 20, 33, 47]
      )
      for (const r of revised) assert.strictEqual(r.v![1], 1)
    }))
})
