import { assert, describe, it } from "@effect/vitest"
import { Column, Pool, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import { PDFDocument, StandardFonts } from "pdf-lib"
import { afterAll, beforeAll } from "vitest"
import * as Document from "../src/Document.ts"

const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-document-test-"))
const fx = {
  pdf: NodePath.join(dir, "report.pdf"),
  pdfNoExtension: NodePath.join(dir, "report-bytes"),
  html: NodePath.join(dir, "guide.html"),
  markdown: NodePath.join(dir, "notes.md"),
  text: NodePath.join(dir, "plain.txt"),
  corrupt: NodePath.join(dir, "corrupt.pdf"),
  binary: NodePath.join(dir, "archive.docx"),
  missing: NodePath.join(dir, "missing.pdf")
}

/** Per page: a heading set large, then two body paragraphs. */
const pdfPages = [
  { heading: "Introduction", body: ["Tessera reads documents.", "It extracts text per page."] },
  { heading: "Methods", body: ["We split text into chunks.", "Each chunk keeps its page."] },
  { heading: "Results", body: ["Chunks are never too long.", "The end of the report."] }
]

const html = `<!doctype html>
<html><head><title>The Guide</title><style>p { color: red }</style><script>var x = "hidden"</script></head>
<body>
  <h1>Guide</h1>
  <p>Welcome to the <b>guide</b>.</p>
  <h2>Install</h2>
  <p>Run the installer.</p>
  <h3>On Linux</h3>
  <p>Use the package manager.</p>
  <ul><li>apt</li><li>dnf</li></ul>
  <h3>On Mac</h3>
  <p>Use brew.</p>
  <h2>Usage</h2>
  <div>Call the API.<br>Read the docs.</div>
</body></html>`

const markdown = `# Notes

Intro paragraph with *emphasis*
over two lines.

## Part A

Text of part A.

### Detail A1

Detail text.

- item one
- item two

## Part B

Text of part B.

\`\`\`
code block
\`\`\`
`

beforeAll(async () => {
  const doc = await PDFDocument.create()
  doc.setTitle("Quarterly Report")
  const font = await doc.embedFont(StandardFonts.Helvetica)
  for (const page of pdfPages) {
    const p = doc.addPage([600, 800])
    p.drawText(page.heading, { x: 50, y: 740, size: 24, font })
    // Two paragraphs: a large vertical gap separates them.
    p.drawText(page.body[0]!, { x: 50, y: 690, size: 12, font })
    p.drawText(page.body[1]!, { x: 50, y: 640, size: 12, font })
  }
  const bytes = await doc.save()
  NodeFs.writeFileSync(fx.pdf, bytes)
  NodeFs.writeFileSync(fx.pdfNoExtension, bytes)
  NodeFs.writeFileSync(fx.corrupt, Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(300, 0x41)]))
  NodeFs.writeFileSync(fx.binary, Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0xff, 0xfe, 0x01, 0x02]))
  NodeFs.writeFileSync(fx.html, html)
  NodeFs.writeFileSync(fx.markdown, markdown)
  NodeFs.writeFileSync(fx.text, "First paragraph,\nstill first.\n\nSecond paragraph.\n")
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

const summary = (doc: Document.Document) =>
  doc.blocks.map((b) => [b.kind, b.level ?? null, b.text, b.headingPath.join(" > "), b.page ?? null])

describe("Document.read", () => {
  it.effect("PDF: page numbers and texts, headings by font size, title from the metadata", () =>
    Effect.gen(function* () {
      const doc = yield* Document.read(fx.pdf)
      assert.strictEqual(doc.format, "pdf")
      assert.strictEqual(doc.title, "Quarterly Report")
      assert.deepStrictEqual(
        doc.pages,
        pdfPages.map((p, i) => ({ page: i + 1, text: [p.heading, ...p.body].join("\n") }))
      )
      assert.deepStrictEqual(
        summary(doc),
        pdfPages.flatMap((p, i) => [
          ["heading", 1, p.heading, p.heading, i + 1],
          ["paragraph", null, p.body[0], p.heading, i + 1],
          ["paragraph", null, p.body[1], p.heading, i + 1]
        ])
      )
      // Detected by content without an extension, and through a file:// URL.
      const sniffed = yield* Document.read(NodeUrl.pathToFileURL(fx.pdfNoExtension))
      assert.strictEqual(sniffed.format, "pdf")
      assert.deepStrictEqual(sniffed.pages, doc.pages)
    })
  )

  it.effect("HTML: heading paths h1 > h2 > h3, <title>, no script or style text", () =>
    Effect.gen(function* () {
      const doc = yield* Document.read(fx.html)
      assert.strictEqual(doc.format, "html")
      assert.strictEqual(doc.title, "The Guide")
      assert.isUndefined(doc.pages)
      assert.deepStrictEqual(summary(doc), [
        ["heading", 1, "Guide", "Guide", null],
        ["paragraph", null, "Welcome to the guide.", "Guide", null],
        ["heading", 2, "Install", "Guide > Install", null],
        ["paragraph", null, "Run the installer.", "Guide > Install", null],
        ["heading", 3, "On Linux", "Guide > Install > On Linux", null],
        ["paragraph", null, "Use the package manager.", "Guide > Install > On Linux", null],
        ["listItem", null, "apt", "Guide > Install > On Linux", null],
        ["listItem", null, "dnf", "Guide > Install > On Linux", null],
        ["heading", 3, "On Mac", "Guide > Install > On Mac", null],
        ["paragraph", null, "Use brew.", "Guide > Install > On Mac", null],
        ["heading", 2, "Usage", "Guide > Usage", null],
        ["paragraph", null, "Call the API. Read the docs.", "Guide > Usage", null]
      ])
      assert.notInclude(Document.fullText(doc), "hidden")
      assert.notInclude(Document.fullText(doc), "color")
    })
  )

  it.effect("Markdown: heading paths, paragraphs, list items, code; title is the first h1", () =>
    Effect.gen(function* () {
      const doc = yield* Document.read(fx.markdown)
      assert.strictEqual(doc.format, "markdown")
      assert.strictEqual(doc.title, "Notes")
      assert.deepStrictEqual(summary(doc), [
        ["heading", 1, "Notes", "Notes", null],
        ["paragraph", null, "Intro paragraph with emphasis over two lines.", "Notes", null],
        ["heading", 2, "Part A", "Notes > Part A", null],
        ["paragraph", null, "Text of part A.", "Notes > Part A", null],
        ["heading", 3, "Detail A1", "Notes > Part A > Detail A1", null],
        ["paragraph", null, "Detail text.", "Notes > Part A > Detail A1", null],
        ["listItem", null, "item one", "Notes > Part A > Detail A1", null],
        ["listItem", null, "item two", "Notes > Part A > Detail A1", null],
        ["heading", 2, "Part B", "Notes > Part B", null],
        ["paragraph", null, "Text of part B.", "Notes > Part B", null],
        ["code", null, "code block", "Notes > Part B", null]
      ])
    })
  )

  it.effect("plain text: paragraphs at blank lines, no title", () =>
    Effect.gen(function* () {
      const doc = yield* Document.read(fx.text)
      assert.strictEqual(doc.format, "text")
      assert.isUndefined(doc.title)
      assert.deepStrictEqual(summary(doc), [
        ["paragraph", null, "First paragraph, still first.", "", null],
        ["paragraph", null, "Second paragraph.", "", null]
      ])
      assert.strictEqual(Document.fullText(doc), "First paragraph, still first.\n\nSecond paragraph.")
    })
  )

  it.effect("format detection: %PDF, extension, HTML and Markdown sniffing, binary", () =>
    Effect.sync(() => {
      const bytes = (s: string) => new TextEncoder().encode(s)
      assert.strictEqual(Document.detectFormat("x.txt", bytes("%PDF-1.4 ...")), "pdf")
      assert.strictEqual(Document.detectFormat("x.htm", bytes("hello")), "html")
      assert.strictEqual(Document.detectFormat("https://a.b/c.md?x=1", bytes("hello")), "markdown")
      assert.strictEqual(Document.detectFormat("page", bytes("<!DOCTYPE html><p>x</p>")), "html")
      assert.strictEqual(Document.detectFormat("readme", bytes("intro\n\n## Usage\n")), "markdown")
      assert.strictEqual(Document.detectFormat("data.csv", bytes("a,b\n1,2\n")), "text")
      assert.isUndefined(Document.detectFormat("x.bin", new Uint8Array([1, 0, 2])))
    })
  )

  it.effect("errors are typed and name the file: missing, unsupported, corrupt PDF", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(Document.read(fx.missing))
      assert.strictEqual(missing._tag, "DocumentError")
      assert.strictEqual(missing.reason, "NotFound")
      assert.strictEqual(missing.path, fx.missing)
      assert.include(missing.message, fx.missing)

      const unsupported = yield* Effect.flip(Document.read(fx.binary))
      assert.strictEqual(unsupported.reason, "UnsupportedFormat")
      assert.include(unsupported.message, fx.binary)

      const corrupt = yield* Effect.flip(Document.read(fx.corrupt))
      assert.strictEqual(corrupt.reason, "Unreadable")
      assert.include(corrupt.message, fx.corrupt)

      const directory = yield* Effect.flip(Document.read(dir))
      assert.strictEqual(directory.reason, "Unreadable")
      assert.isFalse(directory.isRetryable)
    })
  )
})

describe("Document functions", () => {
  it.effect("text and chunks build Call expressions; chunks checks its options when built", () =>
    Effect.gen(function* () {
      const text = Document.text("a.pdf")
      assert.strictEqual(text.node._tag, "Call")
      const chunks = Document.chunks("a.pdf", { separators: ["heading", "tokenLimit"], limit: 50, overlap: 5 })
      assert.deepStrictEqual(chunks.node._tag === "Call" ? chunks.node.args[1] : undefined, {
        _tag: "Literal",
        value: { separators: ["heading", "tokenLimit"], limit: 50, overlap: 5 },
        type: { kind: "Json" }
      })
      assert.throws(() => Document.chunks("a.pdf", { separators: ["tokenLimit"] }), /limit/)
      assert.throws(() => Document.chunks("a.pdf", { separators: ["charLimit"], limit: 10, overlap: 10 }), /overlap/)
      // Invoked as the engine does: a row of arguments.
      const result = yield* Document.chunksFunction.definition
        .invoke([[fx.markdown, { separators: ["heading"] }]])
        .pipe(Effect.provideService(Pool.CurrentPool, new Pool.Pool("document-test")))
      const first = (result[0] as ReadonlyArray<{ text: string; headingPath: ReadonlyArray<string> }>)[2]!
      assert.deepStrictEqual(first.headingPath, ["Notes", "Part A", "Detail A1"])
      assert.match(first.text, /^Detail A1\n\nDetail text\./)
    })
  )
})

Harness.forEachBackend("Document columns", (test) => {
  test("Document.text and Document.chunks as computed columns over two documents; a missing file is a cell error", () =>
    Effect.gen(function* () {
      const t = yield* Table.create("docs", { name: Column.String, doc: Column.Document })
      yield* t.insert([
        { name: "md", doc: fx.markdown },
        { name: "pdf", doc: fx.pdf }
      ])
      const withText = yield* t.addComputedColumn("body", Document.text(t.c.doc), { onError: "record" })
      const withChunks = yield* withText.addComputedColumn(
        "pieces",
        Document.chunks(withText.c.doc, { separators: ["page", "sentence"] }),
        { onError: "record" }
      )
      const rows = yield* withChunks
        .select((c) => ({ name: c.name, body: c.body, pieces: c.pieces }))
        .orderBy("name")
        .collect()
      assert.deepStrictEqual(
        rows.map((r) => r.name),
        ["md", "pdf"]
      )
      const md = Document.fullText(yield* Document.read(fx.markdown))
      assert.strictEqual(rows[0]!.body, md)
      assert.strictEqual(rows[1]!.body, pdfPages.flatMap((p) => [p.heading, ...p.body]).join("\n\n"))
      const pdfChunks = rows[1]!.pieces ?? []
      assert.deepStrictEqual(
        pdfChunks.map((c) => [c.page, c.text]),
        pdfPages.flatMap((p, i) => [p.heading, ...p.body].map((text) => [i + 1, text]))
      )
      assert.strictEqual(pdfChunks[0]!.title, "Quarterly Report")

      const inserted = yield* withChunks.insert([{ name: "ghost", doc: fx.missing }])
      assert.strictEqual(inserted.errors, 2)
      const ghost = yield* withChunks
        .where((c) => c.name.eq("ghost"))
        .select((c) => ({ body: c.body, type: c.body.errorType, message: c.body.errorMessage }))
        .collect()
      assert.deepStrictEqual(
        ghost.map((r) => [r.body, r.type]),
        [[null, "DocumentError"]]
      )
      assert.include(ghost[0]!.message ?? "", fx.missing)
    }))
})
