/**
 * Iterator: a function that turns one base row into many view rows (frames of
 * a video, chunks of a document, segments of audio, tiles of an image).
 *
 * An iterator view (`Table.createView(path, base, { iterator })`) has one row
 * per component, with a `pos` column (the component's position within its
 * base row) and the iterator's output columns, beside the base's columns.
 * Like functions, iterators are registered by name and version so that a
 * view read back from the catalog finds its iterator.
 */
import { type Effect, Stream } from "effect"
import type * as Column from "./Column.ts"
import type * as Expr from "./Expr.ts"
import * as Params from "./internal/params.ts"
import type * as Media from "./Media.ts"

/** An output column of an iterator's components. */
export type Output = Params.Param

export interface Definition {
  readonly name: string
  readonly version: number
  readonly params: ReadonlyArray<Params.Param>
  readonly outputs: ReadonlyArray<Output>
  /** The components of one base row, in order. */
  readonly run: (args: ReadonlyArray<unknown>) => Stream.Stream<Record<string, unknown>, unknown>
  /**
   * Checks the arguments known when the view is made (its constants, e.g. the
   * options; `undefined` for arguments read from base rows), so a bad option
   * fails `createView` rather than the first insert.
   */
  readonly check?: ((args: ReadonlyArray<unknown>) => Effect.Effect<void, unknown>) | undefined
}

/** An iterator applied to a base row's values: what `createView`'s `iterator` option takes. */
export interface Call<O extends Record<string, Column.Any>> {
  readonly _tag: "IteratorCall"
  readonly fn: string
  readonly version: number
  readonly args: ReadonlyArray<Expr.Node>
  readonly "~outputs": O
}

type ParamSpecs = Record<string, Column.Any>
type ArgsOf<P extends ParamSpecs> = { readonly [K in keyof P]: Column.ValueOf<P[K]> }
type CallArgs<P extends ParamSpecs> = { readonly [K in keyof P]: Expr.Arg<Column.ValueOf<P[K]>> }
/** A component: its output values, a media value being the path or URL of the file it made. */
type RowOf<O extends Record<string, Column.Any>> = { readonly [K in keyof O]: Media.Plain<Column.ValueOf<O[K]>> }

const registry = new Map<string, Definition>()
const key = (name: string, version: number) => `${name}@${version}`

/** The iterator registered under a name and version in this process, if any. */
export const lookup = (name: string, version: number): Definition | undefined => registry.get(key(name, version))

/** Names reserved for the position column that every iterator view has. */
export const POSITION = "pos"

/**
 * Defines an iterator. `run` returns the components of one base row as a
 * Stream (or an Effect of an array); each has the `outputs` columns.
 */
export const make = <P extends ParamSpecs, O extends Record<string, Column.Any>>(options: {
  readonly name: string
  readonly version?: number | undefined
  readonly params: P
  readonly outputs: O
  readonly run: (args: ArgsOf<P>) => Stream.Stream<RowOf<O>, unknown> | Effect.Effect<ReadonlyArray<RowOf<O>>, unknown>
  /** Checks the arguments that are constants of the view (the others are `undefined`). */
  readonly check?: ((args: Partial<ArgsOf<P>>) => Effect.Effect<void, unknown>) | undefined
}): ((args: CallArgs<P>) => Call<O>) & { readonly definition: Definition } => {
  const params = Params.declare(options.params)
  const check = options.check
  const definition: Definition = {
    name: options.name,
    version: options.version ?? 1,
    params,
    outputs: Params.declare(options.outputs),
    ...(check === undefined ? {} : { check: (args) => check(Params.toObject(params, args)) }),
    run: (args) => {
      const out = options.run(Params.toObject(params, args))
      return (Stream.isStream(out) ? out : Stream.fromIterableEffect(out)) as Stream.Stream<
        Record<string, unknown>,
        unknown
      >
    }
  }
  registry.set(key(definition.name, definition.version), definition)
  const call = (args: CallArgs<P>): Call<O> => ({
    _tag: "IteratorCall",
    fn: definition.name,
    version: definition.version,
    args: Params.argNodes(definition.name, params, args),
    "~outputs": undefined as unknown as O
  })
  return Object.assign(call, { definition })
}
