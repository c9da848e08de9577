import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import * as Document from "../src/Document.ts"
import * as Splitter from "../src/Splitter.ts"

const normalize = (text: string) => text.replace(/\s+/g, " ").trim()

/**
 * The invariant: chunks without their overlap, in order, are the full text,
 * up to whitespace. Where a limit had to cut inside a run without whitespace
 * (`tight`), only the non-space characters can be compared.
 */
const assertCovers = (doc: Document.Document, chunks: ReadonlyArray<Splitter.Chunk>, tight = false) => {
  const rest = chunks.map((c) => c.text.slice(c.overlap))
  const full = Document.fullText(doc)
  if (tight) assert.strictEqual(rest.join("").replace(/\s+/g, ""), full.replace(/\s+/g, ""))
  else assert.strictEqual(normalize(rest.join(" ")), normalize(full))
  chunks.forEach((c, i) => {
    assert.strictEqual(c.position, i)
    assert.strictEqual(c.text, c.text.trim(), "chunks are trimmed")
    assert.notStrictEqual(c.text, "")
  })
}

/** Each overlap is a suffix of the previous chunk; returns the overlapping texts. */
const overlaps = (chunks: ReadonlyArray<Splitter.Chunk>): Array<string> =>
  chunks.flatMap((c, i) => {
    if (c.overlap === 0) return []
    const repeated = c.text.slice(0, c.overlap).trim()
    assert.isTrue(i > 0, "the first chunk has no overlap")
    assert.isTrue(chunks[i - 1]!.text.endsWith(repeated), `${JSON.stringify(repeated)} ends the previous chunk`)
    return [repeated]
  })

const prose = (section: string, n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      `Sentence ${i + 1} of ${section} says that engines, tables and chunks (all ${i * 7} of them) matter; really! Does it hold?`
  ).join(" ")

const markdown = `# Handbook

${prose("the preface", 3)}

## Storage

${prose("storage", 6)}

${prose("storage again", 2)}

### Pages

${prose("pages", 4)}

## Compute

${prose("compute", 8)}
`

const handbook = Document.parse(new TextEncoder().encode(markdown), { name: "handbook.md" })

/** A paged document as a PDF extraction makes one (built by hand: the splitter is pure). */
const paged: Document.Document = {
  source: "paged.pdf",
  format: "pdf",
  title: "Paged",
  pages: [
    { page: 1, text: "Alpha\nFirst page text. More of it." },
    { page: 2, text: "Second page continues. Still Alpha." },
    { page: 3, text: "Beta\nThird page." }
  ],
  blocks: [
    { kind: "heading", level: 1, text: "Alpha", page: 1, headingPath: ["Alpha"] },
    { kind: "paragraph", text: "First page text. More of it.", page: 1, headingPath: ["Alpha"] },
    { kind: "paragraph", text: "Second page continues. Still Alpha.", page: 2, headingPath: ["Alpha"] },
    { kind: "heading", level: 1, text: "Beta", page: 3, headingPath: ["Beta"] },
    { kind: "paragraph", text: "Third page.", page: 3, headingPath: ["Beta"] }
  ]
}

describe("Splitter.sentences", () => {
  it("splits after terminal punctuation, keeps abbreviations, initials and lowercase continuations", () => {
    assert.deepStrictEqual(
      Splitter.sentences(
        'Dr. Smith met J. R. Doe at 10 a.m. on Monday. "Is it done?" she asked. It was, e.g. the report... and more! Next one'
      ),
      [
        "Dr. Smith met J. R. Doe at 10 a.m. on Monday.",
        '"Is it done?" she asked.',
        "It was, e.g. the report... and more!",
        "Next one"
      ]
    )
    assert.deepStrictEqual(Splitter.sentences("Heading line\n\nA paragraph. Another (one.) Last"), [
      "Heading line",
      "A paragraph.",
      "Another (one.)",
      "Last"
    ])
    assert.deepStrictEqual(Splitter.sentences("  "), [])
  })

  it("tokens: words and single punctuation characters", () => {
    assert.deepStrictEqual(Splitter.tokens("Hello, world! It's 2024_v2."), [
      "Hello",
      ",",
      "world",
      "!",
      "It",
      "'",
      "s",
      "2024_v2",
      "."
    ])
  })
})

describe("Splitter.split", () => {
  it.effect("no separators: the whole document is one chunk", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      const chunks = Splitter.split(doc, { separators: [] })
      assert.strictEqual(chunks.length, 1)
      assert.strictEqual(chunks[0]!.text, Document.fullText(doc))
      assert.strictEqual(chunks[0]!.title, "Handbook")
      assert.deepStrictEqual(chunks[0]!.headingPath, ["Handbook"])
      assertCovers(doc, chunks)
    })
  )

  it.effect("heading: one chunk per section, starting with its heading, with its heading path", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      const chunks = Splitter.split(doc, { separators: ["heading"] })
      assert.deepStrictEqual(
        chunks.map((c) => [c.headingPath.join(" > "), c.text.split("\n")[0], c.overlap]),
        [
          ["Handbook", "Handbook", 0],
          ["Handbook > Storage", "Storage", 0],
          ["Handbook > Storage > Pages", "Pages", 0],
          ["Handbook > Compute", "Compute", 0]
        ]
      )
      assert.include(chunks[1]!.text, "storage again")
      assert.isTrue(chunks.every((c) => c.title === "Handbook" && c.page === undefined))
      assertCovers(doc, chunks)
    })
  )

  it.effect("paragraph and sentence: one chunk per block / per sentence, heading paths kept", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      const paragraphs = Splitter.split(doc, { separators: ["paragraph"] })
      assert.deepStrictEqual(
        paragraphs.map((c) => c.text),
        doc.blocks.map((b) => b.text)
      )
      assert.deepStrictEqual(
        paragraphs.map((c) => c.headingPath),
        doc.blocks.map((b) => b.headingPath)
      )
      assertCovers(doc, paragraphs)

      const sentences = Splitter.split(doc, { separators: ["heading", "sentence"] })
      // Each prose paragraph of n items has 2n sentences ("...; really!" and "Does it hold?").
      assert.strictEqual(sentences.length, 4 + 2 * (3 + 6 + 2 + 4 + 8))
      assert.deepStrictEqual(
        sentences.slice(0, 3).map((c) => [c.text, c.headingPath]),
        [
          ["Handbook", ["Handbook"]],
          [
            "Sentence 1 of the preface says that engines, tables and chunks (all 0 of them) matter; really!",
            ["Handbook"]
          ],
          ["Does it hold?", ["Handbook"]]
        ]
      )
      assert.isTrue(sentences.filter((c) => c.text.includes("of pages")).every((c) => c.headingPath.length === 3))
      assertCovers(doc, sentences)
    })
  )

  it("page: chunks never cross pages and carry their page; with heading, both cut", () => {
    const pages = Splitter.split(paged, { separators: ["page"] })
    assert.deepStrictEqual(
      pages.map((c) => [c.page, c.text, c.headingPath]),
      [
        [1, "Alpha\n\nFirst page text. More of it.", ["Alpha"]],
        [2, "Second page continues. Still Alpha.", ["Alpha"]],
        [3, "Beta\n\nThird page.", ["Beta"]]
      ]
    )
    assertCovers(paged, pages)
    const headings = Splitter.split(paged, { separators: ["heading"] })
    assert.deepStrictEqual(
      headings.map((c) => [c.page, c.headingPath]),
      [
        [1, ["Alpha"]],
        [3, ["Beta"]]
      ]
    )
    const both = Splitter.split(paged, { separators: ["heading", "page", "sentence"] })
    assert.deepStrictEqual(
      both.map((c) => [c.page, c.text]),
      [
        [1, "Alpha"],
        [1, "First page text."],
        [1, "More of it."],
        [2, "Second page continues."],
        [2, "Still Alpha."],
        [3, "Beta"],
        [3, "Third page."]
      ]
    )
    assert.isTrue(both.every((c) => c.title === "Paged"))
  })

  it.effect("charLimit: chunks at most n characters, cut at whitespace, overlap at most m characters", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      for (const [limit, overlap] of [
        [80, 0],
        [80, 20],
        [200, 60],
        [35, 34]
      ] as const) {
        const chunks = Splitter.split(doc, { separators: ["charLimit"], limit, overlap })
        assert.isAbove(chunks.length, Document.fullText(doc).length / limit)
        for (const c of chunks) assert.isAtMost(c.text.length, limit)
        const repeated = overlaps(chunks)
        for (const r of repeated) assert.isAtMost(r.length, overlap)
        if (overlap > 0) assert.isAbove(repeated.length, chunks.length / 2)
        else assert.strictEqual(repeated.length, 0)
        assertCovers(doc, chunks)
      }
    })
  )

  it.effect("tokenLimit: chunks at most n tokens, overlap at most m tokens; with heading, never across sections", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      for (const [limit, overlap] of [
        [10, 0],
        [25, 5],
        [40, 39],
        [1, 0]
      ] as const) {
        const chunks = Splitter.split(doc, { separators: ["tokenLimit"], limit, overlap })
        for (const c of chunks) assert.isAtMost(Splitter.tokens(c.text).length, limit)
        const repeated = overlaps(chunks)
        for (const r of repeated) {
          assert.isAtMost(Splitter.tokens(r).length, overlap)
          assert.isAbove(Splitter.tokens(r).length, 0)
        }
        if (overlap > 0) assert.isAbove(repeated.length, chunks.length / 2)
        // One token per chunk must cut "them)" and "matter;" apart.
        assertCovers(doc, chunks, limit === 1)
      }

      const sections = Splitter.split(doc, { separators: ["heading", "tokenLimit"], limit: 30, overlap: 6 })
      for (const c of sections) assert.isAtMost(Splitter.tokens(c.text).length, 30)
      overlaps(sections)
      // The first window of every section starts at its heading, with no overlap.
      const starts = sections.filter((c, i) => i === 0 || c.headingPath.join() !== sections[i - 1]!.headingPath.join())
      assert.deepStrictEqual(
        starts.map((c) => [c.text.split("\n")[0], c.overlap]),
        [
          ["Handbook", 0],
          ["Storage", 0],
          ["Pages", 0],
          ["Compute", 0]
        ]
      )
      assert.deepStrictEqual(
        [...new Set(sections.map((c) => c.headingPath.join(" > ")))],
        ["Handbook", "Handbook > Storage", "Handbook > Storage > Pages", "Handbook > Compute"]
      )
      assertCovers(doc, sections)

      // Words keep their punctuation when a whitespace boundary is in reach.
      const words = Splitter.split(doc, { separators: ["tokenLimit"], limit: 12 })
      assert.isTrue(words.every((c) => !/^[,;!?.)]/.test(c.text)))
    })
  )

  it.effect("sentence + tokenLimit: long sentences are windowed, short ones stay whole", () =>
    Effect.gen(function* () {
      const doc = yield* handbook
      const chunks = Splitter.split(doc, { separators: ["sentence", "tokenLimit"], limit: 8, overlap: 2 })
      assert.isTrue(chunks.some((c) => c.text === "Does it hold?" && c.overlap === 0))
      for (const c of chunks) assert.isAtMost(Splitter.tokens(c.text).length, 8)
      overlaps(chunks)
      assertCovers(doc, chunks)
    })
  )

  it("invariants hold on generated documents for every separator combination", () => {
    let seed = 42
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    }
    const vocabulary = [
      "data",
      "engine,",
      "table",
      "(chunk)",
      "splits;",
      "Dr.",
      "x",
      "overlapping",
      "é",
      "42.",
      "ok!",
      "why?"
    ]
    const sentence = () => Array.from({ length: 1 + random(15) }, () => vocabulary[random(vocabulary.length)]).join(" ")
    for (let round = 0; round < 200; round++) {
      const blocks: Array<Document.Block> = []
      const path: Array<string> = []
      for (let b = 0; b < 1 + random(12); b++) {
        const page = 1 + Math.floor(b / 3)
        if (random(4) === 0) {
          const level = 1 + random(3)
          path.length = Math.min(path.length, level - 1)
          path.push(`H${b}`)
          blocks.push({ kind: "heading", level, text: `H${b}`, page, headingPath: [...path] })
        } else {
          const text = Array.from({ length: 1 + random(4) }, sentence).join(" ")
          blocks.push({ kind: "paragraph", text, page, headingPath: [...path] })
        }
      }
      const doc: Document.Document = { source: "gen", format: "pdf", blocks }
      const structural = (["heading", "paragraph", "sentence", "page"] as const).filter(() => random(2) === 0)
      const limitKind = (["charLimit", "tokenLimit", undefined] as const)[random(3)]
      const limit = limitKind === "charLimit" ? 12 + random(60) : 1 + random(20)
      const overlap = random(limit)
      const chunks = Splitter.split(doc, {
        separators: limitKind === undefined ? structural : [...structural, limitKind],
        limit,
        overlap
      })
      const label = JSON.stringify({ round, structural, limitKind, limit, overlap })
      for (const c of chunks) {
        if (limitKind === "charLimit") assert.isAtMost(c.text.length, limit, label)
        if (limitKind === "tokenLimit") assert.isAtMost(Splitter.tokens(c.text).length, limit, label)
        if (structural.includes("page"))
          assert.isTrue(
            blocks.some((b) => b.page === c.page && b.text.includes(c.text.split(/\s/)[0]!)),
            label
          )
      }
      for (const r of overlaps(chunks)) {
        if (limitKind === "charLimit") assert.isAtMost(r.length, overlap, label)
        if (limitKind === "tokenLimit") assert.isAtMost(Splitter.tokens(r).length, overlap, label)
      }
      assertCovers(doc, chunks, limitKind === "tokenLimit" && limit < 4)
    }
  })

  it("validate: one limit, a limit when limited, 0 <= overlap < limit, known separators", () => {
    const reason = (input: unknown) => {
      const r = Splitter.validate(input)
      return Result.isFailure(r) ? r.failure.message : "ok"
    }
    assert.strictEqual(reason({ separators: ["heading", "tokenLimit"], limit: 10, overlap: 2 }), "ok")
    assert.strictEqual(reason({ separators: ["sentence"] }), "ok")
    assert.match(reason({ separators: ["charLimit", "tokenLimit"], limit: 10 }), /not both/)
    assert.match(reason({ separators: ["charLimit"] }), /limit/)
    assert.match(reason({ separators: ["charLimit"], limit: 5, overlap: 5 }), /overlap/)
    assert.match(reason({ separators: ["chapter"] }), /invalid splitter options/)
    assert.match(reason({ separators: ["charLimit"], limit: 2.5 }), /invalid splitter options/)
  })
})
