/**
 * Document: text extraction from the files a `Column.Document` refers to
 * (local path, `file://` or `http(s)://` URL). PDF (per page, unpdf, offline),
 * HTML (cheerio), Markdown (mdast) and plain text all become one structure:
 * blocks (headings, paragraphs, list items, ...) each with its heading path
 * and, for PDFs, its page. `Splitter` cuts that structure into chunks.
 *
 * Also the functions computed columns call: `Document.text(c.doc)` (the full
 * text) and `Document.chunks(c.doc, options)` (the chunks as Json).
 */
import { Column, ColumnType, Expr, Fn, Iterator } from "@tessera/core"
import { Effect, Result, Schema } from "effect"
import * as NodeFs from "node:fs/promises"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import { extractTextItems, getDocumentProxy, getMeta } from "unpdf"
import * as Parse from "./internal/documentParse.ts"
import * as Splitter from "./Splitter.ts"

export type Format = "pdf" | "html" | "markdown" | "text"
export type BlockKind = Parse.BlockKind
export type Block = Parse.Block
export type Page = Parse.Page

/** An extracted document: its blocks in reading order; `pages` for PDFs. */
export interface Document {
  readonly source: string
  readonly format: Format
  readonly title?: string | undefined
  readonly pages?: ReadonlyArray<Page> | undefined
  readonly blocks: ReadonlyArray<Block>
}

export class DocumentError extends Schema.TaggedError<DocumentError>()("DocumentError", {
  reason: Schema.Literals(["NotFound", "Unreadable", "UnsupportedFormat"]),
  /** The reference as given (path or URL). */
  path: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  /** Only a remote server's transient failure is worth retrying. */
  get isRetryable(): boolean {
    return (
      this.reason === "Unreadable" && /^https?:\/\//i.test(this.path) && /\b(429|5\d\d)\b|network/i.test(this.message)
    )
  }
}

/** The full text: the blocks' texts separated by blank lines. */
export const fullText = (doc: Document): string => doc.blocks.map((b) => b.text).join("\n\n")

const EXTENSIONS: ReadonlyMap<string, Format> = new Map([
  [".pdf", "pdf"],
  [".html", "html"],
  [".htm", "html"],
  [".xhtml", "html"],
  [".md", "markdown"],
  [".markdown", "markdown"],
  [".mdown", "markdown"],
  [".mkd", "markdown"],
  [".txt", "text"],
  [".text", "text"]
])

const isPdf = (bytes: Uint8Array): boolean => {
  // The PDF header may follow up to 1 KiB of leading garbage.
  const head = new TextDecoder("latin1").decode(bytes.subarray(0, 1024))
  return head.includes("%PDF-")
}

const isBinary = (bytes: Uint8Array): boolean => {
  const head = bytes.subarray(0, 8192)
  if (head.includes(0)) return true
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(head.subarray(0, lastCompleteUtf8(head)))
    return false
  } catch {
    return true
  }
}

/** Length of the prefix that does not end inside a multi-byte UTF-8 sequence. */
const lastCompleteUtf8 = (bytes: Uint8Array): number => {
  let i = bytes.length
  for (let back = 0; back < 4 && i > 0; back++) {
    const b = bytes[i - 1]!
    if ((b & 0xc0) !== 0x80) return b >= 0xc0 ? i - 1 : bytes.length
    i--
  }
  return bytes.length
}

const extensionOf = (name: string): string => {
  const path = /^[a-z][a-z0-9+.-]*:\/\//i.test(name) ? new URL(name).pathname : name
  return NodePath.extname(path).toLowerCase()
}

/**
 * The format of a file, by content where it is unambiguous (`%PDF`, binary),
 * else by extension, else by sniffing (HTML tags, Markdown headings).
 * `undefined` when unsupported.
 */
export const detectFormat = (name: string, bytes: Uint8Array): Format | undefined => {
  if (isPdf(bytes)) return "pdf"
  const byExtension = EXTENSIONS.get(extensionOf(name))
  if (byExtension === "pdf") return "pdf"
  if (isBinary(bytes)) return undefined
  if (byExtension !== undefined) return byExtension
  const head = new TextDecoder().decode(bytes.subarray(0, 4096))
  if (/^\s*(<!doctype html|<html[\s>]|<head[\s>]|<body[\s>])/i.test(head)) return "html"
  if (extensionOf(name) === "" && /^#{1,6}\s+\S/m.test(head)) return "markdown"
  return "text"
}

const decodeText = (bytes: Uint8Array): string => new TextDecoder("utf-8").decode(bytes)

const parsePdf = Effect.fnUntraced(function* (source: string, bytes: Uint8Array) {
  const unreadable = (cause: unknown) =>
    new DocumentError({
      reason: "Unreadable",
      path: source,
      message: `${source}: not a readable PDF (${cause instanceof Error ? cause.message : String(cause)})`,
      cause
    })
  return yield* Effect.acquireUseRelease(
    // pdf.js may detach the buffer it is given: hand it a copy.
    Effect.tryPromise({ try: () => getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 }), catch: unreadable }),
    (pdf) =>
      Effect.tryPromise({
        try: async () => {
          const { items } = await extractTextItems(pdf)
          const meta = await getMeta(pdf).catch(() => undefined)
          const title: unknown = meta?.info?.Title
          const parsed = Parse.layoutPdf(items)
          return typeof title === "string" && title.trim() !== "" ? { ...parsed, title: title.trim() } : parsed
        },
        catch: unreadable
      }),
    (pdf) => Effect.promise(() => pdf.loadingTask.destroy().catch(() => undefined))
  )
})

/** Extracts a document from its bytes; `name` (a path or URL) names it and gives its extension. */
export const parse = Effect.fn("Document.parse")(function* (
  bytes: Uint8Array,
  options: { readonly name: string; readonly format?: Format | undefined }
): Effect.fn.Return<Document, DocumentError> {
  const source = options.name
  const format = options.format ?? detectFormat(source, bytes)
  if (format === undefined) {
    return yield* new DocumentError({
      reason: "UnsupportedFormat",
      path: source,
      message: `${source}: unsupported document format (expected PDF, HTML, Markdown or text)`
    })
  }
  const parsed: Parse.Parsed =
    format === "pdf"
      ? yield* parsePdf(source, bytes)
      : yield* Effect.try({
          try: () => {
            const text = decodeText(bytes)
            return format === "html"
              ? Parse.parseHtml(text)
              : format === "markdown"
                ? Parse.parseMarkdown(text)
                : Parse.parseText(text)
          },
          catch: (cause) =>
            new DocumentError({
              reason: "Unreadable",
              path: source,
              message: `${source}: cannot parse as ${format} (${cause instanceof Error ? cause.message : String(cause)})`,
              cause
            })
        })
  return {
    source,
    format,
    ...(parsed.title === undefined ? {} : { title: parsed.title }),
    ...(parsed.pages === undefined ? {} : { pages: parsed.pages }),
    blocks: parsed.blocks
  }
})

const NOT_FOUND_CODES = new Set(["ENOENT", "ENOTDIR"])

/** The bytes a reference points to: a local path, a `file://` or an `http(s)://` URL. */
export const load = Effect.fn("Document.load")(function* (
  reference: string
): Effect.fn.Return<Uint8Array, DocumentError> {
  if (/^https?:\/\//i.test(reference)) {
    const response = yield* Effect.tryPromise({
      try: (signal) => fetch(reference, { signal }),
      catch: (cause) =>
        new DocumentError({
          reason: "Unreadable",
          path: reference,
          message: `${reference}: network error (${cause instanceof Error ? cause.message : String(cause)})`,
          cause
        })
    })
    if (!response.ok) {
      return yield* new DocumentError({
        reason: response.status === 404 || response.status === 410 ? "NotFound" : "Unreadable",
        path: reference,
        message: `${reference}: HTTP ${response.status}`
      })
    }
    const body = yield* Effect.tryPromise({
      try: () => response.arrayBuffer(),
      catch: (cause) =>
        new DocumentError({ reason: "Unreadable", path: reference, message: `${reference}: network error`, cause })
    })
    return new Uint8Array(body)
  }
  const path = /^file:\/\//i.test(reference) ? NodeUrl.fileURLToPath(reference) : reference
  return yield* Effect.tryPromise({
    try: (signal) => NodeFs.readFile(path, { signal }),
    catch: (cause) => {
      const code = (cause as { code?: unknown }).code
      return typeof code === "string" && NOT_FOUND_CODES.has(code)
        ? new DocumentError({ reason: "NotFound", path: reference, message: `${reference}: no such file`, cause })
        : new DocumentError({
            reason: "Unreadable",
            path: reference,
            message: `${reference}: cannot read (${typeof code === "string" ? code : String(cause)})`,
            cause
          })
    }
  }).pipe(Effect.map((buffer) => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)))
})

/** Reads and extracts the document a reference points to. */
export const read = Effect.fn("Document.read")(function* (
  reference: string | URL,
  options?: { readonly format?: Format | undefined }
): Effect.fn.Return<Document, DocumentError> {
  const name = typeof reference === "string" ? reference : reference.href
  const bytes = yield* load(name)
  return yield* parse(bytes, { name, format: options?.format })
})

// ---------------------------------------------------------------------------
// Functions for computed columns

/** The full text of a document (`Document.text`). */
export const textFunction = Fn.effect({
  name: "tessera.document.text",
  version: 1,
  params: { doc: Column.Document },
  returns: Column.String,
  concurrency: 4,
  run: ({ doc }) => Effect.map(read(doc), fullText)
})

/** The chunks of a document, split with the options in the second argument (`Document.chunks`). */
export const chunksFunction = Fn.effect({
  name: "tessera.document.chunks",
  version: 1,
  params: { doc: Column.Document, options: Column.Json() },
  returns: Column.Json(Schema.Array(Splitter.Chunk)),
  concurrency: 4,
  run: ({ doc, options }) =>
    Effect.gen(function* () {
      const valid = yield* Effect.fromResult(Splitter.validate(options))
      const document = yield* read(doc)
      return Splitter.split(document, valid)
    })
})

/** `Document.text(t.c.doc)`: the full text of the referenced document, as a String column. */
export const text = (doc: Expr.Input<string | null>): Expr.Expr<string> => textFunction({ doc })

/**
 * `Document.chunks(t.c.doc, { separators: ["heading", "tokenLimit"], limit: 200, overlap: 20 })`:
 * the chunks (`Splitter.Chunk`) as a Json array. The options are a literal,
 * checked here: invalid options throw when the expression is built.
 */
export const chunks = (
  doc: Expr.Input<string | null>,
  options: Splitter.Options
): Expr.Expr<ReadonlyArray<Splitter.Chunk>> => {
  const valid = Splitter.validate(options)
  if (Result.isFailure(valid)) throw new Error(`Document.chunks: ${valid.failure.message}`)
  return chunksFunction({ doc, options: Expr.lit<unknown>(valid.success, ColumnType.Json()) })
}

/**
 * The chunks iterator: an iterator view with one row per chunk of each
 * document, `Table.createView(path, docs, { iterator: Document.chunkIterator(docs.c.doc, options) })`.
 * Its columns: `text`, `headingPath` (Json), `page` and `title`, beside `pos`.
 */
export const chunkIteratorDefinition = Iterator.make({
  name: "tessera.document.chunks.iterator",
  params: { doc: Column.Document, options: Column.Json() },
  outputs: {
    text: Column.String,
    headingPath: Column.Json(),
    page: Column.nullable(Column.Int),
    title: Column.nullable(Column.String)
  },
  run: ({ doc, options }) =>
    Effect.gen(function* () {
      const valid = Splitter.validate(options)
      if (Result.isFailure(valid)) return yield* valid.failure
      const document = yield* read(doc)
      return Splitter.split(document, valid.success).map((chunk) => ({
        text: chunk.text,
        headingPath: chunk.headingPath,
        page: chunk.page ?? null,
        title: chunk.title ?? null
      }))
    })
})

/** `Document.chunkIterator(t.c.doc, options)`: the `iterator` option of an iterator view over documents. */
export const chunkIterator = (doc: Expr.Input<string | null>, options: Splitter.Options) => {
  const valid = Splitter.validate(options)
  if (Result.isFailure(valid)) throw new Error(`Document.chunkIterator: ${valid.failure.message}`)
  return chunkIteratorDefinition({ doc, options: Expr.lit<unknown>(valid.success, ColumnType.Json()) })
}
