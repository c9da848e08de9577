/**
 * Parameters declared as column specs (`{ text: Column.String }`), as
 * functions (`Fn`) and iterators (`Iterator`) take them: their catalog form,
 * the call's argument expressions, and the object `run` receives.
 */
import type * as Column from "../Column.ts"
import type * as ColumnType from "../ColumnType.ts"
import * as Expr from "../Expr.ts"

export interface Param {
  readonly name: string
  readonly type: ColumnType.ColumnType
  readonly nullable: boolean
}

/** The parameters, in declaration order. */
export const declare = (specs: Record<string, Column.Any>): ReadonlyArray<Param> =>
  Object.entries(specs).map(([name, spec]) => ({ name, type: spec.type, nullable: spec.nullable }))

/**
 * A call's argument expressions, in parameter order, from its named arguments
 * (values typed after their parameters). A missing required argument is a
 * mistake in the calling code: it throws, naming `owner` and the parameter.
 */
export const argNodes = (
  owner: string,
  params: ReadonlyArray<Param>,
  args: Record<string, unknown>
): ReadonlyArray<Expr.Node> =>
  params.map((param) => {
    if (!(param.name in args) && !param.nullable) throw new Error(`${owner}: missing argument ${param.name}`)
    const value = args[param.name]
    return Expr.toExpr(value === undefined ? null : value, param.type).node
  })

/** The named arguments `run` receives, from a row of values in parameter order. */
export const toObject = (params: ReadonlyArray<Param>, row: ReadonlyArray<unknown>): any => {
  const out: Record<string, unknown> = {}
  for (let i = 0; i < params.length; i++) out[params[i]!.name] = row[i]
  return out
}
