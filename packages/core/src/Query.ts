/**
 * Query: immutable, typed queries over a table: `where`, `select`, `orderBy`,
 * `limit`/`offset`, and the ways to run them (`collect`, `stream`, `count`,
 * `head`, `tail`).
 *
 * Planning pushes every part the store can evaluate down to SQL; the rest
 * (user functions, anything the store cannot express) is evaluated in the
 * engine over the rows the store returns. `inEngine()` forces the engine path
 * for everything but reading columns, so both paths can be checked against
 * each other.
 */
import { Effect, Pipeable, Schema, Stream } from "effect"
import * as Catalog from "./Catalog.ts"
import type * as Column from "./Column.ts"
import type * as ColumnType from "./ColumnType.ts"
import * as Compute from "./Compute.ts"
import * as Evaluate from "./Evaluate.ts"
import * as Expr from "./Expr.ts"
import * as Media from "./Media.ts"
import { type ScanSpec, Store, type StoreError } from "./Store.ts"

export class QueryError extends Schema.TaggedError<QueryError>()("QueryError", {
  table: Schema.String,
  message: Schema.String
}) {}

/** Typed references to a table's columns (`t.c.x`); an image column's has the image methods (`t.c.img.resize(...)`). */
export type Columns<S extends Column.Specs> = {
  readonly [K in keyof S]: S[K] extends Column.JsonColumn<infer T, infer N>
    ? Expr.ColumnRef<N extends true ? T | null : T> & Expr.JsonExpr<N extends true ? T | null : T>
    : Media.WithMethods<Expr.ColumnRef<Column.ValueOf<S[K]>>, Column.ValueOf<S[K]>>
}

/** The TypeScript type of an expression's values as results give them (a media value is a `Media.MediaRef`). */
export type TypeOfExpr<E> = E extends Expr.Expr<infer T> ? Media.Read<T> : never

/** The TypeScript type of an expression's values inside expressions (a media value is its `Media.Uri`). */
export type ValueOfExpr<E> = E extends Expr.Expr<infer T> ? T : never

/** The table a query reads: how to load its current catalog entry. */
export interface Source {
  readonly path: string
  readonly id: number
  readonly load: Effect.Effect<Catalog.TableMeta, Catalog.CatalogError | StoreError, Store>
}

interface State {
  readonly where: ReadonlyArray<Expr.Node>
  readonly select: ReadonlyArray<{ readonly key: string; readonly node: Expr.Node }> | undefined
  readonly orderBy: ReadonlyArray<{ readonly key: string | Expr.Node; readonly desc: boolean }>
  readonly limit: number | undefined
  readonly offset: number | undefined
  readonly engine: boolean
}

export type QueryFailure = QueryError | Catalog.CatalogError | StoreError | Compute.UnknownFunctionError

type Condition<S extends Column.Specs> =
  | Expr.Expr<boolean | null>
  | Expr.Expr<boolean>
  | ((c: Columns<S>) => Expr.Expr<boolean | null> | Expr.Expr<boolean>)

type OrderKey<S extends Column.Specs, R> = (keyof R & string) | Expr.Expr<any> | ((c: Columns<S>) => Expr.Expr<any>)

export class Query<S extends Column.Specs, R> implements Pipeable.Pipeable {
  readonly source: Source
  readonly c: Columns<S>
  readonly state: State

  constructor(source: Source, c: Columns<S>, state?: State) {
    this.source = source
    this.c = c
    this.state = state ?? {
      where: [],
      select: undefined,
      orderBy: [],
      limit: undefined,
      offset: undefined,
      engine: false
    }
  }

  pipe() {
    // biome-ignore lint/complexity/noArguments: Pipeable's calling convention.
    return Pipeable.pipeArguments(this, arguments)
  }

  private with<R2 = R>(patch: Partial<State>): Query<S, R2> {
    return new Query<S, R2>(this.source, this.c, { ...this.state, ...patch })
  }

  /** Keeps the rows for which `condition` is true (several `where`s are and-ed). */
  where(condition: Condition<S>): Query<S, R> {
    const expr = typeof condition === "function" ? condition(this.c) : condition
    return this.with({ where: [...this.state.where, expr.node] })
  }

  /** Chooses the outputs: named expressions (`{ title: c.title, n: c.n.plus(1) }`). */
  select<O extends Record<string, Expr.Expr<any>>>(
    outputs: O | ((c: Columns<S>) => O)
  ): Query<S, { readonly [K in keyof O]: TypeOfExpr<O[K]> }> {
    const o = typeof outputs === "function" ? outputs(this.c) : outputs
    return this.with({ select: Object.entries(o).map(([key, expr]) => ({ key, node: expr.node })) })
  }

  /** Sorts by an output name, a column name or an expression; call again for further keys. */
  orderBy(key: OrderKey<S, R>, direction: "asc" | "desc" = "asc"): Query<S, R> {
    const k = typeof key === "function" ? key(this.c).node : typeof key === "string" ? key : key.node
    return this.with({ orderBy: [...this.state.orderBy, { key: k, desc: direction === "desc" }] })
  }

  limit(n: number): Query<S, R> {
    return this.with({ limit: Math.max(0, Math.floor(n)) })
  }

  offset(n: number): Query<S, R> {
    return this.with({ offset: Math.max(0, Math.floor(n)) })
  }

  /** Evaluates everything but column reads in the engine (for checking pushdown). */
  inEngine(): Query<S, R> {
    return this.with({ engine: true })
  }

  /** Every result row, typed. */
  collect(): Effect.Effect<ReadonlyArray<R>, QueryFailure, Store> {
    return collect(this)
  }

  /** The result rows, each with its row id under `$id` (for fusing results of several queries). */
  collectWithIds(): Effect.Effect<ReadonlyArray<R & { readonly $id: number }>, QueryFailure, Store> {
    const query = this
    return Effect.gen(function* () {
      const { store, plan } = yield* loadPlan(query)
      return (yield* collectPlanned(store, plan, true)) as unknown as ReadonlyArray<R & { readonly $id: number }>
    })
  }

  /** The result rows as a stream, in constant memory when the order can be pushed down. */
  stream(): Stream.Stream<R, QueryFailure, Store> {
    return stream(this)
  }

  /** The number of rows the query selects (ignoring `select`). */
  count(): Effect.Effect<number, QueryFailure, Store> {
    return count(this)
  }

  /** The first `n` rows (in insertion order unless ordered). */
  head(n = 10): Effect.Effect<ReadonlyArray<R>, QueryFailure, Store> {
    return collect(this.limit(n))
  }

  /** The last `n` rows (in insertion order unless ordered). */
  tail(n = 10): Effect.Effect<ReadonlyArray<R>, QueryFailure, Store> {
    return tail(this, n)
  }
}

// ---------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------

interface Plan {
  readonly meta: Catalog.TableMeta
  readonly spec: ScanSpec
  /** Conditions the engine evaluates. */
  readonly engineWhere: ReadonlyArray<Expr.Node>
  /** Outputs: read from the store's row under `from`, or evaluated in the engine. */
  readonly outputs: ReadonlyArray<
    | { readonly key: string; readonly from: string; readonly node?: undefined }
    | { readonly key: string; readonly node: Expr.Node; readonly from?: undefined }
  >
  /** Set when the order (and so limit/offset) is applied in the engine. */
  readonly engineOrder:
    | ReadonlyArray<{ readonly node: Expr.Node; readonly desc: boolean; readonly type: ColumnType.ColumnType }>
    | undefined
  readonly limit: number | undefined
  readonly offset: number | undefined
  /** The outputs holding media, with their kinds: results give them as handles. */
  readonly media: ReadonlyArray<readonly [string, Media.Kind]>
  /** Nothing is evaluated in the engine: result rows are the store's rows, renamed. */
  readonly storeOnly: boolean
}

/** A catalog entry's columns by name and by id (entries are immutable: worked out once). */
const columnMaps = new WeakMap<
  Catalog.TableMeta,
  { readonly byName: ReadonlyMap<string, Catalog.ColumnMeta>; readonly byId: ReadonlyMap<number, Catalog.ColumnMeta> }
>()
const columnsOf = (meta: Catalog.TableMeta) => {
  let maps = columnMaps.get(meta)
  if (maps === undefined) {
    maps = {
      byName: new Map(meta.columns.map((c) => [c.name, c])),
      byId: new Map(meta.columns.map((c) => [c.id, c]))
    }
    columnMaps.set(meta, maps)
  }
  return maps
}

const valueKey = (id: number) => `$c${id}`
const errorKey = (id: number, prop: Expr.ErrorProp) => `$${prop}${id}`

const plan = (
  query: Query<any, any>,
  meta: Catalog.TableMeta,
  store: Store["Service"],
  extra?: { readonly reverse?: boolean }
): Plan | QueryError => {
  const state = query.state
  const { byName, byId } = columnsOf(meta)
  const fail = (message: string) => new QueryError({ table: meta.path, message })

  const checkColumns = (node: Expr.Node) => {
    for (const id of Expr.columnIds(node)) {
      if (!byId.has(id)) return fail(`the query refers to a column (id ${id}) that ${meta.path} does not have`)
    }
    return undefined
  }
  for (const node of state.where) {
    const error = checkColumns(node)
    if (error !== undefined) return error
  }
  for (const s of state.select ?? []) {
    const error = checkColumns(s.node)
    if (error !== undefined) return error
  }
  const inline = (node: Expr.Node) => Catalog.inlineUnstored(meta, node)
  // An output is usually also the order: ask the store once per node.
  const pushes = new Map<Expr.Node, boolean>()
  const canPush = (node: Expr.Node) => {
    let can = pushes.get(node)
    if (can === undefined) {
      can = !state.engine && store.pushable(meta, node)
      pushes.set(node, can)
    }
    return can
  }

  // Hidden columns (an embedding index's vectors) are not part of `select *`.
  const selected =
    state.select ??
    meta.columns
      .filter((c) => !c.name.startsWith("_"))
      .map((c) => ({ key: c.name, node: { _tag: "Column", id: c.id, name: c.name } as Expr.Node }))

  const orderNodes: Array<{ node: Expr.Node; desc: boolean }> = []
  for (const o of state.orderBy) {
    if (typeof o.key !== "string") {
      orderNodes.push({ node: inline(o.key), desc: o.desc })
      continue
    }
    const output = selected.find((s) => s.key === o.key)
    const column = byName.get(o.key)
    if (output !== undefined) orderNodes.push({ node: inline(output.node), desc: o.desc })
    else if (column !== undefined) {
      orderNodes.push({ node: inline({ _tag: "Column", id: column.id, name: column.name }), desc: o.desc })
    } else return fail(`cannot order by ${JSON.stringify(o.key)}: it is neither an output nor a column of ${meta.path}`)
  }

  const pushedWhere: Array<Expr.Node> = []
  const engineWhere: Array<Expr.Node> = []
  for (const node of state.where.map(inline)) (canPush(node) ? pushedWhere : engineWhere).push(node)
  const engineOrderNeeded = engineWhere.length > 0 || orderNodes.some((o) => !canPush(o.node))

  const sqlOutputs: Array<{ key: string; node: Expr.Node }> = []
  const outputs: Array<Plan["outputs"][number]> = []
  const engineNodes: Array<Expr.Node> = [...engineWhere]
  for (const s of selected) {
    const node = inline(s.node)
    if (canPush(node)) {
      const from = `$o${sqlOutputs.length}`
      sqlOutputs.push({ key: from, node })
      outputs.push({ key: s.key, from })
    } else {
      outputs.push({ key: s.key, node })
      engineNodes.push(node)
    }
  }
  if (engineOrderNeeded) engineNodes.push(...orderNodes.map((o) => o.node))

  // Columns (and error properties) the engine reads.
  const fetched = new Set<string>()
  for (const node of engineNodes) {
    Expr.walk(node, (n) => {
      if ((n._tag === "Column" || n._tag === "VectorScore") && !fetched.has(valueKey(n.id))) {
        fetched.add(valueKey(n.id))
        sqlOutputs.push({ key: valueKey(n.id), node: { _tag: "Column", id: n.id, name: n.name } })
        const column = byId.get(n.id)
        if (column !== undefined && Catalog.hasCell(column)) {
          for (const prop of ["errorType", "errorMessage"] as const) {
            fetched.add(errorKey(n.id, prop))
            sqlOutputs.push({ key: errorKey(n.id, prop), node: { _tag: "ErrorProp", id: n.id, name: n.name, prop } })
          }
        }
      }
      if (n._tag === "ErrorProp" && !fetched.has(errorKey(n.id, n.prop))) {
        fetched.add(errorKey(n.id, n.prop))
        sqlOutputs.push({ key: errorKey(n.id, n.prop), node: n })
      }
    })
  }

  const reverse = extra?.reverse === true
  const types = Catalog.columnTypes(meta)
  const media: Array<readonly [string, Media.Kind]> = []
  for (const output of outputs) {
    const node = output.node ?? sqlOutputs.find((o) => o.key === output.from)?.node
    const kind = node === undefined ? undefined : Expr.typeOf(node, types).kind
    if (kind !== undefined && Media.isKind(kind)) media.push([output.key, kind])
  }
  return {
    meta,
    spec: {
      where: pushedWhere,
      outputs: sqlOutputs,
      orderBy: engineOrderNeeded ? [] : orderNodes.map((o) => ({ node: o.node, desc: reverse ? !o.desc : o.desc })),
      limit: engineOrderNeeded ? undefined : state.limit,
      offset: engineOrderNeeded ? undefined : state.offset,
      withRowid: true,
      ...(reverse ? { rowidOrder: "desc" as const } : {})
    },
    engineWhere,
    outputs,
    engineOrder: engineOrderNeeded ? orderNodes.map((o) => ({ ...o, type: Expr.typeOf(o.node, types) })) : undefined,
    limit: state.limit,
    offset: state.offset,
    media,
    storeOnly: engineNodes.length === 0
  }
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

const workRowOf = (plan: Plan, raw: Record<string, unknown>): Compute.WorkRow => {
  const values = new Map<number, unknown>()
  const errors = new Map<number, { type: string; message: string }>()
  for (const column of plan.meta.columns) {
    const key = valueKey(column.id)
    if (key in raw) values.set(column.id, raw[key])
    const type = raw[errorKey(column.id, "errorType")]
    if (typeof type === "string") {
      errors.set(column.id, { type, message: String(raw[errorKey(column.id, "errorMessage")] ?? "") })
    }
  }
  return { values, errors }
}

/** Evaluates engine nodes over a batch; a failing cell fails the query, naming the row. */
const evaluateAll = Effect.fnUntraced(function* (
  plan: Plan,
  node: Expr.Node,
  rows: ReadonlyArray<Compute.WorkRow>,
  what: string
) {
  const cells = yield* Compute.evaluateRows(plan.meta, node, rows)
  const values: Array<unknown> = []
  for (const [i, cell] of cells.entries()) {
    if (cell.state === "error") {
      return yield* new QueryError({
        table: plan.meta.path,
        message: `evaluating ${what} (${Expr.show(node)}) failed on a row: ${cell.errorType}: ${cell.errorMessage} (row ${i} of the batch)`
      })
    }
    values.push(cell.value)
  }
  return values
})

/** A result row from a store row: outputs renamed, media as handles. */
const resultRow = (plan: Plan, raw: Record<string, unknown>, computed?: (key: string) => unknown) => {
  const out: Record<string, unknown> = {}
  for (const output of plan.outputs) {
    out[output.key] = output.from !== undefined ? raw[output.from] : computed!(output.key)
  }
  for (const [key, kind] of plan.media) {
    const value = out[key]
    if (typeof value === "string") out[key] = new Media.MediaRef(kind, value)
  }
  return out
}

interface Finished {
  readonly row: Record<string, unknown>
  readonly orderKey?: ReadonlyArray<unknown> | undefined
  readonly rowid?: number | undefined
}

/** Filters a batch by the engine's conditions and computes its outputs. */
const finishBatch = (
  plan: Plan,
  raws: ReadonlyArray<Record<string, unknown>>
): Effect.Effect<ReadonlyArray<Finished>, QueryFailure, Store> =>
  plan.storeOnly
    ? Effect.succeed(raws.map((raw) => ({ row: resultRow(plan, raw), rowid: raw.$rowid as number | undefined })))
    : finishInEngine(plan, raws)

const finishInEngine = Effect.fnUntraced(function* (plan: Plan, raws: ReadonlyArray<Record<string, unknown>>) {
  let rows = raws.map((raw) => ({ raw, work: workRowOf(plan, raw) }))
  for (const condition of plan.engineWhere) {
    const keep = yield* evaluateAll(
      plan,
      condition,
      rows.map((r) => r.work),
      "a where condition"
    )
    rows = rows.filter((_, i) => keep[i] === true)
  }
  const computed = new Map<string, ReadonlyArray<unknown>>()
  for (const output of plan.outputs) {
    if (output.node !== undefined) {
      computed.set(
        output.key,
        yield* evaluateAll(
          plan,
          output.node,
          rows.map((r) => r.work),
          `output ${output.key}`
        )
      )
    }
  }
  let orderKeys: Array<ReadonlyArray<unknown>> | undefined
  if (plan.engineOrder !== undefined) {
    const perNode: Array<ReadonlyArray<unknown>> = []
    for (const o of plan.engineOrder) {
      perNode.push(
        yield* evaluateAll(
          plan,
          o.node,
          rows.map((r) => r.work),
          "an order key"
        )
      )
    }
    orderKeys = rows.map((_, i) => perNode.map((values) => values[i]))
  }
  return rows.map(
    (r, i): Finished => ({
      row: resultRow(plan, r.raw, (key) => computed.get(key)![i]),
      orderKey: orderKeys?.[i],
      rowid: r.raw.$rowid as number | undefined
    })
  )
})

/** The embedding index a `similarity` or `embedding` node names (or the column's only one). */
const findIndex = (
  meta: Catalog.TableMeta,
  node: { readonly id: number; readonly name: string; readonly index: string | undefined },
  use: string
): Catalog.IndexMeta | QueryError => {
  const all = (meta.indexes ?? []).filter((i) => i.kind !== "text" && i.column === node.id)
  const candidates = all.filter((i) => node.index === undefined || i.name === node.index)
  if (candidates.length === 1) return candidates[0]!
  const names = all.map((i) => i.name)
  return new QueryError({
    table: meta.path,
    message:
      candidates.length === 0
        ? `${node.name} has no embedding index${node.index === undefined ? "" : ` named ${JSON.stringify(node.index)}`} (indexes: ${names.join(", ") || "none"})`
        : `${node.name} has several embedding indexes (${names.join(", ")}): name one with ${use}`
  })
}

/** The modality of an index's own column (what `embed` takes). */
const columnModality = (meta: Catalog.TableMeta, index: Catalog.IndexMeta): Expr.Modality | undefined => {
  const kind = meta.columns.find((c) => c.id === index.column)?.type.kind
  return kind === "String" ? "text" : kind === "Image" ? "image" : undefined
}

/** The function that embeds a query of this modality under the index, if it has one. */
const embedFor = (
  meta: Catalog.TableMeta,
  index: Catalog.IndexMeta,
  modality: Expr.Modality
): Catalog.FunctionRef | undefined =>
  index.embeds?.[modality] ?? (columnModality(meta, index) === modality ? index.embed : undefined)

/** What a similarity query is: a vector, or a value of a modality to embed. */
const queryModality = (
  meta: Catalog.TableMeta,
  index: Catalog.IndexMeta,
  similarity: Extract<Expr.Node, { _tag: "Similarity" }>
): Expr.Modality | "vector" => {
  const query = similarity.query
  if (query._tag === "Literal" && (query.value instanceof Float32Array || Array.isArray(query.value))) return "vector"
  if (similarity.modality !== undefined) return similarity.modality
  const type = Expr.typeOf(query, Catalog.columnTypes(meta))
  if (type.kind === "Vector") return "vector"
  if (type.kind === "Image") return "image"
  // A string is a text, unless only images can be embedded (then it names an image).
  return embedFor(meta, index, "text") === undefined && embedFor(meta, index, "image") !== undefined ? "image" : "text"
}

type Target = Extract<Expr.Node, { _tag: "Similarity" | "Embedding" }>

/** A query value to embed before its similarity node can be resolved. */
interface ToEmbed {
  readonly _tag: "ToEmbed"
  readonly target: Extract<Expr.Node, { _tag: "Similarity" }>
  readonly index: Catalog.IndexMeta
  readonly modality: Expr.Modality
  readonly call: Expr.Node
}

/**
 * What replaces a `similarity` node (a score against the embedding index's
 * stored vectors) or an `embedding` node (the index's vector column), when it
 * needs no embedding; otherwise the call that embeds its query.
 */
const resolveTarget = (meta: Catalog.TableMeta, target: Target): Expr.Node | ToEmbed | QueryError => {
  if (target._tag === "Embedding") {
    const index = findIndex(meta, target, "embedding({ index })")
    if (index instanceof QueryError) return index
    return { _tag: "Column", id: index.vectors, name: target.name }
  }
  const index = findIndex(meta, target, "similarity(value, { index })")
  if (index instanceof QueryError) return index
  const modality = queryModality(meta, index, target)
  if (modality === "vector") {
    const query = target.query
    return scoreNode(
      meta,
      index,
      target,
      query._tag === "Literal" ? ((query.value as ArrayLike<number> | null) ?? undefined) : undefined
    )
  }
  const embed = embedFor(meta, index, modality)
  if (embed === undefined) {
    return new QueryError({
      table: meta.path,
      message: `the index ${index.name} on ${target.name} cannot embed ${modality === "text" ? "a text" : "an image"} query (give addEmbeddingIndex a ${modality}Embed function, or query with a vector)`
    })
  }
  const call: Expr.Node = {
    _tag: "Call",
    fn: embed.fn,
    version: embed.version,
    args: [target.query],
    type: { kind: "Vector", dim: index.dimension }
  }
  return { _tag: "ToEmbed", target, index, modality, call }
}

/** The score of a similarity node against its index, for a query vector. */
const scoreNode = (
  meta: Catalog.TableMeta,
  index: Catalog.IndexMeta,
  target: Extract<Expr.Node, { _tag: "Similarity" }>,
  vector: ArrayLike<number> | null | undefined
): Expr.Node | QueryError => {
  if (vector === undefined || vector === null || vector.length !== index.dimension) {
    return new QueryError({
      table: meta.path,
      message: `the query for ${target.name} must be a vector of ${index.dimension} numbers${index.embed === undefined ? " (its index has no embed function)" : ""}`
    })
  }
  return {
    _tag: "VectorScore",
    id: index.vectors,
    name: target.name,
    metric: index.metric,
    precision: index.precision,
    vector: vector instanceof Float32Array ? vector : Float32Array.from(vector),
    ...(target.efSearch === undefined ? {} : { efSearch: target.efSearch })
  }
}

/** Embeds a similarity query (once) and scores against it. */
const embedTarget = Effect.fnUntraced(function* (meta: Catalog.TableMeta, e: ToEmbed) {
  const [cell] = yield* Compute.evaluateRows(meta, e.call, [{ values: new Map(), errors: new Map() }])
  if (cell!.state === "error") {
    return yield* new QueryError({
      table: meta.path,
      message: `embedding the ${e.modality} query for ${e.target.name} failed: ${cell!.errorType}: ${cell!.errorMessage}`
    })
  }
  const node = scoreNode(meta, e.index, e.target, cell!.value as ArrayLike<number>)
  if (node instanceof QueryError) return yield* node
  return node
})

const replaceNodes = (node: Expr.Node, replacements: ReadonlyMap<Expr.Node, Expr.Node>): Expr.Node => {
  const direct = replacements.get(node)
  if (direct !== undefined) return direct
  let changed = false
  const rebuilt = Catalog.mapChildren(node, (child) => {
    const replaced = replaceNodes(child, replacements)
    if (replaced !== child) changed = true
    return replaced
  })
  return changed ? rebuilt : node
}

/** The query with its `similarity` and `embedding` nodes resolved against the catalog entry. */
const resolveQuery = (
  query: Query<any, any>,
  meta: Catalog.TableMeta
): Effect.Effect<Query<any, any>, QueryFailure, Store> => {
  const state = query.state
  const targets: Array<Target> = []
  const find = (node: Expr.Node) =>
    Expr.walk(node, (n) => {
      if (n._tag === "Similarity" || n._tag === "Embedding") targets.push(n)
    })
  for (const node of state.where) find(node)
  for (const s of state.select ?? []) find(s.node)
  for (const o of state.orderBy) if (typeof o.key !== "string") find(o.key)
  if (targets.length === 0) return Effect.succeed(query)
  const resolved = new Map<Expr.Node, Expr.Node>()
  const toEmbed: Array<ToEmbed> = []
  for (const target of targets) {
    const r = resolveTarget(meta, target)
    if (r instanceof QueryError) return Effect.fail(r)
    if (r._tag === "ToEmbed") toEmbed.push(r)
    else resolved.set(target, r)
  }
  const replaced = () => {
    const replace = (node: Expr.Node) => replaceNodes(node, resolved)
    return new Query<any, any>(query.source, query.c, {
      ...state,
      where: state.where.map(replace),
      select: state.select?.map((s) => ({ key: s.key, node: replace(s.node) })),
      orderBy: state.orderBy.map((o) => (typeof o.key === "string" ? o : { ...o, key: replace(o.key) }))
    })
  }
  if (toEmbed.length === 0) return Effect.succeed(replaced())
  return Effect.map(
    Effect.forEach(toEmbed, (e) => Effect.map(embedTarget(meta, e), (node) => resolved.set(e.target, node))),
    replaced
  )
}

// Queries are planned on every run: kept to plain calls and a few flatMaps (no
// generators), as this is the whole of a query's own cost over its SQL.
const loadPlan = (
  query: Query<any, any>,
  extra?: { readonly reverse?: boolean }
): Effect.Effect<{ readonly store: Store["Service"]; readonly plan: Plan }, QueryFailure, Store> =>
  Effect.flatMap(Effect.service(Store), (store) =>
    Effect.flatMap(query.source.load, (meta) =>
      Effect.flatMap(resolveQuery(query, meta), (resolved) => {
        const p = plan(resolved, meta, store, extra)
        return p instanceof QueryError ? Effect.fail(p) : Effect.succeed({ store, plan: p })
      })
    )
  )

const BATCH = 1000

const stream = <R>(query: Query<any, R>): Stream.Stream<R, QueryFailure, Store> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const { store, plan } = yield* loadPlan(query)
      if (plan.engineOrder !== undefined) {
        return Stream.fromIterable((yield* collectPlanned(store, plan)) as ReadonlyArray<R>)
      }
      let rows = store.scan(plan.meta, plan.spec).pipe(
        Stream.grouped(BATCH),
        Stream.mapEffect((batch) => finishBatch(plan, batch)),
        Stream.flattenIterable,
        Stream.map((r) => r.row as R)
      )
      if (plan.engineWhere.length > 0) {
        if (plan.offset !== undefined) rows = Stream.drop(rows, plan.offset)
        if (plan.limit !== undefined) rows = Stream.take(rows, plan.limit)
      }
      return rows
    })
  )

const collectPlanned = (
  store: Store["Service"],
  plan: Plan,
  withIds = false
): Effect.Effect<ReadonlyArray<Record<string, unknown>>, QueryFailure, Store> =>
  Effect.flatMap(store.scanAll(plan.meta, plan.spec), (raws) => {
    const withId = (r: Finished) => (withIds ? { ...r.row, $id: r.rowid } : r.row)
    // Nothing to evaluate: the store did all of it (the usual case, and the fast one).
    if (plan.storeOnly)
      return Effect.succeed(raws.map((raw) => withId({ row: resultRow(plan, raw), rowid: raw.$rowid as number })))
    return Effect.map(finishAll(plan, raws), (finished) => finished.map(withId))
  })

/** Engine work over the store's rows: conditions, outputs, order, limit and offset. */
const finishAll = Effect.fnUntraced(function* (plan: Plan, raws: ReadonlyArray<Record<string, unknown>>) {
  const finished: Array<Finished> = []
  for (let i = 0; i < raws.length; i += BATCH) {
    finished.push(...(yield* finishBatch(plan, raws.slice(i, i + BATCH))))
  }
  if (plan.engineOrder !== undefined) {
    const order = plan.engineOrder
    finished.sort((a, b) => {
      for (const [k, o] of order.entries()) {
        const x = a.orderKey![k]
        const y = b.orderKey![k]
        // Nulls sort last ascending and first descending, as in SQL.
        const c =
          x === null || x === undefined
            ? y === null || y === undefined
              ? 0
              : 1
            : y === null || y === undefined
              ? -1
              : Evaluate.compare(o.type, x, y)
        if (c !== 0) return o.desc ? -c : c
      }
      return (a.rowid ?? 0) - (b.rowid ?? 0)
    })
  }
  const start = plan.engineOrder !== undefined || plan.engineWhere.length > 0 ? (plan.offset ?? 0) : 0
  const end =
    plan.engineOrder !== undefined || plan.engineWhere.length > 0
      ? plan.limit === undefined
        ? undefined
        : start + plan.limit
      : undefined
  return finished.slice(start, end)
})

const collect = <R>(query: Query<any, R>): Effect.Effect<ReadonlyArray<R>, QueryFailure, Store> =>
  Effect.flatMap(
    loadPlan(query),
    ({ store, plan }) => collectPlanned(store, plan) as Effect.Effect<ReadonlyArray<R>, QueryFailure, Store>
  )

const tail = <R>(query: Query<any, R>, n: number): Effect.Effect<ReadonlyArray<R>, QueryFailure, Store> =>
  Effect.gen(function* () {
    if (query.state.orderBy.length > 0 || query.state.limit !== undefined || query.state.offset !== undefined) {
      // With an explicit order, the tail is the end of the ordered result.
      const all = yield* collect(query)
      return all.slice(Math.max(0, all.length - n))
    }
    const { store, plan } = yield* loadPlan(query.limit(n), { reverse: true })
    const rows = yield* collectPlanned(store, plan)
    return [...rows].reverse() as ReadonlyArray<R>
  })

const count = (query: Query<any, any>): Effect.Effect<number, QueryFailure, Store> =>
  Effect.gen(function* () {
    const { store, plan } = yield* loadPlan(query.select({}))
    if (plan.engineWhere.length === 0) {
      const n = yield* store.count(plan.meta, plan.spec.where)
      const afterOffset = Math.max(0, n - (plan.offset ?? 0))
      return plan.limit === undefined ? afterOffset : Math.min(afterOffset, plan.limit)
    }
    return (yield* collectPlanned(store, plan)).length
  })
