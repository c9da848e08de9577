/**
 * Fn: user functions that computed columns and queries call. A function has a
 * name and version (what the catalog persists), typed parameters and result,
 * its error type, a retry `Schedule`, a concurrency limit, a batch size, a
 * resource pool and a deterministic flag.
 *
 * Three ways to define one, all normalised to a batch invocation:
 * - `Fn.make`: a plain function of its arguments;
 * - `Fn.effect`: returns an Effect (typed failures are retried by `retry`);
 * - `Fn.batched`: takes a batch of argument rows, returns one result per row.
 *
 * Defining a function registers it in this process under its name and
 * version, so that expressions read back from the catalog resolve to it. A
 * table whose computed column calls a function this process does not have
 * still opens: the column reports `UnknownFunction`.
 */
import { type Duration, Effect, Schedule, Schema } from "effect"
import type * as Column from "./Column.ts"
import type * as ColumnType from "./ColumnType.ts"
import * as Expr from "./Expr.ts"
import type * as Media from "./Media.ts"
import * as Params from "./internal/params.ts"
import type * as Pool from "./Pool.ts"

export type Param = Params.Param

/** Raised (as a cell error) when a plain function throws. */
export class FunctionError extends Schema.TaggedError<FunctionError>()("FunctionError", {
  fn: Schema.String,
  errorType: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** What the engine needs to run a function, whatever way it was defined. */
export interface Definition {
  readonly name: string
  readonly version: number
  readonly params: ReadonlyArray<Param>
  readonly returns: ColumnType.ColumnType
  readonly deterministic: boolean
  /** How many invocations (batches) may run at once. */
  readonly concurrency: number
  /** How many rows one invocation takes (1 for row-at-a-time functions). */
  readonly batchSize: number
  readonly retry: Schedule.Schedule<unknown, unknown> | undefined
  /** The resource pool (rate limit) the function's calls share; defaults to its name. */
  readonly pool: string
  readonly batched: boolean
  /** How it was defined: a plain function has no effects outside the process. */
  readonly kind: "plain" | "effect" | "batched"
  /** Configured limits of the pool (applied when the pool is first used). */
  readonly rateLimit: Pool.Limits | undefined
  /**
   * Runs one batch of argument rows; succeeds with one result per row (a
   * `RowFailure` for a row that failed alone). It may use `Pool.CurrentPool`
   * to report rate-limit headers and `retry-after`s.
   */
  readonly invoke: (
    rows: ReadonlyArray<ReadonlyArray<unknown>>
  ) => Effect.Effect<ReadonlyArray<unknown>, unknown, Pool.CurrentPool>
  /** Estimates the tokens a batch will use, for token-per-minute pacing. */
  readonly estimateTokens?: ((rows: ReadonlyArray<ReadonlyArray<unknown>>) => number) | undefined
  /** The provider reports its limits in response headers: the pool's first request runs alone to learn them. */
  readonly rateLimitHeaders: boolean
  /**
   * For a batched function: whether a batch's failure (after its retries) may
   * be one bad row's (a provider's 400 for one over-long input, say). The
   * engine then runs the halves of the batch to find the rows at fault.
   */
  readonly isolateFailures?: ((error: unknown) => boolean) | undefined
}

type ParamSpecs = Record<string, Column.Any>
/** What `run` receives: the values, a media value being its path or URL. */
type ArgsOf<P extends ParamSpecs> = { readonly [K in keyof P]: Column.ValueOf<P[K]> }
type CallArgs<P extends ParamSpecs> = { readonly [K in keyof P]: Expr.Arg<Column.ValueOf<P[K]>> }
/** What `run` returns for a result column `C` (a media result is the path or URL of the file it made). */
type ResultOf<C extends Column.Any> = Media.Plain<Column.ValueOf<C>>

/** A defined function: call it with expressions to build a `Call` expression. */
export interface Fn<P extends ParamSpecs, R> {
  (args: CallArgs<P>): Expr.Of<R>
  readonly definition: Definition
}

interface CommonOptions<P extends ParamSpecs, C extends Column.Any, E> {
  readonly name: string
  /** The provider reports its limits in response headers (the function reports them to `Pool.CurrentPool`). */
  readonly rateLimitHeaders?: boolean | undefined
  /** Configured limits of the function's pool, for providers that send no rate-limit headers. */
  readonly rateLimit?: Pool.Limits | undefined
  /** Estimates the tokens a batch of argument rows will use (token-per-minute pacing). */
  readonly estimateTokens?: ((rows: ReadonlyArray<ArgsOf<P>>) => number) | undefined
  readonly version?: number | undefined
  readonly params: P
  readonly returns: C
  readonly deterministic?: boolean | undefined
  readonly concurrency?: number | undefined
  readonly retry?: Schedule.Schedule<unknown, E> | undefined
  readonly pool?: string | undefined
}

const registry = new Map<string, Definition>()
const key = (name: string, version: number) => `${name}@${version}`

/** Makes a function resolvable by name and version (defining one does this already). */
export const register = (definition: Definition): void => {
  registry.set(key(definition.name, definition.version), definition)
}

/** Forgets a function (for tests that simulate a process without it). */
export const unregister = (name: string, version: number): void => {
  registry.delete(key(name, version))
}

/** The function registered under a name and version in this process, if any. */
export const lookup = (name: string, version: number): Definition | undefined => registry.get(key(name, version))

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.:/-]*$/

/** An error's type and message as a cell records them. */
export const describeError = (error: unknown): { readonly type: string; readonly message: string } => {
  if (error instanceof FunctionError) return { type: error.errorType, message: error.message }
  if (typeof error === "object" && error !== null) {
    const tag = (error as { _tag?: unknown })._tag
    const message = (error as { message?: unknown }).message
    const type = typeof tag === "string" ? tag : error instanceof Error ? error.name : "Error"
    return { type, message: typeof message === "string" && message !== "" ? message : String(error) }
  }
  return { type: "Error", message: String(error) }
}

const build = <P extends ParamSpecs, C extends Column.Any>(
  options: CommonOptions<P, C, any>,
  kind: Definition["kind"],
  batchSize: number,
  invoke: Definition["invoke"],
  isolateFailures?: Definition["isolateFailures"]
): Fn<P, Column.ValueOf<C>> => {
  if (!NAME_RE.test(options.name)) {
    throw new Error(`Invalid function name ${JSON.stringify(options.name)}`)
  }
  const params = Params.declare(options.params)
  const definition: Definition = {
    name: options.name,
    version: options.version ?? 1,
    params,
    returns: options.returns.type,
    deterministic: options.deterministic ?? true,
    concurrency: Math.max(1, options.concurrency ?? (kind === "batched" ? 1 : 8)),
    batchSize: Math.max(1, batchSize),
    retry: options.retry as Schedule.Schedule<unknown, unknown> | undefined,
    pool: options.pool ?? options.name,
    batched: kind === "batched",
    kind,
    rateLimitHeaders: options.rateLimitHeaders ?? false,
    rateLimit: options.rateLimit,
    invoke,
    ...(isolateFailures === undefined ? {} : { isolateFailures }),
    estimateTokens:
      options.estimateTokens === undefined
        ? undefined
        : (rows) => options.estimateTokens!(rows.map((row) => Params.toObject(params, row)))
  }
  register(definition)
  const call = (args: CallArgs<P>): Expr.Of<Column.ValueOf<C>> =>
    new Expr.Expr(
      {
        _tag: "Call",
        fn: definition.name,
        version: definition.version,
        args: Params.argNodes(definition.name, params, args),
        type: definition.returns
      },
      definition.returns
    ) as Expr.Of<Column.ValueOf<C>>
  return Object.assign(call, { definition })
}

const toFunctionError = (name: string) => (cause: unknown) => {
  const { type, message } = describeError(cause)
  return new FunctionError({ fn: name, errorType: type, message, cause })
}

/** A plain function of its arguments. A thrown exception becomes the cell's error. */
export const make = <P extends ParamSpecs, C extends Column.Any>(
  options: CommonOptions<P, C, FunctionError> & { readonly run: (args: ArgsOf<P>) => ResultOf<C> }
): Fn<P, Column.ValueOf<C>> => {
  const params = Params.declare(options.params)
  return build(options, "plain", 1, (rows) =>
    Effect.try({
      try: () => rows.map((row) => options.run(Params.toObject(params, row))),
      catch: toFunctionError(options.name)
    })
  )
}

/** A function returning an Effect; its typed failures are retried by `retry`, then recorded. */
export const effect = <P extends ParamSpecs, C extends Column.Any, E>(
  options: CommonOptions<P, C, E> & {
    readonly run: (args: ArgsOf<P>) => Effect.Effect<ResultOf<C>, E, Pool.CurrentPool | never>
  }
): Fn<P, Column.ValueOf<C>> => {
  const params = Params.declare(options.params)
  return build(options, "effect", 1, (rows) => Effect.forEach(rows, (row) => options.run(Params.toObject(params, row))))
}

/**
 * One row's failure in a batch's results (`Fn.failRow(error)`): that row's cell
 * records the error, the batch's other rows keep their results. Failing the
 * whole batch instead (the run's own failure) fails every row of it.
 */
export class RowFailure {
  readonly error: unknown
  constructor(error: unknown) {
    this.error = error
  }
}

/** A batched function's result for a row that failed alone (see `RowFailure`). */
export const failRow = (error: unknown): RowFailure => new RowFailure(error)

/**
 * A function over a batch of argument rows, returning one result per row in
 * order; a row that fails alone has `Fn.failRow(error)` as its result.
 */
export const batched = <P extends ParamSpecs, C extends Column.Any, E>(
  options: CommonOptions<P, C, E> & {
    readonly batchSize: number
    /**
     * Which failures of a whole batch may be one bad row's: for those, the
     * engine runs the batch's halves (and theirs) to find the rows at fault,
     * whose cells record the error, while the other rows get their results.
     * When both halves fail alike, the failure is the batch's: all its rows
     * record it. Default: none (`Fn.failRow` is the way to fail one row).
     */
    readonly isolateFailures?: ((error: E) => boolean) | undefined
    readonly run: (
      rows: ReadonlyArray<ArgsOf<P>>
    ) => Effect.Effect<ReadonlyArray<ResultOf<C> | RowFailure>, E, Pool.CurrentPool | never>
  }
): Fn<P, Column.ValueOf<C>> => {
  const params = Params.declare(options.params)
  const isolate = options.isolateFailures
  return build(
    options,
    "batched",
    options.batchSize,
    (rows) =>
      options.run(rows.map((row) => Params.toObject(params, row))).pipe(
        Effect.flatMap((results) =>
          results.length === rows.length
            ? Effect.succeed(results)
            : Effect.fail(
                new FunctionError({
                  fn: options.name,
                  errorType: "InvalidOutput",
                  message: `${options.name} returned ${results.length} results for a batch of ${rows.length}`
                })
              )
        )
      ),
    isolate === undefined ? undefined : (error) => isolate(error as E)
  )
}

/** A schedule for `retry`: exponential backoff from `base`, at most `times` retries. */
export const retryExponential = (times: number, base: Duration.Input = "100 millis") =>
  Schedule.max([Schedule.exponential(base), Schedule.recurs(times)])
