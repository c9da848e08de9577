/**
 * Compute: evaluates computed columns over a batch of rows in the engine.
 *
 * For each target column (in dependency order) it runs the user functions
 * the expression calls, batched and concurrent as each function asks, with
 * its retry schedule; skips calls whose required argument is null; and gives
 * every row a `Cell`: a value, or an error with its type, message and attempt
 * count. A cell whose inputs failed fails with the same cause.
 */
import { Cause, Effect, Exit, Schema, Semaphore } from "effect"
import * as Catalog from "./Catalog.ts"
import * as ColumnType from "./ColumnType.ts"
import * as Evaluate from "./Evaluate.ts"
import * as Expr from "./Expr.ts"
import * as Fn from "./Fn.ts"
import * as Media from "./Media.ts"
import * as Pool from "./Pool.ts"
import * as ResultCache from "./ResultCache.ts"
import type { Cell } from "./Store.ts"

/** A computed column calls a function that this process does not have. */
export class UnknownFunctionError extends Schema.TaggedError<UnknownFunctionError>()("UnknownFunctionError", {
  table: Schema.String,
  column: Schema.String,
  functions: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** `onError: "abort"`: a cell failed, so the whole operation did. */
export class ComputeError extends Schema.TaggedError<ComputeError>()("ComputeError", {
  table: Schema.String,
  column: Schema.String,
  /** The index of the failing row in the operation's input (insert) or its row id (backfill). */
  row: Schema.Number,
  errorType: Schema.String,
  message: Schema.String
}) {}

/** The state of one row while its cells are computed. */
export interface WorkRow {
  /** Values by column id (data columns and already computed ones). */
  readonly values: Map<number, unknown>
  /** Errors by column id, for computed cells that failed. */
  readonly errors: Map<number, { readonly type: string; readonly message: string }>
}

type CallNode = Extract<Expr.Node, { _tag: "Call" }>

const done = (value: unknown, attempts: number): Cell => ({
  value,
  state: "done",
  errorType: null,
  errorMessage: null,
  attempts
})

const failed = (type: string, message: string, attempts: number): Cell => ({
  value: null,
  state: "error",
  errorType: type,
  errorMessage: message,
  attempts
})

/** Post-order list of a tree's calls: inner calls before the calls that use them. */
const callsInnerFirst = (node: Expr.Node): ReadonlyArray<CallNode> => {
  const out: Array<CallNode> = []
  const visit = (n: Expr.Node) => {
    for (const child of Expr.children(n)) visit(child)
    if (n._tag === "Call") out.push(n)
  }
  visit(node)
  return out
}

interface CallOutcome {
  readonly value?: unknown
  readonly error?: { readonly type: string; readonly message: string }
  readonly attempts: number
}

/** Checks that every function the columns need is registered here. */
export const checkFunctions = (
  table: Catalog.TableMeta,
  columns: ReadonlyArray<Catalog.ColumnMeta>
): Effect.Effect<void, UnknownFunctionError> => {
  for (const column of columns) {
    const expr = column.computed ? Catalog.inlineUnstored(table, column.computed.expr) : undefined
    const missing = expr
      ? Expr.calls(expr)
          .filter((call) => Fn.lookup(call.fn, call.version) === undefined)
          .map((call) => `${call.fn}@${call.version}`)
      : []
    if (missing.length > 0) {
      return Effect.fail(
        new UnknownFunctionError({
          table: table.path,
          column: column.name,
          functions: [...new Set(missing)],
          message: `Column ${column.name} of ${table.path} calls ${[...new Set(missing)].join(", ")}, which this process does not define. Import the module that defines it (Fn.make registers it) before using the table.`
        })
      )
    }
  }
  return Effect.void
}

/**
 * Evaluates an expression for every row, running its function calls as they
 * ask. Rows whose inputs failed get that failure. Returns one outcome per row.
 */
export const evaluateRows = Effect.fnUntraced(function* (
  table: Catalog.TableMeta,
  node: Expr.Node,
  rows: ReadonlyArray<WorkRow>,
  /** Use the result cache for this column's calls (default: for deterministic functions). */
  cacheResults?: boolean | undefined
) {
  const cache = yield* Effect.serviceOption(ResultCache.ResultCache)
  const types = Catalog.columnTypes(table)
  const results = new Map<CallNode, Array<CallOutcome | undefined>>()
  const reads = [...Expr.columnIds(node)]
  const inputErrors = rows.map((row) => {
    if (row.errors.size === 0) return undefined
    for (const id of reads) {
      const error = row.errors.get(id)
      if (error !== undefined) return error
    }
    return undefined
  })
  // One environment, pointed at the current row: evaluation is synchronous.
  let current = 0
  const env: Evaluate.Env = {
    column: (id) => rows[current]!.values.get(id) ?? null,
    error: (id, prop) => {
      const e = rows[current]!.errors.get(id)
      return e === undefined ? null : prop === "errorType" ? e.type : e.message
    },
    call: (call) => {
      const outcome = results.get(call)?.[current]
      if (outcome?.error !== undefined) throw new CallFailed(outcome.error, outcome.attempts)
      return outcome?.value ?? null
    }
  }
  const callEnv = (rowIndex: number): Evaluate.Env => {
    current = rowIndex
    return env
  }
  const attemptsOf = (rowIndex: number): number => {
    if (results.size === 0) return 0
    let total = 0
    for (const outcomes of results.values()) total += outcomes[rowIndex]?.attempts ?? 0
    return total
  }

  for (const call of callsInnerFirst(node)) {
    const definition = Fn.lookup(call.fn, call.version)!
    const outcomes: Array<CallOutcome | undefined> = rows.map(() => undefined)
    results.set(call, outcomes)
    const pending: Array<{ readonly index: number; readonly args: ReadonlyArray<unknown> }> = []
    for (let i = 0; i < rows.length; i++) {
      if (inputErrors[i] !== undefined) continue
      let args: Array<unknown>
      try {
        args = call.args.map((arg) => Evaluate.evaluate(arg, callEnv(i), types))
      } catch (error) {
        if (error instanceof CallFailed) outcomes[i] = { error: error.error, attempts: 0 }
        else if (error instanceof Evaluate.EvalError) {
          outcomes[i] = { error: { type: error.errorType, message: error.message }, attempts: 0 }
        } else throw error
        continue
      }
      // A function is not called when a required argument is null.
      if (definition.params.some((p, j) => !p.nullable && (args[j] === null || args[j] === undefined))) {
        outcomes[i] = { value: null, attempts: 0 }
        continue
      }
      pending.push({ index: i, args })
    }
    // Deterministic results come from the cache when they can; identical
    // arguments in one batch are computed once.
    const cached = cache._tag === "Some" && (cacheResults ?? definition.deterministic) ? cache.value : undefined
    let cacheKeys: Array<string> | undefined
    let duplicates: Array<{ readonly index: number; readonly key: string }> = []
    if (cached !== undefined && pending.length > 0) {
      const keys = pending.map((p) => ResultCache.keyOf(p.args))
      const hits = yield* cached
        .get(definition.name, definition.version, [...new Set(keys)])
        .pipe(Effect.catch(() => Effect.succeed(new Map<string, unknown>())))
      // A cached media result is a file the operation now uses: no one may collect it meanwhile.
      if (ColumnType.isMedia(definition.returns)) {
        yield* Media.pin([...hits.values()].filter((v): v is string => typeof v === "string"))
      }
      const first = new Map<string, number>()
      const remaining: typeof pending = []
      cacheKeys = []
      for (const [j, p] of pending.entries()) {
        const key = keys[j]!
        if (hits.has(key)) {
          outcomes[p.index] = { value: ResultCache.decodeValue(hits.get(key)), attempts: 0 }
        } else if (first.has(key)) {
          duplicates.push({ index: p.index, key })
        } else {
          first.set(key, p.index)
          remaining.push(p)
          cacheKeys.push(key)
        }
      }
      pending.splice(0, pending.length, ...remaining)
    }
    const keyByIndex = new Map<number, string>()
    if (cacheKeys !== undefined) {
      for (const [j, p] of pending.entries()) keyByIndex.set(p.index, cacheKeys[j]!)
    }
    const pools = yield* Pool.Pools
    const pool = pools.pool(definition.pool, definition.rateLimit)
    if (definition.rateLimitHeaders) pool.expectHeaders()
    const permits = pools.semaphore(`${definition.name}@${definition.version}`, definition.concurrency)
    const batches: Array<typeof pending> = []
    for (let i = 0; i < pending.length; i += definition.batchSize) {
      batches.push(pending.slice(i, i + definition.batchSize))
    }
    type Batch = typeof pending
    /** One invocation of a batch: each attempt holds a permit and passes the pool's pacing; retries happen outside both. */
    const invoke = (batch: Batch) => {
      let attempts = 0
      const once = Effect.suspend(() => {
        attempts++
        return definition.invoke(batch.map((p) => p.args))
      }).pipe(
        (attempt) => pool.request(attempt, { tokens: definition.estimateTokens?.(batch.map((p) => p.args)) ?? 0 }),
        Semaphore.withPermit(permits),
        Effect.provideService(Pool.CurrentPool, pool)
      )
      const attempt = definition.retry === undefined ? once : Effect.retry(once, definition.retry)
      return Effect.map(Effect.exit(attempt), (exit) => ({ exit, attempts }))
    }
    type Invoked = Effect.Success<ReturnType<typeof invoke>>
    const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
      Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? Cause.squash(exit.cause) : undefined
    /** Records a batch's outcome; a failure that may be one bad row's is narrowed down first (`isolateFailures`). */
    const settle = (batch: Batch, { exit, attempts }: Invoked): Effect.Effect<void, never, never> => {
      if (Exit.isSuccess(exit)) {
        const results = exit.value
        const computed: Array<{ readonly key: string; readonly value: unknown }> = []
        batch.forEach((p, j) => {
          const result = results[j]
          if (result instanceof Fn.RowFailure) {
            outcomes[p.index] = { error: Fn.describeError(result.error), attempts }
            return
          }
          outcomes[p.index] = { value: result, attempts }
          if (cached !== undefined)
            computed.push({ key: keyByIndex.get(p.index)!, value: ResultCache.encodeValue(result) })
        })
        // Results are cached, failures are not (the next try may succeed).
        if (cached === undefined || computed.length === 0) return Effect.void
        return cached.put(definition.name, definition.version, computed).pipe(Effect.ignore)
      }
      const failure = failureOf(exit)
      if (failure === undefined) return Effect.interrupt
      const error = Fn.describeError(failure)
      const fail = () => {
        for (const p of batch) outcomes[p.index] = { error, attempts }
        return Effect.void
      }
      if (batch.length === 1 || definition.isolateFailures?.(failure) !== true) return fail()
      // The halves, at once: where one succeeds the other holds the rows at fault; when both
      // fail alike, the failure was the whole batch's (a bad key, a wrong option) and stays so.
      const half = Math.ceil(batch.length / 2)
      const halves = [batch.slice(0, half), batch.slice(half)] as const
      return Effect.flatMap(Effect.forEach(halves, invoke, { concurrency: 2 }), ([first, second]) => {
        const a = failureOf(first!.exit)
        const b = failureOf(second!.exit)
        if (a !== undefined && b !== undefined) {
          const ea = Fn.describeError(a)
          const eb = Fn.describeError(b)
          if (ea.type === eb.type && ea.message === eb.message && ea.type === error.type) return fail()
        }
        return Effect.andThen(settle(halves[0], first!), settle(halves[1], second!))
      })
    }
    yield* Effect.forEach(batches, (batch) => Effect.flatMap(invoke(batch), (invoked) => settle(batch, invoked)), {
      concurrency: definition.concurrency,
      discard: true
    })
    if (duplicates.length > 0) {
      const byKey = new Map<string, CallOutcome | undefined>()
      for (const [index, key] of keyByIndex) byKey.set(key, outcomes[index])
      for (const d of duplicates) outcomes[d.index] = byKey.get(d.key)
      duplicates = []
    }
  }

  return rows.map((_, i): Cell => {
    const inputError = inputErrors[i]
    if (inputError !== undefined) return failed(inputError.type, inputError.message, 0)
    try {
      return done(Evaluate.evaluate(node, callEnv(i), types), attemptsOf(i))
    } catch (error) {
      if (error instanceof CallFailed) return failed(error.error.type, error.error.message, error.attempts)
      if (error instanceof Evaluate.EvalError) return failed(error.errorType, error.message, attemptsOf(i))
      throw error
    }
  })
})

class CallFailed {
  readonly error: { readonly type: string; readonly message: string }
  readonly attempts: number
  constructor(error: { readonly type: string; readonly message: string }, attempts: number) {
    this.error = error
    this.attempts = attempts
  }
}

/** Checks a computed value against its column's type (a function may return anything). */
const checkOutput = (column: Catalog.ColumnMeta, check: ColumnType.Checker, cell: Cell): Cell => {
  if (cell.state !== "done" || cell.value === null || cell.value === undefined) {
    return cell.value === undefined ? { ...cell, value: null } : cell
  }
  const checked = check(cell.value)
  if (checked instanceof ColumnType.Invalid) {
    return failed("InvalidOutput", `${column.name}: ${checked.message}`, cell.attempts)
  }
  return checked === cell.value ? cell : { ...cell, value: checked }
}

/**
 * Computes `columns` (stored computed columns, in dependency order) for every
 * row, updating the rows as it goes so that later columns see earlier ones.
 * Returns the cells by column id, one per row.
 */
export const computeColumns = Effect.fnUntraced(function* (
  table: Catalog.TableMeta,
  columns: ReadonlyArray<Catalog.ColumnMeta>,
  rows: ReadonlyArray<WorkRow>
) {
  yield* checkFunctions(table, columns)
  const out = new Map<number, ReadonlyArray<Cell>>()
  for (const column of columns) {
    const node = Catalog.inlineUnstored(table, column.computed!.expr)
    const check = ColumnType.checker(column.type)
    const cells = (yield* evaluateRows(table, node, rows, column.computed!.cache)).map((cell) =>
      checkOutput(column, check, cell)
    )
    cells.forEach((cell, i) => {
      const row = rows[i]!
      row.values.set(column.id, cell.value)
      if (cell.state === "error") row.errors.set(column.id, { type: cell.errorType!, message: cell.errorMessage! })
      else row.errors.delete(column.id)
    })
    out.set(column.id, cells)
  }
  return out
})

/** The first error among the cells of `columns` whose `onError` is abort, as a ComputeError. */
export const firstAbort = (
  table: Catalog.TableMeta,
  columns: ReadonlyArray<Catalog.ColumnMeta>,
  cells: ReadonlyMap<number, ReadonlyArray<Cell>>,
  rowLabel: (index: number) => number
): ComputeError | undefined => {
  const count = cells.values().next().value?.length ?? 0
  for (let i = 0; i < count; i++) {
    for (const column of columns) {
      if (column.computed?.onError !== "abort") continue
      const cell = cells.get(column.id)![i]!
      if (cell.state === "error") {
        return new ComputeError({
          table: table.path,
          column: column.name,
          row: rowLabel(i),
          errorType: cell.errorType!,
          message: `Computing ${column.name} of ${table.path} failed for row ${rowLabel(i)}: ${cell.errorType}: ${cell.errorMessage}`
        })
      }
    }
  }
  return undefined
}
