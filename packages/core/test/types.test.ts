/**
 * Type tests: they pin the inferred insert and row types. `tsc` (npm run
 * typecheck, run in CI) fails when an inference regresses; vitest runs the
 * file too so that the runtime parts of the assertions execute.
 */
import { describe, expectTypeOf, it } from "@effect/vitest"
import { Column, type Expr, Fn, type Media, type Query, type Table } from "@tessera/core"
import type { Effect } from "effect"
import { Schema } from "effect"

const Meta = Schema.Struct({ a: Schema.Struct({ b: Schema.Number }), tags: Schema.Array(Schema.String) })

const schema = {
  title: Column.String,
  year: Column.nullable(Column.Int),
  score: Column.Float,
  seen: Column.Timestamp,
  meta: Column.Json(Meta),
  embedding: Column.nullable(Column.Vector(3)),
  poster: Column.Image
}

type Films = Table.Table<typeof schema>

describe("type inference", () => {
  it("insert rows have the data columns, nullable ones optional", () => {
    type Insert = Parameters<Films["insert"]>[0][number]
    expectTypeOf<Insert>().toEqualTypeOf<{
      readonly title: string
      readonly score: number
      readonly seen: string | number | Date
      readonly meta: { readonly a: { readonly b: number }; readonly tags: ReadonlyArray<string> }
      readonly poster: string | URL | Uint8Array | Media.MediaRef<"Image">
      readonly year?: number | bigint | null
      readonly embedding?: Float32Array | ReadonlyArray<number> | null
    }>()
    // @ts-expect-error: title is required
    const missing: Insert = { score: 1, seen: new Date(), meta: { a: { b: 1 }, tags: [] }, poster: "x" }
    // @ts-expect-error: year must be a number
    const wrong: Insert = { title: "t", year: "1999", score: 1, seen: 0, meta: { a: { b: 1 }, tags: [] }, poster: "x" }
    void missing
    void wrong
  })

  it("collected rows have every column with its TypeScript type", () => {
    type Row = Films extends { collect(): Effect.Effect<ReadonlyArray<infer R>, any, any> } ? R : never
    expectTypeOf<Row>().toEqualTypeOf<{
      readonly title: string
      readonly year: number | null
      readonly score: number
      readonly seen: Date
      readonly meta: { readonly a: { readonly b: number }; readonly tags: ReadonlyArray<string> }
      readonly embedding: Float32Array | null
      readonly poster: Media.MediaRef<"Image">
    }>()
  })

  it("computed columns join the row type and stay out of inserts", () => {
    const add = Fn.make({
      name: "types_add",
      params: { a: Column.Int, b: Column.Float },
      returns: Column.Float,
      run: ({ a, b }) => a + b
    })
    type T2 = Table.Table<typeof schema & { readonly total: Column.Computed<number> }>
    type Insert2 = Parameters<T2["insert"]>[0][number]
    expectTypeOf<keyof Insert2>().toEqualTypeOf<"title" | "year" | "score" | "seen" | "meta" | "embedding" | "poster">()
    type Row2 = T2 extends { collect(): Effect.Effect<ReadonlyArray<infer R>, any, any> } ? R : never
    expectTypeOf<Row2["total"]>().toEqualTypeOf<number | null>()
    expectTypeOf(add).parameter(0).toHaveProperty("a")
    expectTypeOf<ReturnType<typeof add>>().toEqualTypeOf<Expr.Expr<number>>()
  })

  it("select infers the output row from its expressions; JSON paths are typed", () => {
    const f = (t: Films) =>
      t
        .select((c) => ({
          name: c.title.upper(),
          next: c.year.plus(1),
          b: c.meta.a.b,
          isNew: c.year.gt(2000),
          err: c.title.errorType
        }))
        .collect()
    type R = Effect.Success<ReturnType<typeof f>>[number]
    expectTypeOf<R>().toEqualTypeOf<{
      readonly name: string
      readonly next: number | null
      readonly b: number
      readonly isNew: boolean | null
      readonly err: string | null
    }>()
    // @ts-expect-error: arithmetic on a string column does not typecheck
    const bad = (t: Films) => t.c.title.plus(1)
    void bad
  })

  it("media values: references in expressions and functions, handles in results, images as bytes on insert", () => {
    const seen: Array<string> = []
    const thumb = Fn.make({
      name: "types_thumb",
      params: { image: Column.Image, size: Column.Int },
      returns: Column.Image,
      run: ({ image, size }) => {
        // Functions receive the reference (a string) and return a path.
        expectTypeOf(image).toEqualTypeOf<Media.Uri<"Image">>()
        seen.push(image)
        return `${image}.${size}.png`
      }
    })
    // A call returning an image is an image expression (with the image methods media installs).
    expectTypeOf<ReturnType<typeof thumb>>().toEqualTypeOf<Media.ImageExpr>()
    const f = (t: Films) =>
      t.select((c) => ({ poster: c.poster, small: thumb({ image: c.poster, size: 64 }) })).collect()
    type R = Effect.Success<ReturnType<typeof f>>[number]
    expectTypeOf<R>().toEqualTypeOf<{
      readonly poster: Media.MediaRef<"Image">
      readonly small: Media.MediaRef<"Image">
    }>()
    // Column references of an image column are image expressions; others are not.
    expectTypeOf<Query.Columns<typeof schema>["poster"]>().toEqualTypeOf<
      Expr.ColumnRef<Media.Uri<"Image">> & Media.ImageMethods
    >()
    expectTypeOf<Query.Columns<typeof schema>["title"]>().toEqualTypeOf<Expr.ColumnRef<string>>()
    // Media arguments take paths, URLs and handles.
    thumb({ image: "/tmp/a.png", size: 1 })
    thumb({ image: new URL("https://example.com/a.png"), size: 1 })
    // @ts-expect-error: a number is not an image
    thumb({ image: 42, size: 1 })
    type Insert = Parameters<Films["insert"]>[0][number]
    const bytes: Insert["poster"] = new Uint8Array([1, 2, 3])
    void bytes
    // @ts-expect-error: only image columns take bytes
    const video: Column.InsertRow<{ v: typeof Column.Video }>["v"] = new Uint8Array([1])
    void video
  })
})
