/**
 * Column: schema-as-code. `Column.Int`, `Column.Json(schema)`,
 * `Column.Vector(384)`, `Column.nullable(...)` describe a table's data
 * columns and carry the TypeScript types from which `Table` infers its insert
 * and row types (the way Drizzle's `$inferInsert` / `$inferSelect` do).
 */
import type { Schema } from "effect"
import * as ColumnType from "./ColumnType.ts"
import type * as Media from "./Media.ts"

/** A data column: its type, nullability, and the TypeScript types of its values. */
export interface Column<out T, out I = T, out N extends boolean = false> {
  readonly _tag: "Column"
  readonly type: ColumnType.ColumnType
  readonly nullable: N
  /** The Effect Schema of a typed Json column, when given. */
  readonly schema?: Schema.Top | undefined
  readonly "~type": T
  readonly "~input": I
}

/** A computed column in a table's schema type: present in rows, absent from inserts. */
export interface Computed<out T> {
  readonly _tag: "Computed"
  readonly "~type": T
}

export type Any = Column<any, any, boolean>
export type Spec = Any | Computed<any>
export type Specs = Record<string, Spec>

const make = <T, I = T>(type: ColumnType.ColumnType, schema?: Schema.Top): Column<T, I, false> =>
  ({ _tag: "Column", type, nullable: false, ...(schema === undefined ? {} : { schema }) }) as Column<T, I, false>

export const String: Column<string> = make(ColumnType.String)
export const Int: Column<number, number | bigint> = make(ColumnType.Int)
export const Float: Column<number> = make(ColumnType.Float)
export const Bool: Column<boolean> = make(ColumnType.Bool)
/** A point in time; accepts a Date, an ISO string or epoch milliseconds. */
export const Timestamp: Column<Date, Date | string | number> = make(ColumnType.Timestamp)
/** A calendar date as `YYYY-MM-DD`; accepts a Date (its UTC day) too. */
export const Date: Column<string, string | globalThis.Date> = make(ColumnType.Date)
export const UUID: Column<string> = make(ColumnType.UUID)
export const Binary: Column<Uint8Array> = make(ColumnType.Binary)
/**
 * Media columns hold references: a local path, a `file://` or an `http(s)://`
 * URL (`Media.Uri` in expressions and functions; queries return `Media.MediaRef`
 * handles). They take a path or URL, or a handle from a query; images also
 * take bytes, which are written to the media store. Local files are checked on
 * write (see `Table.insert`'s `onError`).
 */
export const Image: Column<Media.Uri<"Image">, Media.Input<"Image">> = make(ColumnType.Image)
export const Video: Column<Media.Uri<"Video">, Media.Input<"Video">> = make(ColumnType.Video)
export const Audio: Column<Media.Uri<"Audio">, Media.Input<"Audio">> = make(ColumnType.Audio)
export const Document: Column<Media.Uri<"Document">, Media.Input<"Document">> = make(ColumnType.Document)

/** A Json column: its references support JSON path access (`c.meta.a.b`). */
export interface JsonColumn<out T, out N extends boolean = false> extends Column<T, T, N> {
  readonly "~json": true
}

/** A JSON column, optionally typed (and validated on write) by an Effect Schema. */
export function Json(): JsonColumn<unknown>
export function Json<S extends Schema.Top>(schema: S): JsonColumn<S["Type"]>
export function Json(schema?: Schema.Top): JsonColumn<unknown> {
  const type = ColumnType.Json(schema)
  if (schema !== undefined) ColumnType.attachSchema(type, schema)
  return make(type, schema) as JsonColumn<unknown>
}

type DtypeValue<D extends ColumnType.ArrayDtype> = D extends "Float" | "Int"
  ? number
  : D extends "Bool"
    ? boolean
    : string

type Nested<V, Shape extends ReadonlyArray<unknown>> = Shape extends readonly [unknown, ...infer Rest]
  ? ReadonlyArray<Nested<V, Rest>>
  : V

/** An n-dimensional array; `null` in the shape means "any length". */
export const Array = <const Shape extends ReadonlyArray<number | null>, D extends ColumnType.ArrayDtype>(
  shape: Shape,
  dtype: D
): Column<Nested<DtypeValue<D>, Shape>> => make(ColumnType.Array(shape, dtype))

/** A fixed-dimension embedding, stored as pgvector `vector(dim)`. */
export const Vector = (dim: number): Column<Float32Array, Float32Array | ReadonlyArray<number>> =>
  make(ColumnType.Vector(dim))

/** Makes a column nullable: optional on insert, `T | null` in rows. */
export function nullable<T>(column: JsonColumn<T, boolean>): JsonColumn<T, true>
export function nullable<T, I>(column: Column<T, I, boolean>): Column<T, I, true>
export function nullable<T, I>(column: Column<T, I, boolean>): Column<T, I, true> {
  return { ...column, nullable: true }
}

/** The TypeScript type of a column's values in expressions and functions (a media value is its `Media.Uri`). */
export type ValueOf<S extends Spec> =
  S extends Column<infer T, any, infer N>
    ? N extends true
      ? T | null
      : T
    : S extends Computed<infer T>
      ? T | null
      : never

/** The TypeScript type of values read from a column spec (a media value is a `Media.MediaRef` handle). */
export type TypeOf<S extends Spec> = Media.Read<ValueOf<S>>

/** The TypeScript type accepted on insert for a data column. */
export type InputOf<S extends Spec> = S extends Column<any, infer I, infer N> ? (N extends true ? I | null : I) : never

type RequiredKeys<S extends Specs> = {
  [K in keyof S]: S[K] extends Column<any, any, false> ? K : never
}[keyof S]
type OptionalKeys<S extends Specs> = {
  [K in keyof S]: S[K] extends Column<any, any, true> ? K : never
}[keyof S]

type Simplify<A> = { [K in keyof A]: A[K] } & {}

/** The row type of `insert`: data columns, nullable ones optional, computed ones absent. */
export type InsertRow<S extends Specs> = Simplify<
  { readonly [K in RequiredKeys<S>]: InputOf<S[K]> } & { readonly [K in OptionalKeys<S>]?: InputOf<S[K]> }
>

/** The row type of a query over every column. */
export type Row<S extends Specs> = Simplify<{ readonly [K in keyof S]: TypeOf<S[K]> }>
