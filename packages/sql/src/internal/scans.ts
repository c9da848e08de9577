/**
 * Reads of table rows: scans compiled to SELECTs (each shape once per table
 * version, see `scanShape`), counts, and what compiling a table version's
 * expressions needs. Made per store: it closes over the store's client.
 */
import { Catalog, ColumnType, Expr, type Store } from "@tessera/core"
import { Effect, Option, Stream } from "effect"
import type { SqlClient, SqlError, Statement } from "effect/sql"
import type { Database } from "../Database.ts"
import { type CompileContext, compile, fromSql } from "./compileExpr.ts"
import { LIVE, STATE_NAME, tableName, valueCol } from "./physical.ts"
import { fillSlots, scanShape, vectorSlots } from "./scanShape.ts"

/**
 * The output whose score is the scan's first order, a vector distance: it is
 * selected as the distance itself (see `scoreOfDistance`).
 */
const distanceOutput = (spec: Store.ScanSpec): string | undefined => {
  const first = spec.orderBy[0]?.node
  if (first?._tag !== "VectorScore") return undefined
  return spec.outputs.find((o) => {
    const n = o.node
    return (
      n === first ||
      (n._tag === "VectorScore" &&
        n.id === first.id &&
        n.metric === first.metric &&
        n.precision === first.precision &&
        (n.vector === first.vector ||
          (n.vector.length === first.vector.length && n.vector.every((x, i) => x === first.vector[i]))))
    )
  })?.key
}

/** A similarity score from pgvector's distance operator: 1 - cosine distance, -(negative inner product), l2. */
const scoreOfDistance = (metric: Expr.Metric, distance: number | null): number | null =>
  distance === null ? null : metric === "cosine" ? 1 - distance : metric === "ip" ? -distance : distance

export const make = (options: {
  readonly sql: SqlClient.SqlClient
  readonly database: Database["Service"]
  /** A statement's failure as a store error saying what was being done. */
  readonly storeError: (what: string) => (cause: SqlError.SqlError) => Store.StoreError
}) => {
  const { sql, database, storeError } = options
  const run = <A>(what: string, effect: Effect.Effect<A, SqlError.SqlError>) =>
    Effect.mapError(effect, storeError(what))

  /** The rows a handle sees: the live ones, or those of its version. */
  const visible = (table: Catalog.TableMeta): Statement.Fragment =>
    table.asOf === undefined
      ? sql.literal(`v_max = ${LIVE}`)
      : sql.literal(`v_min <= ${table.asOf} AND v_max > ${table.asOf}`)

  const compileContexts = new WeakMap<Catalog.TableMeta, CompileContext>()
  const compileContext = (table: Catalog.TableMeta): CompileContext => {
    let context = compileContexts.get(table)
    if (context === undefined) {
      context = makeCompileContext(table)
      compileContexts.set(table, context)
    }
    return context
  }
  const makeCompileContext = (table: Catalog.TableMeta): CompileContext => {
    const types = Catalog.columnTypes(table)
    return {
      sql,
      column: (id: number) => sql(valueCol(id)),
      errorColumn: (id: number, prop: Expr.ErrorProp) => sql(prop === "errorType" ? `et_${id}` : `em_${id}`),
      types,
      vector: (value: Float32Array) => database.vector(value)
    }
  }

  // Catalog entries are immutable: their stored column ids are worked out once.
  const storedIdsOf = new WeakMap<Catalog.TableMeta, ReadonlySet<number>>()
  const storedIds = (table: Catalog.TableMeta): ReadonlySet<number> => {
    let ids = storedIdsOf.get(table)
    if (ids === undefined) {
      ids = new Set(table.columns.filter((c) => c.computed === undefined || c.computed.stored).map((c) => c.id))
      storedIdsOf.set(table, ids)
    }
    return ids
  }

  const pushable: Store.Store["Service"]["pushable"] = (table, node) => {
    const stored = storedIds(table)
    // A stored column, or a vector score against one, always compiles.
    if (node._tag === "Column" || node._tag === "VectorScore") return stored.has(node.id)
    for (const id of Expr.columnIds(node)) if (!stored.has(id)) return false
    return Option.isSome(compile(node, compileContext(table)))
  }

  const compileOrDie = (
    table: Catalog.TableMeta,
    node: Expr.Node,
    context: CompileContext = compileContext(table)
  ): Statement.Fragment =>
    Option.getOrThrowWith(
      compile(node, context),
      () => new Error(`Tessera bug: expression ${Expr.show(node)} reached SQL but cannot be compiled`)
    )

  /** The distance operator an HNSW index of the metric orders by, as the index is written. */
  const distance = (node: Extract<Expr.Node, { _tag: "VectorScore" }>): Statement.Fragment => {
    const type = sql.literal(`${node.precision}(${node.vector.length})`)
    const operator = sql.literal(node.metric === "cosine" ? "<=>" : node.metric === "ip" ? "<#>" : "<->")
    return sql`${sql(valueCol(node.id))}::${type} ${operator} ${database.vector(node.vector)}::${type}`
  }

  const selectStatement = (
    table: Catalog.TableMeta,
    spec: Store.ScanSpec,
    page?: { readonly after: number; readonly limit: number }
  ): Statement.Statement<Record<string, unknown>> => {
    const parts: Array<Statement.Fragment> = [sql`rowid AS "$rowid"`]
    // A score that is also the order is selected as the raw distance (the score is
    // derived when decoding), and the order names it: one query vector, not two.
    const distanceKey = distanceOutput(spec)
    for (const output of spec.outputs) {
      parts.push(
        output.key === distanceKey && output.node._tag === "VectorScore"
          ? sql`${distance(output.node)} AS ${sql(output.key)}`
          : sql`${compileOrDie(table, output.node)} AS ${sql(output.key)}`
      )
    }
    for (const id of spec.cells ?? []) {
      parts.push(
        sql`${sql(`c_${id}`)} AS ${sql(`$cell${id}`)}, ${sql(`s_${id}`)} AS ${sql(`$s${id}`)}, ${sql(`et_${id}`)} AS ${sql(`$et${id}`)}, ${sql(`em_${id}`)} AS ${sql(`$em${id}`)}, ${sql(`ea_${id}`)} AS ${sql(`$ea${id}`)}`
      )
    }
    const conditions: Array<Statement.Fragment> = [visible(table)]
    for (const node of spec.where) conditions.push(sql`(${compileOrDie(table, node)}) IS TRUE`)
    if (spec.rowids !== undefined) conditions.push(sql`rowid = ANY(${`{${spec.rowids.join(",")}}`}::int8[])`)
    if (spec.baseRowids !== undefined) {
      conditions.push(sql`b_rowid = ANY(${`{${spec.baseRowids.join(",")}}`}::int8[])`)
    }
    if (spec.withBaseRowid) parts.push(sql.literal(`b_rowid AS "$baseRowid"`))
    if (page !== undefined) conditions.push(sql`rowid > ${page.after}`)
    const order: Array<Statement.Fragment> = spec.orderBy.map((o) => {
      if (o.node._tag === "VectorScore") {
        // Order by the raw distance operator, as the HNSW index orders, so the index serves it.
        const ascending = o.node.metric === "l2" ? !o.desc : o.desc
        const direction = sql.literal(ascending ? "ASC" : "DESC")
        return distanceKey !== undefined && o === spec.orderBy[0]
          ? sql`${sql(distanceKey)} ${direction}`
          : sql`${distance(o.node)} ${direction}`
      }
      const type = Expr.typeOf(o.node, Catalog.columnTypes(table))
      const text = type.kind === "String" || ColumnType.isMedia(type)
      const collate = text ? sql.literal(` COLLATE "C"`) : sql.literal("")
      return sql`${compileOrDie(table, o.node)}${collate} ${sql.literal(o.desc ? "DESC" : "ASC")}`
    })
    // A row-id tiebreak after a vector distance would stop the HNSW index from serving the order.
    if (!spec.orderBy.some((o) => o.node._tag === "VectorScore")) {
      order.push(sql`rowid ${sql.literal(spec.rowidOrder === "desc" ? "DESC" : "ASC")}`)
    }
    const limit = page?.limit ?? spec.limit
    return sql<Record<string, unknown>>`SELECT ${sql.csv(parts)}
      FROM ${sql.literal(tableName(table.id))}
      WHERE ${sql.and(conditions)}
      ORDER BY ${sql.csv(order)}
      ${limit === undefined ? sql.literal("") : sql.literal(`LIMIT ${Math.trunc(limit)}`)}
      ${page === undefined && spec.offset !== undefined ? sql`OFFSET ${spec.offset}` : sql.literal("")}`
  }

  const decodeRow = (table: Catalog.TableMeta, spec: Store.ScanSpec) => {
    const types = Catalog.columnTypes(table)
    const outputTypes = spec.outputs.map((o) => [o.key, Expr.typeOf(o.node, types)] as const)
    const cellTypes = (spec.cells ?? []).map((id) => [id, types(id)!] as const)
    const distanceKey = distanceOutput(spec)
    const metric = spec.orderBy[0]?.node._tag === "VectorScore" ? spec.orderBy[0].node.metric : undefined
    return (raw: Record<string, unknown>): Record<string, unknown> => {
      const out: Record<string, unknown> = { $rowid: Number(raw.$rowid) }
      if (raw.$baseRowid !== undefined) out.$baseRowid = Number(raw.$baseRowid)
      for (const [key, type] of outputTypes) out[key] = fromSql(type, raw[key])
      if (distanceKey !== undefined && metric !== undefined) {
        out[distanceKey] = scoreOfDistance(metric, out[distanceKey] as number | null)
      }
      for (const [id, type] of cellTypes) {
        out[`$cell${id}`] = {
          value: fromSql(type, raw[`$cell${id}`]),
          state: STATE_NAME[Number(raw[`$s${id}`])] ?? "pending",
          errorType: (raw[`$et${id}`] as string | null) ?? null,
          errorMessage: (raw[`$em${id}`] as string | null) ?? null,
          attempts: Number(raw[`$ea${id}`] ?? 0)
        } satisfies Store.Cell
      }
      return out
    }
  }

  /**
   * A scan's SQL and row decoder, compiled once per shape (see `scanShape`) and
   * table version: a query repeated with other vectors (or the same literals)
   * neither builds nor compiles its statement again.
   */
  interface CompiledScan {
    readonly text: string
    readonly params: ReadonlyArray<unknown>
    readonly slots: ReadonlyArray<readonly [slot: number, hole: number]>
    readonly decode: (raw: Record<string, unknown>) => Record<string, unknown>
  }
  const SCAN_SHAPES_PER_TABLE = 64
  const compiledScans = new WeakMap<Catalog.TableMeta, Map<string, CompiledScan>>()
  const prepareScan = (
    table: Catalog.TableMeta,
    spec: Store.ScanSpec
  ): { readonly statement: Statement.Statement<Record<string, unknown>>; readonly decode: CompiledScan["decode"] } => {
    const shape = scanShape(spec)
    if (shape === undefined) return { statement: selectStatement(table, spec), decode: decodeRow(table, spec) }
    let shapes = compiledScans.get(table)
    if (shapes === undefined) {
      shapes = new Map()
      compiledScans.set(table, shapes)
    }
    let compiled = shapes.get(shape.key)
    if (compiled === undefined) {
      const [text, params] = selectStatement(table, spec).compile()
      compiled = { text, params, slots: vectorSlots(params, shape), decode: decodeRow(table, spec) }
      if (shapes.size >= SCAN_SHAPES_PER_TABLE) shapes.delete(shapes.keys().next().value!)
      shapes.set(shape.key, compiled)
    }
    const params =
      compiled.slots.length === 0 ? compiled.params : fillSlots(compiled.params, compiled.slots, shape.vectors)
    return { statement: sql.unsafe<Record<string, unknown>>(compiled.text, params), decode: compiled.decode }
  }

  /** The HNSW search breadth a scan ordered by a vector score asks for, if any. */
  const efSearchOf = (spec: Store.ScanSpec): number | undefined => {
    const first = spec.orderBy[0]?.node
    return first?._tag === "VectorScore" ? first.efSearch : undefined
  }

  const scanAll: Store.Store["Service"]["scanAll"] = (table, spec) => {
    const { statement, decode } = prepareScan(table, spec)
    const efSearch = efSearchOf(spec)
    // `hnsw.ef_search` for this query alone: set for its transaction only.
    const rows =
      efSearch === undefined
        ? statement
        : sql.withTransaction(
            Effect.andThen(sql`SELECT set_config('hnsw.ef_search', ${String(Math.trunc(efSearch))}, true)`, statement)
          )
    return run(`reading ${table.path}`, rows).pipe(Effect.map((rows) => rows.map(decode)))
  }

  const scanPage: Store.Store["Service"]["scanPage"] = (table, spec, after, limit) =>
    run(`reading ${table.path}`, selectStatement(table, { ...spec, orderBy: [] }, { after, limit })).pipe(
      Effect.map((rows) => rows.map(decodeRow(table, spec)))
    )

  const scan: Store.Store["Service"]["scan"] = (table, spec) => {
    // A nearest-rows scan with its own search breadth is a short one: read whole, in its transaction.
    if (efSearchOf(spec) !== undefined) return Stream.fromIterableEffect(scanAll(table, spec))
    const { statement, decode } = prepareScan(table, spec)
    return statement.stream.pipe(Stream.map(decode)).pipe(Stream.mapError(storeError(`reading ${table.path}`)))
  }

  const count: Store.Store["Service"]["count"] = (table, where) => {
    const conditions: Array<Statement.Fragment> = [visible(table)]
    for (const node of where) conditions.push(sql`(${compileOrDie(table, node)}) IS TRUE`)
    return run(
      `counting ${table.path}`,
      sql<{ n: bigint }>`SELECT count(*) AS n FROM ${sql.literal(tableName(table.id))} WHERE ${sql.and(conditions)}`
    ).pipe(Effect.map((rows) => Number(rows[0]!.n)))
  }

  return { visible, compileContext, compileOrDie, pushable, decodeRow, scanAll, scanPage, scan, count }
}
