/**
 * Pure parsers behind `Document`: HTML (cheerio), Markdown (mdast) and plain
 * text to blocks, and the layout of PDF text items (unpdf) into lines,
 * headings and paragraphs. No I/O here: `Document` reads bytes and maps errors.
 */
import * as Cheerio from "cheerio"
import { fromMarkdown } from "mdast-util-from-markdown"

export type BlockKind = "heading" | "paragraph" | "listItem" | "code" | "quote" | "table"

export interface Block {
  readonly kind: BlockKind
  readonly level?: number | undefined
  readonly text: string
  readonly page?: number | undefined
  readonly headingPath: ReadonlyArray<string>
}

export interface Page {
  readonly page: number
  readonly text: string
}

export interface Parsed {
  readonly title?: string | undefined
  readonly pages?: ReadonlyArray<Page> | undefined
  readonly blocks: ReadonlyArray<Block>
}

/** Collapses runs of whitespace to one space and trims. */
export const normalizeSpace = (text: string): string => text.replace(/\s+/g, " ").trim()

/** Tracks the open headings: a heading closes every heading at its level or deeper. */
class Outline {
  private readonly stack: Array<{ readonly level: number; readonly text: string }> = []
  heading(level: number, text: string): ReadonlyArray<string> {
    while (this.stack.length > 0 && this.stack[this.stack.length - 1]!.level >= level) this.stack.pop()
    this.stack.push({ level, text })
    return this.path()
  }
  path(): ReadonlyArray<string> {
    return this.stack.map((h) => h.text)
  }
}

/** Accumulates blocks, attaching each its heading path (and page). */
class BlockList {
  readonly blocks: Array<Block> = []
  private readonly outline = new Outline()
  heading(level: number, text: string, page?: number): void {
    const clean = normalizeSpace(text)
    if (clean === "") return
    const headingPath = this.outline.heading(level, clean)
    this.blocks.push(withPage({ kind: "heading", level, text: clean, headingPath }, page))
  }
  block(kind: Exclude<BlockKind, "heading">, text: string, page?: number): void {
    const clean = kind === "code" ? text.replace(/\s+$/, "").replace(/^\s*\n/, "") : normalizeSpace(text)
    if (clean.trim() === "") return
    this.blocks.push(withPage({ kind, text: clean, headingPath: this.outline.path() }, page))
  }
}

const withPage = (block: Block, page: number | undefined): Block => (page === undefined ? block : { ...block, page })

// ---------------------------------------------------------------------------
// Plain text

/** Plain text: paragraphs separated by blank lines; no headings. */
export const parseText = (text: string): Parsed => {
  const list = new BlockList()
  for (const paragraph of text.split(/\n[ \t\r\f\v]*\n/)) list.block("paragraph", paragraph)
  return { blocks: list.blocks }
}

// ---------------------------------------------------------------------------
// HTML

/** The part of a domhandler node this walker reads (cheerio does not re-export the type). */
interface DomNode {
  readonly type: string
  readonly name?: string
  readonly data?: string
  readonly children?: ReadonlyArray<DomNode>
}

const SKIPPED = new Set([
  "script",
  "style",
  "noscript",
  "template",
  "head",
  "svg",
  "math",
  "iframe",
  "object",
  "canvas",
  "select",
  "textarea",
  "input",
  "button"
])

const HEADING_TAG = /^h([1-6])$/

const BLOCK_KIND: ReadonlyMap<string, Exclude<BlockKind, "heading">> = new Map([
  ...[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "nav",
    "aside",
    "figure",
    "figcaption",
    "address",
    "dl",
    "dt",
    "dd",
    "ul",
    "ol",
    "form",
    "fieldset",
    "details",
    "summary",
    "hr",
    "center",
    "body",
    "html",
    "caption"
  ].map((tag) => [tag, "paragraph"] as const),
  ["li", "listItem"],
  ["pre", "code"],
  ["blockquote", "quote"],
  ["table", "table"],
  ["thead", "table"],
  ["tbody", "table"],
  ["tfoot", "table"],
  ["tr", "table"]
])

const textOf = (node: DomNode): string => {
  if (node.type === "text") return node.data ?? ""
  if (node.type !== "tag" || SKIPPED.has(node.name ?? "")) return ""
  if (node.name === "br") return "\n"
  return (node.children ?? []).map(textOf).join(node.name === "tr" ? " " : "")
}

/** HTML: headings h1–h6 structure the blocks; the title is `<title>`, else the first h1. */
export const parseHtml = (html: string): Parsed => {
  const $ = Cheerio.load(html)
  const list = new BlockList()
  let buffer: Array<string> = []
  const flush = (kind: Exclude<BlockKind, "heading">) => {
    if (buffer.length > 0) list.block(kind, buffer.join(""))
    buffer = []
  }
  const walk = (node: DomNode, kind: Exclude<BlockKind, "heading">): void => {
    if (node.type === "text") {
      buffer.push(node.data ?? "")
      return
    }
    if (node.type !== "tag" && node.type !== "root") return
    const name = node.name ?? ""
    if (SKIPPED.has(name)) return
    const heading = HEADING_TAG.exec(name)
    if (heading !== null) {
      flush(kind)
      list.heading(Number(heading[1]), textOf(node))
      return
    }
    if (name === "br") {
      buffer.push("\n")
      return
    }
    const inner = BLOCK_KIND.get(name)
    if (inner === undefined) {
      // Inline elements; table cells are separated so that their words do not run together.
      if (name === "td" || name === "th") buffer.push(" ")
      for (const child of node.children ?? []) walk(child, kind)
      if (name === "td" || name === "th") buffer.push(" ")
      return
    }
    // A block inside a list item / quote keeps the outer kind unless it is more specific.
    const blockKind = inner === "paragraph" && kind !== "paragraph" ? kind : inner
    flush(kind)
    for (const child of node.children ?? []) walk(child, blockKind)
    flush(blockKind)
  }
  const body = ($("body").get(0) ?? $.root().get(0)) as unknown as DomNode | undefined
  if (body !== undefined) walk(body, "paragraph")
  flush("paragraph")
  const titleTag = normalizeSpace($("title").first().text())
  const firstH1 = list.blocks.find((b) => b.kind === "heading" && b.level === 1)?.text
  const title = titleTag !== "" ? titleTag : firstH1
  return title === undefined ? { blocks: list.blocks } : { title, blocks: list.blocks }
}

// ---------------------------------------------------------------------------
// Markdown

type MdRoot = ReturnType<typeof fromMarkdown>
type MdNode = MdRoot | MdRoot["children"][number]

const mdText = (node: MdNode): string => {
  switch (node.type) {
    case "text":
    case "inlineCode":
    case "code":
      return node.value
    case "html":
      return node.value.replace(/<[^>]*>/g, "")
    case "image":
    case "imageReference":
      return node.alt ?? ""
    case "break":
      return "\n"
    default:
      return "children" in node ? (node.children as ReadonlyArray<MdNode>).map(mdText).join("") : ""
  }
}

/** Markdown: ATX/setext headings structure the blocks; the title is the first level-1 heading. */
export const parseMarkdown = (markdown: string): Parsed => {
  const list = new BlockList()
  const walk = (node: MdNode, kind: Exclude<BlockKind, "heading">): void => {
    switch (node.type) {
      case "root":
        for (const child of node.children) walk(child, kind)
        return
      case "heading":
        list.heading(node.depth, mdText(node))
        return
      case "paragraph":
      case "html":
        list.block(kind, mdText(node))
        return
      case "code":
        list.block("code", node.value)
        return
      case "blockquote":
        for (const child of node.children) walk(child, "quote")
        return
      case "list":
        for (const child of node.children) walk(child, kind)
        return
      case "listItem": {
        // The item's own text is one block; nested lists follow as their own items.
        const own = node.children.filter((c) => c.type !== "list")
        list.block("listItem", own.map(mdText).join(" "))
        for (const child of node.children) if (child.type === "list") walk(child, kind)
        return
      }
      case "table":
        for (const row of node.children) list.block("table", row.children.map(mdText).join(" | "))
        return
      default:
        return
    }
  }
  walk(fromMarkdown(markdown), "paragraph")
  const title = list.blocks.find((b) => b.kind === "heading" && b.level === 1)?.text
  return title === undefined ? { blocks: list.blocks } : { title, blocks: list.blocks }
}

// ---------------------------------------------------------------------------
// PDF layout

/** A positioned text item, as unpdf's `extractTextItems` reports it. */
export interface PdfItem {
  readonly str: string
  readonly y: number
  readonly fontSize: number
  readonly hasEOL: boolean
}

interface Line {
  readonly text: string
  readonly size: number
  readonly y: number
}

const pdfLines = (items: ReadonlyArray<PdfItem>): Array<Line> => {
  const lines: Array<Line> = []
  let parts: Array<string> = []
  let size = 0
  let y = 0
  const end = () => {
    const text = normalizeSpace(parts.join(""))
    if (text !== "") lines.push({ text, size, y })
    parts = []
    size = 0
  }
  for (const item of items) {
    if (item.str !== "") {
      // A baseline jump starts a new line even when the item carries no end-of-line mark.
      if (parts.length > 0 && Math.abs(item.y - y) > Math.max(1, 0.5 * Math.max(item.fontSize, size))) end()
      if (parts.length === 0) y = item.y
      parts.push(item.str)
      if (item.str.trim() !== "") size = Math.max(size, item.fontSize)
    }
    if (item.hasEOL) end()
  }
  end()
  return lines
}

const roundSize = (size: number) => Math.round(size * 2) / 2

/**
 * Lays out the text items of each page. A line set in a font at least 20%
 * larger than the body font (the size most characters use) is a heading;
 * larger fonts are higher levels. Body lines close together form paragraphs,
 * which never cross a page.
 */
export const layoutPdf = (pagesItems: ReadonlyArray<ReadonlyArray<PdfItem>>): Parsed => {
  const pagesLines = pagesItems.map(pdfLines)
  const weight = new Map<number, number>()
  for (const line of pagesLines.flat()) {
    const s = roundSize(line.size)
    weight.set(s, (weight.get(s) ?? 0) + line.text.length)
  }
  let body = 0
  let best = -1
  for (const [s, w] of weight) {
    if (w > best || (w === best && s < body)) {
      body = s
      best = w
    }
  }
  const isHeading = (line: Line) => body > 0 && line.size >= body * 1.2 && line.text.length <= 200
  const headingSizes = [
    ...new Set(
      pagesLines
        .flat()
        .filter(isHeading)
        .map((l) => roundSize(l.size))
    )
  ].sort((a, b) => b - a)
  const levelOf = (line: Line) => Math.min(6, headingSizes.indexOf(roundSize(line.size)) + 1)

  const list = new BlockList()
  const pages: Array<Page> = []
  pagesLines.forEach((lines, index) => {
    const page = index + 1
    pages.push({ page, text: lines.map((l) => l.text).join("\n") })
    let paragraph: Array<string> = []
    let previous: Line | undefined
    const flush = () => {
      if (paragraph.length > 0) list.block("paragraph", paragraph.join(" "), page)
      paragraph = []
    }
    for (const line of lines) {
      if (isHeading(line)) {
        flush()
        list.heading(levelOf(line), line.text, page)
      } else {
        const gap = previous === undefined ? Infinity : previous.y - line.y
        const continues =
          previous !== undefined &&
          !isHeading(previous) &&
          gap > 0 &&
          gap <= 1.8 * Math.max(line.size, previous.size) &&
          Math.abs(roundSize(line.size) - roundSize(previous.size)) < 1
        if (!continues) flush()
        paragraph.push(line.text)
      }
      previous = line
    }
    flush()
  })
  return { pages, blocks: list.blocks }
}
