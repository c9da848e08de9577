import { assert } from "@effect/vitest"
import { Column, Table } from "@tessera/core"
import { Harness } from "@tessera/sql/testing"
import { Effect } from "effect"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import { Anthropic, OpenAI } from "../src/index.ts"
import { FakeProvider } from "../src/testing/index.ts"

const apiKey = "sk-test-multimodal"

let unique = 0
const model = (base: string) => `${base}-${process.pid}-${unique++}`

const sha256 = (bytes: Uint8Array) => NodeCrypto.createHash("sha256").update(bytes).digest("hex")

/** The bytes of a `data:` URL. */
const dataUrlBytes = (url: string): { mediaType: string; bytes: Uint8Array } => {
  const m = /^data:([^;]+);base64,(.*)$/.exec(url)
  assert.isNotNull(m, `not a base64 data URL: ${url.slice(0, 40)}`)
  return { mediaType: m![1]!, bytes: new Uint8Array(Buffer.from(m![2]!, "base64")) }
}

/** A media value from a query (a handle or a path) as its path. */
const pathOf = (value: unknown): string => String(value)

/** Checks a file is where the content-addressed layout puts its bytes, and returns them. */
const contentAddressed = (root: string, path: string, extension: string): Uint8Array => {
  assert.isTrue(NodeFs.existsSync(path), `${path} was not written`)
  const bytes = new Uint8Array(NodeFs.readFileSync(path))
  const hash = sha256(bytes)
  assert.strictEqual(path, NodePath.join(root, hash.slice(0, 2), hash.slice(2, 4), `${hash}.${extension}`))
  return bytes
}

Harness.forEachBackend("Multimodal provider functions", (test) => {
  test("vision: local images reach the model as base64 data URLs, http URLs as they are", () =>
    Effect.gen(function* () {
      const dir = yield* Harness.tempDir()
      const red = NodePath.join(dir, "red.png")
      const blue = NodePath.join(dir, "blue.png")
      NodeFs.writeFileSync(red, FakeProvider.image("red", 3, 2))
      NodeFs.writeFileSync(blue, FakeProvider.image("blue", 2, 3))
      const remote = "https://images.example.invalid/cat.png"
      const fake = yield* FakeProvider.make()
      const t = yield* Table.create("photos", { q: Column.String, img: Column.Image })
      yield* t.insert([
        { q: "what is red?", img: red },
        { q: "what is blue?", img: NodeUrl.pathToFileURL(blue).href },
        { q: "what is this cat?", img: remote }
      ])
      const openai = OpenAI.vision({ model: model("gpt-vision"), baseURL: `${fake.url}/v1`, apiKey, detail: "low" })
      const anthropic = Anthropic.vision({ model: model("claude-vision"), baseURL: fake.url, apiKey })
      const t2 = yield* t.addComputedColumn("gpt", openai({ prompt: t.c.q, image: t.c.img }))
      const t3 = yield* t2.addComputedColumn("claude", anthropic({ prompt: t.c.q, image: t.c.img }))

      const rows = yield* t3.collect()
      assert.isTrue(rows.every((r) => r.gpt === `echo: ${r.q}` && r.claude === `echo: ${r.q}`))
      const expected: Record<string, string | Uint8Array> = {
        "what is red?": NodeFs.readFileSync(red),
        "what is blue?": NodeFs.readFileSync(blue),
        "what is this cat?": remote
      }
      assert.strictEqual(fake.requests.length, 6)
      for (const request of fake.requests) {
        assert.strictEqual(request.images.length, 1)
        const want = expected[request.text]!
        if (typeof want === "string") {
          assert.strictEqual(request.images[0], want)
          continue
        }
        const sent = dataUrlBytes(request.images[0]!)
        assert.strictEqual(sent.mediaType, "image/png")
        assert.deepStrictEqual(sent.bytes, new Uint8Array(want))
      }
      // OpenAI: an image_url part (with detail); Anthropic: a base64 or url image source.
      const gpt = fake.requests.filter((r) => r.route === "chat")
      const part = (gpt[0]!.body.messages as Array<{ content: Array<Record<string, any>> }>)[0]!.content[1]!
      assert.strictEqual(part.type, "image_url")
      assert.strictEqual(part.image_url.detail, "low")
      const sources = fake.requests
        .filter((r) => r.route === "messages")
        .map((r) => [
          r.text,
          (r.body.messages as Array<{ content: Array<Record<string, any>> }>)[0]!.content[0]!.source.type
        ])
      assert.sameDeepMembers(sources, [
        ["what is red?", "base64"],
        ["what is blue?", "base64"],
        ["what is this cat?", "url"]
      ])
    }))

  test("moderations: each row's verdict as Json", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make()
      const texts = ["a quiet afternoon", "threats of violence", "hate speech and harassment", "tea"]
      const t = yield* Table.create("posts", { text: Column.String })
      yield* t.insert(texts.map((text) => ({ text })))
      const moderate = OpenAI.moderations({ baseURL: `${fake.url}/v1`, apiKey })
      assert.strictEqual(moderate.definition.name, "openai.moderations/omni-moderation-latest")
      assert.isTrue(moderate.definition.deterministic)
      const t2 = yield* t.addComputedColumn("verdict", moderate({ text: t.c.text }))
      const rows = yield* t2.collect()
      for (const r of rows) assert.deepStrictEqual(r.verdict, FakeProvider.moderate(r.text))
      const flagged = yield* t2
        .where((c) => c.verdict.get("flagged").eq(true))
        .select((c) => ({ text: c.text }))
        .collect()
      assert.sameMembers(
        flagged.map((r) => r.text),
        texts.filter((text) => FakeProvider.moderate(text).flagged)
      )
      assert.isAtLeast(flagged.length, 2)
      assert.strictEqual(fake.requests[0]!.body.model, "omni-moderation-latest")
    }))

  test("image generations: a PNG per prompt, written content-addressed under mediaDir", () =>
    Effect.gen(function* () {
      const mediaDir = yield* Harness.tempDir()
      const fake = yield* FakeProvider.make()
      const generate = OpenAI.imageGenerations({
        model: model("gpt-image"),
        size: "32x24",
        baseURL: `${fake.url}/v1`,
        apiKey,
        mediaDir
      })
      const prompts = ["a lighthouse", "a fox", "a lighthouse"]
      const t = yield* Table.create("ideas", { prompt: Column.String })
      yield* t.insert(prompts.map((prompt) => ({ prompt })))
      const t2 = yield* t.addComputedColumn("picture", generate({ prompt: t.c.prompt }))
      const rows = yield* t2.collect()
      for (const r of rows) {
        const bytes = contentAddressed(mediaDir, pathOf(r.picture), "png")
        assert.deepStrictEqual(bytes.subarray(0, 8), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))
        const header = Buffer.from(bytes.subarray(16, 24))
        assert.deepStrictEqual([header.readUInt32BE(0), header.readUInt32BE(4)], [32, 24])
        assert.deepStrictEqual(bytes, FakeProvider.image(r.prompt, 32, 24))
      }
      // The same bytes are one file.
      const paths = rows.map((r) => pathOf(r.picture))
      assert.strictEqual(new Set(paths).size, 2)
      const body = fake.requests[0]!.body
      assert.deepStrictEqual([body.size, body.n, body.response_format], ["32x24", 1, undefined])
    }))

  test("speech then transcription: text to an audio file and back to text (a multipart upload)", () =>
    Effect.gen(function* () {
      const mediaDir = yield* Harness.tempDir()
      const fake = yield* FakeProvider.make()
      const speak = OpenAI.speech({
        model: model("tts"),
        voice: "alloy",
        format: "wav",
        baseURL: `${fake.url}/v1`,
        apiKey,
        mediaDir
      })
      const transcribe = OpenAI.transcriptions({
        model: model("whisper"),
        language: "en",
        baseURL: `${fake.url}/v1`,
        apiKey
      })
      const lines = ["Hello there.", "General Kenobi!", "Ünïcödé survives the round trip"]
      const t = yield* Table.create("lines", { line: Column.String })
      yield* t.insert(lines.map((line) => ({ line })))
      const t2 = yield* t.addComputedColumn("audio", speak({ text: t.c.line }))
      const t3 = yield* t2.addComputedColumn("heard", transcribe({ audio: t2.c.audio }))

      const rows = yield* t3.collect()
      assert.strictEqual(rows.length, 3)
      for (const r of rows) {
        const bytes = contentAddressed(mediaDir, pathOf(r.audio), "wav")
        assert.strictEqual(Buffer.from(bytes.subarray(0, 4)).toString("ascii"), "RIFF")
        assert.deepStrictEqual(bytes, FakeProvider.speech(r.line, "wav"))
        assert.strictEqual(r.heard, r.line)
      }
      const speech = fake.requests.filter((r) => r.route === "speech")
      assert.sameMembers(
        speech.map((r) => r.body.input as string),
        lines
      )
      assert.isTrue(speech.every((r) => r.body.voice === "alloy" && r.body.response_format === "wav"))
      const uploads = fake.requests.filter((r) => r.route === "transcriptions")
      assert.strictEqual(uploads.length, 3)
      for (const upload of uploads) {
        assert.strictEqual(upload.body.language, "en")
        assert.strictEqual(upload.files.length, 1)
        const file = upload.files[0]!
        assert.strictEqual(file.field, "file")
        assert.match(file.filename, /^[0-9a-f]{64}\.wav$/)
        const stored = NodePath.join(mediaDir, file.filename.slice(0, 2), file.filename.slice(2, 4), file.filename)
        assert.deepStrictEqual(file.bytes, new Uint8Array(NodeFs.readFileSync(stored)))
      }
    }))

  test("errors on the new routes are typed reasons recorded on the cell", () =>
    Effect.gen(function* () {
      const mediaDir = yield* Harness.tempDir()
      const notAnImage = NodePath.join(mediaDir, "notes.png")
      NodeFs.writeFileSync(notAnImage, "just text")
      const fake = yield* FakeProvider.make({
        fault: ({ route, text }) =>
          route === "images" && text === "forbidden"
            ? { contentFilter: true }
            : route === "speech" && text === "too long"
              ? { status: 400, message: "Input is longer than 4096 characters" }
              : undefined
      })
      const base = { baseURL: `${fake.url}/v1`, apiKey, mediaDir }
      const t = yield* Table.create("jobs", { text: Column.String, clip: Column.Audio, img: Column.Image })
      yield* t.insert([
        { text: "forbidden", clip: NodePath.join(mediaDir, "missing.wav"), img: notAnImage },
        { text: "too long", clip: NodePath.join(mediaDir, "missing.wav"), img: notAnImage }
      ])
      const t2 = yield* t.addComputedColumn(
        "picture",
        OpenAI.imageGenerations({ ...base, model: model("gpt-image") })({ prompt: t.c.text }),
        { onError: "record" }
      )
      const t3 = yield* t2.addComputedColumn(
        "speech",
        OpenAI.speech({ ...base, model: model("tts"), voice: "alloy" })({ text: t.c.text }),
        { onError: "record" }
      )
      const t4 = yield* t3.addComputedColumn(
        "heard",
        OpenAI.transcriptions({ ...base, model: model("whisper") })({ audio: t.c.clip }),
        { onError: "record" }
      )
      const t5 = yield* t4.addComputedColumn(
        "seen",
        OpenAI.vision({ ...base, model: model("gpt-vision") })({ prompt: t.c.text, image: t.c.img }),
        { onError: "record" }
      )
      const rows = yield* t5
        .select((c) => ({
          text: c.text,
          pictureType: c.picture.errorType,
          speechType: c.speech.errorType,
          speechMessage: c.speech.errorMessage,
          heardType: c.heard.errorType,
          heardMessage: c.heard.errorMessage,
          seenType: c.seen.errorType,
          seenMessage: c.seen.errorMessage
        }))
        .orderBy("text")
        .collect()
      const [forbidden, tooLong] = rows
      assert.strictEqual(forbidden!.text, "forbidden")
      assert.strictEqual(forbidden!.pictureType, "ContentFiltered")
      assert.isNull(forbidden!.speechType)
      assert.isNull(tooLong!.pictureType)
      assert.strictEqual(tooLong!.speechType, "BadRequest")
      assert.strictEqual(tooLong!.speechMessage, "400 Input is longer than 4096 characters")
      for (const r of rows) {
        assert.strictEqual(r.heardType, "BadRequest")
        assert.include(r.heardMessage, "missing.wav")
        assert.strictEqual(r.seenType, "BadRequest")
        assert.include(r.seenMessage, "is not a PNG, JPEG, GIF or WebP image")
      }
      // Nothing was sent for media that could not be read; a 400 is not retried.
      assert.deepStrictEqual(
        { ...fake.stats.byRoute },
        { chat: 0, embeddings: 0, messages: 0, moderations: 0, images: 2, speech: 2, transcriptions: 0 }
      )
    }))
})
