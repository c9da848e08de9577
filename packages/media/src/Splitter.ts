/**
 * Splitter: cuts a parsed `Document` into chunks for retrieval, the way
 * Pixeltable's DocumentSplitter does. Separators combine: structural ones
 * (`heading`, `page`, `paragraph`, `sentence`) decide where a chunk must end,
 * then at most one limit (`charLimit` or `tokenLimit`, with `limit` and
 * `overlap`) cuts what is still too long into overlapping windows.
 *
 * Pure functions, so that they can back an iterator view (one row per chunk)
 * as well as the `Document.chunks` function of a computed column.
 *
 * Invariant: dropping each chunk's first `overlap` characters and joining the
 * rest in order gives the document's full text (up to whitespace): cuts fall
 * on whitespace unless a word is longer than a `charLimit`, or a run of tokens
 * without whitespace (`them);`) longer than a `tokenLimit`.
 */
import { Result, Schema } from "effect"
import type * as Document from "./Document.ts"

export const Separator = Schema.Literals(["heading", "paragraph", "sentence", "page", "charLimit", "tokenLimit"])
export type Separator = typeof Separator.Type

/** Options: `limit` and `overlap` count characters (`charLimit`) or tokens (`tokenLimit`). */
export const Options = Schema.Struct({
  separators: Schema.Array(Separator),
  limit: Schema.optional(Schema.Int),
  overlap: Schema.optional(Schema.Int)
})
export type Options = typeof Options.Type

export const Chunk = Schema.Struct({
  text: Schema.String,
  title: Schema.optionalKey(Schema.String),
  headingPath: Schema.Array(Schema.String),
  page: Schema.optionalKey(Schema.Int),
  /** 0-based index of the chunk in the document. */
  position: Schema.Int,
  /** How many leading characters of `text` repeat the end of the previous chunk. */
  overlap: Schema.Int
})
export type Chunk = typeof Chunk.Type

export class SplitterError extends Schema.TaggedError<SplitterError>()("SplitterError", {
  reason: Schema.Literals(["InvalidOptions"]),
  message: Schema.String
}) {}

const invalid = (message: string) => Result.fail(new SplitterError({ reason: "InvalidOptions", message }))

/** Checks options (from code or from a Json cell): one limit at most, with `0 <= overlap < limit`. */
export const validate = (input: unknown): Result.Result<Options, SplitterError> => {
  const decoded = Schema.decodeUnknownResult(Options)(input)
  if (Result.isFailure(decoded)) return invalid(`invalid splitter options: ${decoded.failure.message}`)
  const options = decoded.success
  const limits = options.separators.filter((s) => s === "charLimit" || s === "tokenLimit")
  if (new Set(limits).size > 1) return invalid("use one of charLimit and tokenLimit, not both")
  if (limits.length > 0) {
    if (options.limit === undefined || options.limit < 1) {
      return invalid(`${limits[0]} needs a limit of at least 1`)
    }
    const overlap = options.overlap ?? 0
    if (overlap < 0 || overlap >= options.limit) {
      return invalid(`overlap must be at least 0 and less than the limit (${options.limit}), got ${overlap}`)
    }
  }
  return Result.succeed(options)
}

// ---------------------------------------------------------------------------
// Tokens and sentences

interface Span {
  readonly start: number
  readonly end: number
}

const TOKEN_RE = /[\p{L}\p{M}\p{N}_]+|[^\s\p{L}\p{M}\p{N}_]/gu

/**
 * The splitter's tokenizer: a token is a run of letters, digits and `_` (a
 * word) or a single other non-space character (punctuation, symbol).
 * Deterministic and dependency-free; it approximates, and does not reproduce,
 * the tokenizer of any model (words are not split into sub-word pieces).
 */
export const tokens = (text: string): Array<string> => text.match(TOKEN_RE) ?? []

const tokenSpans = (text: string): Array<Span> =>
  Array.from(text.matchAll(TOKEN_RE), (m) => ({ start: m.index, end: m.index + m[0].length }))

const ABBREVIATIONS = new Set([
  "mr",
  "mrs",
  "ms",
  "dr",
  "prof",
  "sr",
  "jr",
  "st",
  "vs",
  "etc",
  "e.g",
  "i.e",
  "cf",
  "fig",
  "figs",
  "no",
  "nos",
  "vol",
  "pp",
  "approx",
  "inc",
  "ltd",
  "co",
  "corp",
  "dept",
  "est",
  "u.s",
  "u.k",
  "a.m",
  "p.m"
])

const SENTENCE_END = /[.!?…]+["'”’)\]]*(?=\s)|\n[ \t\r\f\v]*\n/g

/**
 * Splits text into sentences: after `.`, `!`, `?` or `…` (and closing quotes or
 * brackets) followed by whitespace and not by a lowercase letter, and at blank
 * lines. A period after a common abbreviation (`Dr.`, `e.g.`) or a single
 * initial (`J.`) does not end a sentence. Sentences are trimmed; splits only
 * happen at whitespace, so no other character is lost.
 */
export const sentences = (text: string): Array<string> => {
  const out: Array<string> = []
  let start = 0
  const push = (end: number) => {
    const sentence = text.slice(start, end).trim()
    if (sentence !== "") out.push(sentence)
    start = end
  }
  for (const m of text.matchAll(SENTENCE_END)) {
    const end = m.index + m[0].length
    if (m[0].startsWith("\n")) {
      push(m.index)
      continue
    }
    const next = /^\s+(\S)/.exec(text.slice(end))?.[1]
    if (next !== undefined && /\p{Ll}/u.test(next)) continue
    if (/^\.+["'”’)\]]*$/.test(m[0]) && m[0].startsWith(".") && !m[0].startsWith("..")) {
      const word = (/(\S+)$/.exec(text.slice(start, m.index))?.[1] ?? "").replace(/^["'“‘([]+/, "")
      if (ABBREVIATIONS.has(word.toLowerCase()) || /^\p{Lu}$/u.test(word)) continue
    }
    push(end)
  }
  push(text.length)
  return out
}

// ---------------------------------------------------------------------------
// Windows

interface Window {
  readonly text: string
  readonly overlap: number
}

/** Greedy windows of at most `limit` characters, cut at whitespace (inside a word only when it alone is too long). */
const charWindows = (text: string, limit: number, overlap: number): Array<Window> => {
  const words: Array<Span> = []
  for (const m of text.matchAll(/\S+/g)) {
    for (let s = m.index; s < m.index + m[0].length; s += limit) {
      words.push({ start: s, end: Math.min(s + limit, m.index + m[0].length) })
    }
  }
  const out: Array<Window> = []
  let from = 0
  let first = 0
  while (first < words.length) {
    while (from < first && words[first]!.end - words[from]!.start > limit) from++
    let last = first
    while (last + 1 < words.length && words[last + 1]!.end - words[from]!.start <= limit) last++
    out.push({
      text: text.slice(words[from]!.start, words[last]!.end),
      overlap: words[first]!.start - words[from]!.start
    })
    const next = last + 1
    let k = next
    while (k - 1 > from && words[last]!.end - words[k - 1]!.start <= overlap) k--
    from = k
    first = next
  }
  return out
}

/**
 * Windows of at most `limit` tokens. A window prefers to end where whitespace
 * follows (so that words and their punctuation stay together) and its overlap
 * starts at a word, so it may hold fewer tokens than allowed.
 */
const tokenWindows = (text: string, limit: number, overlap: number): Array<Window> => {
  const spans = tokenSpans(text)
  const n = spans.length
  const attached = (i: number) => i > 0 && i < n && spans[i]!.start === spans[i - 1]!.end
  const out: Array<Window> = []
  let from = 0
  let first = 0
  while (first < n) {
    // Give up overlap (a word at a time) before cutting the first new word from its punctuation.
    let wordEnd = first + 1
    while (attached(wordEnd)) wordEnd++
    while (from < first && wordEnd - from > limit) {
      from++
      while (from < first && attached(from)) from++
    }
    let end = Math.min(from + limit, n)
    if (end < n && attached(end)) {
      let e = end - 1
      while (e > first && attached(e)) e--
      if (e > first) end = e
    }
    out.push({
      text: text.slice(spans[from]!.start, spans[end - 1]!.end),
      overlap: spans[first]!.start - spans[from]!.start
    })
    if (overlap > 0) {
      let k = Math.max(end - overlap, from + 1)
      while (k < end && attached(k)) k++
      from = k
    } else {
      from = end
    }
    first = end
  }
  return out
}

// ---------------------------------------------------------------------------
// Splitting

interface Unit {
  readonly text: string
  readonly headingPath: ReadonlyArray<string>
  readonly page: number | undefined
}

const units = (doc: Document.Document, separators: ReadonlySet<Separator>): Array<Unit> => {
  const blocks = doc.blocks.filter((b) => b.text.trim() !== "")
  if (separators.has("sentence")) {
    return blocks.flatMap((b) => sentences(b.text).map((text) => ({ text, headingPath: b.headingPath, page: b.page })))
  }
  if (separators.has("paragraph")) {
    return blocks.map((b) => ({ text: b.text, headingPath: b.headingPath, page: b.page }))
  }
  const groups: Array<Array<Document.Block>> = []
  for (const block of blocks) {
    const current = groups[groups.length - 1]
    const startsNew =
      current === undefined ||
      (separators.has("heading") && block.kind === "heading") ||
      (separators.has("page") && block.page !== current[0]!.page)
    if (startsNew) groups.push([block])
    else current.push(block)
  }
  return groups.map((group) => ({
    text: group.map((b) => b.text).join("\n\n"),
    headingPath: group[0]!.headingPath,
    page: group[0]!.page
  }))
}

/**
 * Splits a document into chunks. Without separators the document is one
 * chunk. `heading` starts a chunk at every heading, `page` at every page,
 * `paragraph` makes each block a chunk, `sentence` each sentence; then a
 * `charLimit` / `tokenLimit` cuts chunks longer than `limit` into windows that
 * repeat up to `overlap` of the previous window (never across chunks made by
 * the other separators). A chunk's heading path and page are those of the
 * block it starts in. Expects valid options (see `validate`).
 */
export const split = (doc: Document.Document, options: Options): Array<Chunk> => {
  const separators = new Set(options.separators)
  const limitKind = separators.has("tokenLimit") ? "token" : separators.has("charLimit") ? "char" : undefined
  const limit = Math.max(1, Math.floor(options.limit ?? Number.MAX_SAFE_INTEGER))
  const overlap = Math.min(Math.max(0, Math.floor(options.overlap ?? 0)), limit - 1)
  const chunks: Array<Chunk> = []
  for (const unit of units(doc, separators)) {
    const windows: Array<Window> =
      limitKind === "token"
        ? tokenWindows(unit.text, limit, overlap)
        : limitKind === "char"
          ? charWindows(unit.text, limit, overlap)
          : [{ text: unit.text, overlap: 0 }]
    for (const window of windows) {
      chunks.push({
        text: window.text,
        ...(doc.title === undefined ? {} : { title: doc.title }),
        headingPath: unit.headingPath,
        ...(unit.page === undefined ? {} : { page: unit.page }),
        position: chunks.length,
        overlap: window.overlap
      })
    }
  }
  return chunks
}
