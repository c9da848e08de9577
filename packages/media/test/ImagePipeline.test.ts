import { assert, describe, it } from "@effect/vitest"
import { Column, Expr, type Fn, type Media, Pool, Table } from "@tessera/core"
import { Database } from "@tessera/sql"
import { Harness } from "@tessera/sql/testing"
import { Cause, Effect, Exit } from "effect"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import * as Image from "../src/Image.ts"
import * as MediaStore from "../src/MediaStore.ts"
import { added, filesIn } from "./files.ts"

// Fixtures: lossless images of several layouts (RGB, RGBA with varying alpha, grey, grey with alpha),
// a JPEG, a file that is not an image and a path that does not exist.
const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-image-pipeline-"))
// The store the expected results are computed in, step by step: apart from the tests' stores.
const reference = NodePath.join(dir, "reference")
const fx = {
  rgb: NodePath.join(dir, "rgb-120x90.png"),
  rgba: NodePath.join(dir, "rgba-80x60.png"),
  grey: NodePath.join(dir, "grey-64x64.png"),
  greyAlpha: NodePath.join(dir, "grey-alpha-50x70.png"),
  photo: NodePath.join(dir, "photo-160x120.jpg"),
  text: NodePath.join(dir, "notes.txt"),
  missing: NodePath.join(dir, "missing.png")
}

/** A pattern with detail on both axes in every channel (a solid colour would hide resampling differences). */
const pattern = (width: number, height: number, channels: number) => {
  const data = Buffer.alloc(width * height * channels)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        data[(y * width + x) * channels + c] = Math.round((((x * (c + 2) + y * (5 - c) + x * y) % 97) / 96) * 255)
      }
    }
  }
  return sharp(data, { raw: { width, height, channels: channels as 1 | 2 | 3 | 4 } })
}

beforeAll(async () => {
  await pattern(120, 90, 3).png().toFile(fx.rgb)
  await pattern(80, 60, 4).png().toFile(fx.rgba)
  await pattern(64, 64, 1).toColourspace("b-w").png().toFile(fx.grey)
  await pattern(50, 70, 2).toColourspace("b-w").png().toFile(fx.greyAlpha)
  await pattern(160, 120, 3).jpeg({ quality: 90 }).toFile(fx.photo)
  NodeFs.writeFileSync(fx.text, "not an image\n")
})

afterAll(() => NodeFs.rmSync(dir, { recursive: true, force: true }))

const testPool = new Pool.Pool("image-pipeline-test")

/** Invokes a function on one row of named arguments, as the engine does, with the media store under `home`. */
const call = <P extends Record<string, Column.Any>, R>(
  fn: Fn.Fn<P, R>,
  args: Record<string, unknown>,
  home: string = reference
) =>
  fn.definition.invoke([fn.definition.params.map((p) => args[p.name] ?? null)]).pipe(
    Effect.map((results) => results[0] as R),
    Effect.provideService(Pool.CurrentPool, testPool),
    Effect.provide(MediaStore.layer(home))
  )

/** The typed failure of an effect that must fail. */
const failureOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "expected a failure")
    return (Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined) as MediaStore.MediaError
  })

/**
 * An image's layout and pixels: every channel, alpha included (a raw buffer of
 * a grey image with alpha would hold the grey only).
 */
const pixels = (path: string) =>
  Effect.promise(async () => {
    const m = await sharp(path).metadata()
    const channels = []
    for (let c = 0; c < m.channels; c++)
      channels.push(
        await sharp(path)
          .extractChannel(c as 0 | 1 | 2 | 3)
          .raw()
          .toBuffer()
      )
    return { width: m.width, height: m.height, channels: m.channels, format: m.format, data: Buffer.concat(channels) }
  })

/** A step as the transform functions take it: `[function, arguments but the image]`. */
type Applied = readonly [Fn.Fn<any, any>, Record<string, unknown>]

/** The result of applying `steps` one by one, each a call of its own function (what a chain did before). */
const oneByOne = (image: string, steps: ReadonlyArray<Applied>) =>
  Effect.gen(function* () {
    let current = image
    for (const [fn, args] of steps) current = (yield* call(fn, { image: current, ...args })) as string
    return current
  })

/** The pipeline steps of the same transforms. */
const asSteps = (steps: ReadonlyArray<Applied>): ReadonlyArray<Image.PipelineStep> =>
  steps.map(([fn, args]) => {
    const op = fn.definition.name.slice("image.".length)
    const fields = fn.definition.params.slice(1).map((p) => [p.name, args[p.name] ?? null])
    return { op, ...Object.fromEntries(fields) } as Image.PipelineStep
  })

const F = Image.functions

// Chains whose result must equal applying their steps one by one, pixel for pixel (on lossless inputs).
const chains: ReadonlyArray<readonly [string, ReadonlyArray<Applied>]> = [
  [
    "resize, grayscale",
    [
      [F.resize, { width: 48, height: 36 }],
      [F.grayscale, {}]
    ]
  ],
  [
    "grayscale, resize (sharp would grey after resizing in one pass)",
    [
      [F.grayscale, {}],
      [F.resize, { width: 40 }]
    ]
  ],
  [
    "thumbnail, rotate 90, flop",
    [
      [F.thumbnail, { size: 33 }],
      [F.rotate, { degrees: 90 }],
      [F.flop, {}]
    ]
  ],
  [
    "flip, flip (sharp would flip once in one pass)",
    [
      [F.flip, {}],
      [F.flip, {}]
    ]
  ],
  [
    "crop, resize contain, rotate 30",
    [
      [F.crop, { left: 3, top: 5, width: 30, height: 20 }],
      [F.resize, { width: 25, height: 25, fit: "contain" }],
      [F.rotate, { degrees: 30 }]
    ]
  ],
  [
    "convert RGBA, resize, convert RGB",
    [
      [F.convert, { mode: "RGBA" }],
      [F.resize, { width: 21, height: 13, fit: "fill" }],
      [F.convert, { mode: "RGB" }]
    ]
  ],
  [
    "resize, crop, convert to WebP, grayscale",
    [
      [F.resize, { width: 40, height: 40 }],
      [F.crop, { left: 4, top: 4, width: 30, height: 20 }],
      [F.convert, { format: "webp" }],
      [F.grayscale, {}]
    ]
  ]
]

describe("Image pipelines", () => {
  const img = new Expr.Expr({ _tag: "Column", id: 1, name: "img" }, Column.Image.type) as unknown as Media.ImageExpr
  const w = new Expr.Expr<number>({ _tag: "Column", id: 2, name: "w" }, Column.Int.type)

  it("a chain of transforms is one call of image.pipeline, by methods or by functions alike", () => {
    const byMethods = img.resize({ width: 64 }).grayscale().rotate(90)
    const node = byMethods.node
    assert.strictEqual(node._tag, "Call")
    if (node._tag !== "Call") return
    assert.strictEqual(node.fn, "image.pipeline")
    assert.deepStrictEqual(node.args[0], img.node)
    assert.deepStrictEqual(node.args[1], {
      _tag: "Literal",
      value: [{ op: "resize", width: 64, height: null, fit: null }, { op: "grayscale" }, { op: "rotate", degrees: 90 }],
      type: { kind: "Json" }
    })
    // No call nested in it.
    assert.isFalse(node.args.some((a) => a._tag === "Call"))
    const byFunctions = Image.rotate(Image.grayscale(Image.resize(img, { width: 64 })), 90)
    assert.strictEqual(Expr.show(byFunctions.node), Expr.show(node))
    const byBoth = Image.grayscale(img.resize({ width: 64 })).rotate(90)
    assert.strictEqual(Expr.show(byBoth.node), Expr.show(node))
  })

  it("a transform of a column or a path is its own function's call; one with a computed argument is not fused", () => {
    const single = img.resize({ width: 64 }).node
    assert.isTrue(single._tag === "Call" && single.fn === "image.resize")
    const ofPath = Image.grayscale(fx.rgb).node
    assert.isTrue(ofPath._tag === "Call" && ofPath.fn === "image.grayscale")
    // The width comes from a column: resize stays a call, of the grayscale call.
    const computed = img.grayscale().resize({ width: w }).node
    assert.isTrue(computed._tag === "Call" && computed.fn === "image.resize")
    if (computed._tag !== "Call") return
    const inner = computed.args[0]!
    assert.isTrue(inner._tag === "Call" && inner.fn === "image.grayscale")
    // What follows it is fused again, after it.
    const after = img.grayscale().resize({ width: w }).flip().flop().node
    assert.isTrue(after._tag === "Call" && after.fn === "image.pipeline")
    if (after._tag !== "Call") return
    assert.isTrue(after.args[0]!._tag === "Call" && after.args[0].fn === "image.resize")
    // blend (two images) is not a step.
    const blended = img.resize({ width: 8 }).blend(fx.rgb, { opacity: 0.5 }).node
    assert.isTrue(blended._tag === "Call" && blended.fn === "image.blend")
  })

  it("a reading function of a chain reads the pipeline's result (its own call); of a column, the plain one", () => {
    const chain = img.resize({ width: 64 }).grayscale()
    const fns = [chain.width(), chain.height(), chain.metadata(), chain.toBase64(), chain.toDataUrl({ format: "png" })]
    assert.deepStrictEqual(
      fns.map((e) => (e.node._tag === "Call" ? e.node.fn : e.node._tag)),
      [
        "image.pipelineWidth",
        "image.pipelineHeight",
        "image.pipelineMetadata",
        "image.pipelineToBase64",
        "image.pipelineToDataUrl"
      ]
    )
    const one = img.thumbnail({ size: 8 }).width().node
    assert.isTrue(one._tag === "Call" && one.fn === "image.pipelineWidth")
    const plain = img.width().node
    assert.isTrue(plain._tag === "Call" && plain.fn === "image.width")
  })

  it.effect("a pipeline gives the pixels, size, channels and format of its steps applied one by one", () =>
    Effect.gen(function* () {
      for (const [name, steps] of chains) {
        for (const source of [fx.rgb, fx.rgba, fx.grey, fx.greyAlpha]) {
          const expected = yield* oneByOne(source, steps)
          const home = NodePath.join(dir, "fused")
          const before = filesIn(NodePath.join(home, "media"))
          const fused = yield* call(F.pipeline, { image: source, steps: asSteps(steps) }, home)
          const made = added(before, filesIn(NodePath.join(home, "media")))
          // One file, the result (none when an earlier case made the same one).
          assert.deepStrictEqual(made, before.has(fused) ? [] : [fused], `${name} on ${source}: files`)
          assert.strictEqual(NodePath.extname(fused), NodePath.extname(expected), `${name} on ${source}: format`)
          const [a, b] = [yield* pixels(fused), yield* pixels(expected)]
          assert.deepStrictEqual(
            { ...a, data: a.data.equals(b.data) },
            { ...b, data: true },
            `${name} on ${source}: pixels`
          )
        }
      }
    })
  )

  it.effect("the output format: the input's (JPEG stays JPEG), else the last one asked for", () =>
    Effect.gen(function* () {
      const steps = [
        [F.resize, { width: 80 }],
        [F.grayscale, {}]
      ] as const
      const fromJpeg = yield* call(F.pipeline, { image: fx.photo, steps: asSteps(steps) })
      const expected = yield* oneByOne(fx.photo, steps)
      const [a, b] = [yield* pixels(fromJpeg), yield* pixels(expected)]
      assert.deepStrictEqual([a.format, a.width, a.height, a.channels], [b.format, b.width, b.height, b.channels])
      assert.strictEqual(NodePath.extname(fromJpeg), ".jpg")
      // One JPEG encode instead of two: closer to the exact result (the steps on the decoded pixels, kept
      // lossless, encoded once) than the step-by-step one.
      const lossless = NodePath.join(dir, "photo-decoded.png")
      yield* Effect.promise(() => sharp(fx.photo).png().toFile(lossless))
      const exact = yield* pixels(yield* oneByOne(lossless, steps))
      const distance = (x: typeof a) => x.data.reduce((sum, v, i) => sum + Math.abs(v - exact.data[i]!), 0)
      assert.isBelow(distance(a), distance(b))
      const converted = yield* call(F.pipeline, {
        image: fx.rgb,
        steps: asSteps([
          [F.convert, { format: "jpg" }],
          [F.flip, {}],
          [F.convert, { format: "webp" }],
          [F.flop, {}]
        ])
      })
      assert.strictEqual(NodePath.extname(converted), ".webp")
      assert.strictEqual((yield* pixels(converted)).format, "webp")
    })
  )

  it.effect("reading functions of a pipeline give what they give for its stored result", () =>
    Effect.gen(function* () {
      const steps = asSteps([
        [F.resize, { width: 40, height: 30 }],
        [F.grayscale, {}]
      ])
      const stored = yield* call(F.pipeline, { image: fx.rgba, steps })
      const home = NodePath.join(dir, "reading")
      const before = filesIn(NodePath.join(home, "media"))
      const read = (fn: Fn.Fn<any, any>, args: Record<string, unknown> = {}) =>
        call(fn, { image: fx.rgba, steps, ...args }, home)
      assert.deepStrictEqual(yield* read(F.pipelineMetadata), yield* call(F.metadata, { image: stored }))
      assert.strictEqual(yield* read(F.pipelineWidth), 40)
      assert.strictEqual(yield* read(F.pipelineHeight), 30)
      assert.strictEqual(yield* read(F.pipelineToBase64), yield* call(F.toBase64, { image: stored }))
      assert.strictEqual(yield* read(F.pipelineToDataUrl), yield* call(F.toDataUrl, { image: stored }))
      assert.strictEqual(
        yield* read(F.pipelineToDataUrl, { format: "jpeg" }),
        yield* call(F.toDataUrl, { image: stored, format: "jpeg" })
      )
      assert.deepStrictEqual(added(before, filesIn(NodePath.join(home, "media"))), [], "nothing is stored")
    })
  )

  it.effect("invalid arguments in a chain fail as the step alone does: a typed MediaError naming the file", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<Applied> = [
        [F.convert, { mode: "CMYK" }],
        [F.convert, { format: "bmp" }],
        [F.resize, {}],
        [F.resize, { width: 10, fit: "stretch" }],
        [F.resize, { width: -5 }],
        [F.crop, { left: 100, top: 0, width: 50, height: 10 }]
      ]
      for (const step of cases) {
        const alone = yield* failureOf(call(step[0], { image: fx.rgb, ...step[1] }))
        const chained = yield* failureOf(
          call(F.pipeline, { image: fx.rgb, steps: asSteps([[F.flip, {}], step, [F.grayscale, {}]]) })
        )
        assert.strictEqual(chained._tag, "MediaError")
        assert.strictEqual(chained.reason, "InvalidArgument", chained.message)
        assert.strictEqual(chained.path, fx.rgb)
        assert.strictEqual(chained.message, alone.message)
        assert.include(chained.message, fx.rgb)
      }
      // The reading functions of a chain check alike.
      const unknownMode = yield* failureOf(
        call(F.pipelineWidth, { image: fx.rgb, steps: asSteps([[F.convert, { mode: "P" }]]) })
      )
      assert.strictEqual(unknownMode.message, `Invalid operation on ${fx.rgb}: unknown colour mode "P"`)
      // Malformed steps (a hand-edited catalog) are refused naming the file.
      const malformed = yield* failureOf(call(F.pipeline, { image: fx.rgb, steps: [{ op: "sharpen" }] }))
      assert.strictEqual(malformed.reason, "InvalidArgument")
      assert.include(malformed.message, fx.rgb)
      const empty = yield* failureOf(call(F.pipeline, { image: fx.rgb, steps: [] }))
      assert.strictEqual(empty.message, `Invalid operation on ${fx.rgb}: a pipeline needs at least one step`)
      // A missing or undecodable input is NotFound or InvalidFormat, as for one step.
      const steps = asSteps([
        [F.flip, {}],
        [F.flop, {}]
      ])
      const missing = yield* failureOf(call(F.pipeline, { image: fx.missing, steps }))
      assert.deepStrictEqual([missing.reason, missing.path], ["NotFound", fx.missing])
      const text = yield* failureOf(call(F.pipeline, { image: fx.text, steps }))
      assert.deepStrictEqual([text.reason, text.path], ["InvalidFormat", fx.text])
    })
  )
})

const rows = () => [
  { name: "rgb", img: fx.rgb },
  { name: "rgba", img: fx.rgba },
  { name: "grey", img: fx.grey },
  { name: "greyAlpha", img: fx.greyAlpha }
]

/** Runs a test body with the media store under the test database's home; passes the store's root. */
const withStore = <A, E, R>(body: (media: string) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.service(Database.Database), ({ home }) =>
    body(NodePath.join(home, "media")).pipe(Effect.provide(MediaStore.layer(home)))
  )

Harness.forEachBackend("Image pipelines in computed columns", (test) => {
  test("a 3-step chain writes one file per row, with the pixels of its steps applied one by one", () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        yield* t.insert(rows())
        const before = filesIn(media)
        const t2 = yield* t.addComputedColumn("small", t.c.img.resize({ width: 48, height: 40 }).grayscale().rotate(90))
        const made = added(before, filesIn(media))
        const result = yield* t2.orderBy("name").collect()
        assert.strictEqual(made.length, 4, "one file per row, no intermediate files")
        assert.deepStrictEqual([...made].sort(), result.map((r) => r.small!.uri).sort())
        const steps: ReadonlyArray<Applied> = [
          [F.resize, { width: 48, height: 40 }],
          [F.grayscale, {}],
          [F.rotate, { degrees: 90 }]
        ]
        for (const r of result) {
          const expected = yield* pixels(yield* oneByOne(r.img.uri, steps))
          const actual = yield* pixels(r.small!.uri)
          assert.deepStrictEqual({ ...actual, data: actual.data.equals(expected.data) }, { ...expected, data: true })
          assert.deepStrictEqual([actual.width, actual.height], [40, 48])
        }

        // Rows inserted later, into the table as read back from the catalog: one file each as well.
        const reopened = yield* Table.get("pictures")
        const beforeInsert = filesIn(media)
        yield* reopened.insert([
          { name: "photo", img: fx.photo },
          { name: "rgb again", img: fx.rgb }
        ])
        assert.strictEqual(added(beforeInsert, filesIn(media)).length, 1, "the photo's result (rgb's exists)")

        // A reading function at the end of a chain stores nothing, in a computed column or a query.
        const beforeWidth = filesIn(media)
        const img = reopened.c.img as unknown as Media.ImageExpr
        const t3 = yield* reopened.addComputedColumn("w", img.resize({ width: 20 }).grayscale().width())
        const widths = yield* t3
          .select((c) => ({
            name: c.name,
            w: c.w,
            url: Image.toDataUrl(Image.thumbnail(c.img as unknown as Media.ImageExpr, { size: 8 }).flop())
          }))
          .orderBy("name")
          .collect()
        assert.deepStrictEqual(
          widths.map((r) => r.w),
          [20, 20, 20, 20, 20, 20]
        )
        assert.isTrue(widths.every((r) => r.url.startsWith("data:image/")))
        assert.deepStrictEqual(added(beforeWidth, filesIn(media)), [])
      })
    ))

  test("nested calls of the transform functions (as older catalogs hold them) still run, step by step", () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        yield* t.insert(rows())
        const before = filesIn(media)
        const nested = F.grayscale({ image: F.resize({ image: t.c.img, width: 30, height: null, fit: null }) })
        assert.isTrue(nested.node._tag === "Call" && nested.node.fn === "image.grayscale")
        const t2 = yield* t.addComputedColumn("gray", nested)
        const made = added(before, filesIn(media))
        assert.strictEqual(made.length, 8, "an intermediate file per row, as before")
        const fused = yield* t2.addComputedColumn("fused", t2.c.img.resize({ width: 30 }).grayscale())
        for (const r of yield* fused.collect()) {
          assert.strictEqual(r.fused!.uri, r.gray!.uri, "the same content: the same file")
        }
      })
    ))

  test('an invalid step in a chain is a MediaError naming the file (onError "record"); nothing is stored for it', () =>
    withStore((media) =>
      Effect.gen(function* () {
        const t = yield* Table.create("pictures", { name: Column.String, img: Column.Image })
        // 24 x 24 after the resize: the region is outside.
        yield* t.insert(rows())
        const before = filesIn(media)
        const t2 = yield* t.addComputedColumn(
          "cut",
          t.c.img.resize({ width: 24, height: 24 }).crop({ left: 10, top: 10, width: 20, height: 20 }).flop(),
          { onError: "record" }
        )
        const result = yield* t2
          .select((c) => ({ name: c.name, img: c.img, cut: c.cut, type: c.cut.errorType, message: c.cut.errorMessage }))
          .collect()
        assert.strictEqual(result.length, 4)
        for (const r of result) {
          assert.isNull(r.cut)
          assert.strictEqual(r.type, "MediaError")
          assert.strictEqual(r.message, `Invalid operation on ${r.img.uri}: extract_area: bad extract area`)
        }
        assert.deepStrictEqual(added(before, filesIn(media)), [])
        // An unknown colour mode fails alike, with the message of the step alone.
        const t3 = yield* t2.addComputedColumn(
          "bad",
          t2.c.img.resize({ width: 24 }).convert({ mode: "P" as Image.Mode }),
          { onError: "record" }
        )
        const [first] = yield* t3
          .select((c) => ({ img: c.img, message: c.bad.errorMessage }))
          .limit(1)
          .collect()
        assert.strictEqual(first!.message, `Invalid operation on ${first!.img.uri}: unknown colour mode "P"`)
        assert.deepStrictEqual(added(before, filesIn(media)), [])
      })
    ))
})
