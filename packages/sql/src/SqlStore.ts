/**
 * SqlStore: the `Store` contract on PostgreSQL (either backend).
 *
 * The catalog lives in the `tessera` schema. Each table is one physical
 * table `tessera_data.t_<id>` whose columns are named by id (`c_<id>`), never
 * by user names, so renames are metadata-only and names never reach SQL
 * text. Every row has a stable `rowid` and is visible at version V iff
 * `v_min <= V < v_max`; the live rows have `v_max = 2147483647`. A stored
 * computed column has, beside its value, its cell state `s_<id>` (0 pending,
 * 1 done, 2 error) and error type, message and attempt count; so has a media
 * data column (a value that failed its check on write is an error).
 */
import { Catalog, type ColumnType, Expr, Store } from "@tessera/core"
import { PgClient, PgTypes } from "@effect/sql-pg"
import { Effect, Layer, PubSub, Queue, Result, Schedule, Stream } from "effect"
import type { SqlError } from "effect/sql"
import { SqlClient, type Statement } from "effect/sql"
import { type CompileContext, sqlType } from "./internal/compileExpr.ts"
import { LIVE, STATE_CODE, tableName, valueCol } from "./internal/physical.ts"
import * as Scans from "./internal/scans.ts"
import { Database } from "./Database.ts"

/** The first key of the advisory locks that mark live workers (the second is the worker id). */
const WORKER_LOCK = 0x7e55
const CHANNEL = "tessera_changes"

const parseEvent = (payload: string, origin: string): Store.ChangeEvent | undefined => {
  try {
    const event = JSON.parse(payload) as Store.ChangeEvent & { readonly origin?: string }
    if (event.origin === origin) return undefined
    return (event.kind === "schema" || event.kind === "rows") && typeof event.table === "number"
      ? { kind: event.kind, table: event.table }
      : undefined
  } catch {
    return undefined
  }
}
// The driver sends the parameter count as an int16.
const MAX_PARAMS = 32000

interface ArraySlot {
  /** The element OID of the array parameter. */
  readonly oid: number
  /** The SQL array type of the parameter. */
  readonly cast: string
  /** The SQL that turns an element into the column's value. */
  readonly select: (element: string) => string
}

const INT2_SLOT: ArraySlot = { oid: PgTypes.OID.int2, cast: "int2[]", select: (e) => e }
const TEXT_SLOT: ArraySlot = { oid: PgTypes.OID.text, cast: "text[]", select: (e) => e }

/** How a column type travels in an array parameter (numbers as float8: exact for safe integers). */
const arraySlot = (type: ColumnType.ColumnType): ArraySlot => {
  switch (type.kind) {
    case "Int":
      return { oid: PgTypes.OID.float8, cast: "float8[]", select: (e) => `${e}::int8` }
    case "Float":
      return { oid: PgTypes.OID.float8, cast: "float8[]", select: (e) => e }
    case "Bool":
      return { oid: PgTypes.OID.bool, cast: "bool[]", select: (e) => e }
    case "Timestamp":
      return { oid: PgTypes.OID.timestamptz, cast: "timestamptz[]", select: (e) => e }
    case "Binary":
      return { oid: PgTypes.OID.bytea, cast: "bytea[]", select: (e) => e }
    case "UUID":
    case "Date":
    case "Json":
    case "Array":
      return { oid: PgTypes.OID.text, cast: "text[]", select: (e) => `${e}::${sqlType(type)}` }
    default:
      return TEXT_SLOT
  }
}

const arrayValue = (type: ColumnType.ColumnType, value: unknown): unknown => {
  if (value === null || value === undefined) return null
  if (type.kind === "Json" || type.kind === "Array") return JSON.stringify(value)
  return value
}

/** A value written to a column with a cell: a media data column takes a plain value as a done cell. */
const cellOf = (column: Catalog.ColumnMeta, value: unknown): Store.Cell =>
  column.computed === undefined && (value === null || value === undefined || typeof value !== "object")
    ? { value: value ?? null, state: "done", errorType: null, errorMessage: null, attempts: 0 }
    : (value as Store.Cell)

/** The database's own words for a failure (the driver's message is generic). */
export const sqlMessage = (cause: SqlError.SqlError): string => {
  const inner = (cause.reason as { readonly cause?: unknown }).cause
  const detail = inner instanceof Error ? inner.message : undefined
  return detail !== undefined && detail !== cause.message ? `${cause.message}: ${detail}` : cause.message
}

const isConflict = (error: unknown): boolean => {
  const reason = (error as { readonly _tag?: unknown; readonly reason?: { readonly _tag?: string } })?.reason
  return (
    (error as { readonly _tag?: unknown })?._tag === "SqlError" &&
    (reason?._tag === "SerializationError" || reason?._tag === "DeadlockError" || reason?._tag === "LockTimeoutError")
  )
}

/**
 * Runs a transaction again when the database aborted it for a conflict with
 * another one (serialization failure, deadlock, lock timeout): writers that
 * race end consistent instead of surfacing the conflict.
 */
const retryConflicts = <A, E, R>(transaction: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.retry(transaction, {
    while: isConflict,
    schedule: Schedule.exponential("20 millis").pipe(Schedule.jittered),
    times: 8
  })

const storeError =
  (what: string) =>
  (cause: SqlError.SqlError): Store.StoreError =>
    new Store.StoreError({ message: `${what}: ${sqlMessage(cause)}`, cause })

const notFound = (path: string, what = "table") =>
  new Catalog.CatalogError({ reason: "NotFound", path, message: `${what} ${JSON.stringify(path)} does not exist` })

interface ColumnRow {
  readonly column_id: number
  readonly name: string
  readonly definition: {
    readonly type: ColumnType.ColumnType
    readonly nullable: boolean
    readonly cells?: boolean | undefined
    readonly computed?: {
      readonly expr: unknown
      readonly onError: Catalog.OnError
      readonly stored: boolean
      readonly cache?: boolean | undefined
    }
  }
  readonly added_in: number
}

interface TableDefinition {
  readonly primaryKey?: ReadonlyArray<number> | undefined
  readonly view?:
    | {
        readonly base: number
        readonly filter: ReadonlyArray<unknown>
        readonly outputs: ReadonlyArray<{ readonly name: string; readonly node: unknown }>
        readonly snapshot: boolean
        readonly baseVersion: number
        readonly iterator?:
          | {
              readonly fn: string
              readonly version: number
              readonly args: ReadonlyArray<unknown>
              readonly outputs: ReadonlyArray<string>
            }
          | undefined
      }
    | undefined
}

interface DirRow {
  readonly id: number
  readonly parent_id: number | null
  readonly name: string
}

/** A parameter for a value of a column type, with the SQL cast that types it. */
const param = (
  database: Database["Service"],
  type: ColumnType.ColumnType,
  value: unknown
): { readonly value: unknown; readonly cast: string } => {
  const cast = sqlType(type)
  if (value === null || value === undefined) return { value: null, cast }
  switch (type.kind) {
    case "Json":
    case "Array":
      return { value: JSON.stringify(value), cast }
    case "Vector":
      return { value: database.vector(value as Float32Array), cast }
    case "Int":
      return { value: Number.isSafeInteger(value) ? value : Number(value), cast }
    default:
      return { value, cast }
  }
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const pg = yield* PgClient.PgClient
  const database = yield* Database
  const changesHub = yield* PubSub.unbounded<Store.ChangeEvent>()
  // Tells this process's own notifications apart from other processes'.
  const origin = crypto.randomUUID()

  if (database.backend === "server") {
    // Other processes' changes arrive by LISTEN/NOTIFY.
    yield* Effect.gen(function* () {
      const queue = yield* pg.listen(CHANNEL)
      while (true) {
        const notification = yield* Queue.take(queue)
        const event = parseEvent(notification.payload, origin)
        if (event !== undefined) yield* PubSub.publish(changesHub, event)
      }
    }).pipe(
      Effect.tapError((error) =>
        Effect.logWarning("Tessera: the change feed from the server failed; reconnecting", error)
      ),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.forkScoped
    )
  }

  // Catalog entries for reads, dropped on every schema change of their table
  // (from this process, or from others through the change feed).
  const readCache = new Map<string, Catalog.TableMeta>()
  const forget = (table: number) => {
    for (const [path, meta] of readCache) if (meta.id === table) readCache.delete(path)
  }
  yield* Stream.fromPubSub(changesHub).pipe(
    Stream.runForEach((event) =>
      Effect.sync(() => {
        if (event.kind === "schema") forget(event.table)
      })
    ),
    Effect.forkScoped
  )

  const notify: Store.Store["Service"]["notify"] = (event) =>
    Effect.gen(function* () {
      // This process's own schema changes are visible to its next read at once.
      if (event.kind === "schema") forget(event.table)
      yield* PubSub.publish(changesHub, event)
      if (database.backend === "server") {
        yield* pg.notify(CHANNEL, JSON.stringify({ ...event, origin })).pipe(Effect.ignore)
      }
    })

  const run = <A>(what: string, effect: Effect.Effect<A, SqlError.SqlError>) =>
    Effect.mapError(effect, storeError(what))

  const unsafe = <A extends object = Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
    sql.unsafe<A>(text, params as Array<unknown>)

  // -------------------------------------------------------------------------
  // Directories and paths
  // -------------------------------------------------------------------------

  const loadDirs = run(
    "reading directories",
    sql<DirRow>`SELECT id::int4 AS id, parent_id::int4 AS parent_id, name FROM tessera.dirs`
  )

  const dirPath = (dirs: ReadonlyMap<number, DirRow>, id: number | null): string => {
    const parts: Array<string> = []
    let current = id
    while (current !== null) {
      const dir = dirs.get(current)
      if (dir === undefined) break
      parts.unshift(dir.name)
      current = dir.parent_id
    }
    return parts.join("/")
  }

  /** Resolves a directory path to its id (null for the root). */
  const resolveDir = Effect.fnUntraced(function* (parts: ReadonlyArray<string>, fullPath: string) {
    let parent: number | null = null
    for (const [i, name] of parts.entries()) {
      const rows: ReadonlyArray<{ id: number }> = yield* run(
        "resolving a directory",
        sql<{ id: number }>`SELECT id::int4 AS id FROM tessera.dirs
          WHERE coalesce(parent_id, 0) = ${parent ?? 0} AND name = ${name}`
      )
      if (rows.length === 0) {
        return yield* notFound(parts.slice(0, i + 1).join("/"), `directory (in ${JSON.stringify(fullPath)})`)
      }
      parent = rows[0]!.id
    }
    return parent
  })

  const parse = (path: string, allowRoot = false) => {
    const parts = Catalog.parsePath(path, { allowRoot })
    return parts instanceof Catalog.CatalogError ? Effect.fail(parts) : Effect.succeed(parts)
  }

  /** What occupies a name in a directory, if anything. */
  const occupant = (dirId: number | null, name: string) =>
    run(
      "checking a name",
      sql<{ kind: string }>`
        SELECT 'directory' AS kind FROM tessera.dirs WHERE coalesce(parent_id, 0) = ${dirId ?? 0} AND name = ${name}
        UNION ALL
        SELECT 'table' AS kind FROM tessera.tables WHERE coalesce(dir_id, 0) = ${dirId ?? 0} AND name = ${name}`
    ).pipe(Effect.map((rows) => rows[0]?.kind))

  const createDir: Store.Store["Service"]["createDir"] = (path, options) =>
    Effect.gen(function* () {
      const parts = yield* parse(path)
      yield* sql
        .withTransaction(
          Effect.gen(function* () {
            let parent: number | null = null
            for (const [i, name] of parts.entries()) {
              const last = i === parts.length - 1
              const rows: ReadonlyArray<{ id: number }> = yield* run(
                "creating a directory",
                sql<{ id: number }>`SELECT id::int4 AS id FROM tessera.dirs
                WHERE coalesce(parent_id, 0) = ${parent ?? 0} AND name = ${name}`
              )
              if (rows.length > 0) {
                if (last) {
                  if (options.ifExists === "ignore") return
                  return yield* new Catalog.CatalogError({
                    reason: "AlreadyExists",
                    path,
                    message: `directory ${JSON.stringify(path)} already exists`
                  })
                }
                parent = rows[0]!.id
                continue
              }
              if (!last && !options.parents) {
                return yield* notFound(parts.slice(0, i + 1).join("/"), "directory")
              }
              const taken = yield* occupant(parent, name)
              if (taken !== undefined) {
                return yield* new Catalog.CatalogError({
                  reason: "AlreadyExists",
                  path,
                  message: `cannot create directory ${JSON.stringify(parts.slice(0, i + 1).join("/"))}: a ${taken} has that path`
                })
              }
              const inserted: ReadonlyArray<{ id: number }> = yield* run(
                "creating a directory",
                sql<{
                  id: number
                }>`INSERT INTO tessera.dirs (parent_id, name) VALUES (${parent}, ${name}) RETURNING id::int4 AS id`
              )
              parent = inserted[0]!.id
            }
          })
        )
        .pipe(Effect.catchTag("SqlError", (e) => Effect.fail(storeError("creating a directory")(e))))
    })

  const subtree = Effect.fnUntraced(function* (rootId: number | null) {
    const dirs = yield* loadDirs
    const ids = new Set<number>()
    const collect = (parent: number | null) => {
      for (const d of dirs) {
        if (d.parent_id === parent) {
          ids.add(d.id)
          collect(d.id)
        }
      }
    }
    collect(rootId)
    return { dirs, ids }
  })

  const listDirs: Store.Store["Service"]["listDirs"] = (path, recursive) =>
    Effect.gen(function* () {
      const parts = yield* parse(path, true)
      const dirId = yield* resolveDir(parts, path)
      const { dirs, ids } = yield* subtree(dirId)
      const byId = new Map(dirs.map((d) => [d.id, d]))
      return dirs
        .filter((d) => (recursive ? ids.has(d.id) : d.parent_id === dirId))
        .map((d) => dirPath(byId, d.id))
        .sort()
    })

  const listTables: Store.Store["Service"]["listTables"] = (path, recursive) =>
    Effect.gen(function* () {
      const parts = yield* parse(path, true)
      const dirId = yield* resolveDir(parts, path)
      const { dirs, ids } = yield* subtree(dirId)
      const byId = new Map(dirs.map((d) => [d.id, d]))
      const tables = yield* run(
        "listing tables",
        sql<{ dir_id: number | null; name: string }>`SELECT dir_id::int4 AS dir_id, name FROM tessera.tables`
      )
      return tables
        .filter((t) => t.dir_id === dirId || (recursive && t.dir_id !== null && ids.has(t.dir_id)))
        .map((t) => {
          const dir = dirPath(byId, t.dir_id)
          return dir === "" ? t.name : `${dir}/${t.name}`
        })
        .sort()
    })

  // -------------------------------------------------------------------------
  // Tables
  // -------------------------------------------------------------------------

  /** A catalog entry from its rows. */
  const metaOf = (
    id: number,
    path: string,
    t: {
      readonly kind: Catalog.TableKind
      readonly version: number
      readonly schema_version: number
      readonly definition: TableDefinition
    },
    columns: ReadonlyArray<ColumnRow>,
    indexes: ReadonlyArray<{
      readonly id: number
      readonly name: string
      readonly definition: Omit<Catalog.IndexMeta, "id" | "name">
    }>,
    asOf: number | undefined,
    names: ReadonlyMap<number, string> = new Map(columns.map((c) => [c.column_id, c.name]))
  ): Catalog.TableMeta => {
    const schemaVersion = t.schema_version
    return {
      id,
      path,
      kind: t.kind,
      version: asOf ?? t.version,
      schemaVersion,
      ...(asOf === undefined ? {} : { asOf }),
      ...(t.definition?.primaryKey === undefined ? {} : { primaryKey: t.definition.primaryKey }),
      ...(indexes.length === 0
        ? {}
        : { indexes: indexes.map((i): Catalog.IndexMeta => ({ ...i.definition, id: i.id, name: i.name })) }),
      ...(t.definition?.view === undefined
        ? {}
        : {
            view: {
              base: t.definition.view.base,
              filter: t.definition.view.filter.map(Expr.decode),
              outputs: t.definition.view.outputs.map((o) => ({ name: o.name, node: Expr.decode(o.node) })),
              snapshot: t.definition.view.snapshot,
              baseVersion: t.definition.view.baseVersion,
              ...(t.definition.view.iterator === undefined
                ? {}
                : {
                    iterator: {
                      ...t.definition.view.iterator,
                      args: t.definition.view.iterator.args.map(Expr.decode)
                    }
                  })
            }
          }),
      columns: columns.map(
        (c): Catalog.ColumnMeta => ({
          id: c.column_id,
          name: names.get(c.column_id)!,
          type: c.definition.type,
          nullable: c.definition.nullable,
          ...(c.definition.cells === true ? { cells: true } : {}),
          addedIn: c.added_in,
          computed:
            c.definition.computed === undefined
              ? undefined
              : {
                  expr: Expr.decode(c.definition.computed.expr),
                  onError: c.definition.computed.onError,
                  stored: c.definition.computed.stored,
                  cache: c.definition.computed.cache
                }
        })
      )
    } satisfies Catalog.TableMeta
  }

  /** A table's catalog entry: current, or as of version `asOf` (columns and names of then). */
  const loadMeta = Effect.fnUntraced(function* (id: number, path: string, asOf?: number) {
    const tables = yield* run(
      "reading a table",
      sql<{ kind: Catalog.TableKind; version: number; schema_version: number; definition: TableDefinition }>`
        SELECT kind, version, schema_version, definition FROM tessera.tables WHERE id = ${id}`
    )
    if (tables.length === 0) return yield* notFound(path)
    const t = tables[0]!
    let schemaVersion = t.schema_version
    if (asOf !== undefined) {
      if (!Number.isInteger(asOf) || asOf < 0 || asOf > t.version) {
        return yield* new Catalog.CatalogError({
          reason: "NotFound",
          path,
          message: `${path} has no version ${asOf} (its versions are 0 to ${t.version})`
        })
      }
      const at = yield* run(
        "reading a version",
        sql<{ schema_version: number }>`SELECT schema_version FROM tessera.versions
          WHERE table_id = ${id} AND version <= ${asOf} ORDER BY version DESC LIMIT 1`
      )
      schemaVersion = at[0]?.schema_version ?? 0
    }
    const columns = yield* run(
      "reading columns",
      asOf === undefined
        ? sql<ColumnRow>`SELECT column_id, name, definition, added_in FROM tessera.columns
            WHERE table_id = ${id} AND dropped_in IS NULL ORDER BY column_id`
        : sql<ColumnRow>`SELECT column_id, name, definition, added_in FROM tessera.columns
            WHERE table_id = ${id} AND added_in <= ${asOf} AND (dropped_in IS NULL OR dropped_in > ${asOf})
            ORDER BY column_id`
    )
    const indexes = yield* run(
      "reading indexes",
      sql<{ id: number; name: string; definition: Omit<Catalog.IndexMeta, "id" | "name"> }>`
        SELECT id::int4 AS id, name, definition FROM tessera.indexes
        WHERE table_id = ${id} AND added_in <= ${asOf ?? t.version}
          AND (dropped_in IS NULL OR dropped_in > ${asOf ?? t.version})
        ORDER BY id`
    )
    // Names as of `asOf`: undo the renames made after it, newest first.
    const names = new Map(columns.map((c) => [c.column_id, c.name]))
    if (asOf !== undefined) {
      const renames = yield* run(
        "reading renames",
        sql<{ column_id: number; old_name: string }>`SELECT column_id, old_name FROM tessera.renames
          WHERE table_id = ${id} AND version > ${asOf} ORDER BY version DESC`
      )
      for (const r of renames) if (names.has(r.column_id)) names.set(r.column_id, r.old_name)
    }
    return metaOf(id, path, { ...t, schema_version: schemaVersion }, columns, indexes, asOf, names)
  })

  const findTable = Effect.fnUntraced(function* (path: string) {
    const parts = yield* parse(path)
    const dirId = yield* resolveDir(parts.slice(0, -1), path)
    const name = parts[parts.length - 1]!
    const rows = yield* run(
      "finding a table",
      sql<{
        id: number
      }>`SELECT id::int4 AS id FROM tessera.tables WHERE coalesce(dir_id, 0) = ${dirId ?? 0} AND name = ${name}`
    )
    return { dirId, name, id: rows[0]?.id }
  })

  /** The current catalog entry of the table at a path, in one round trip. */
  const loadCurrent = Effect.fnUntraced(function* (path: string) {
    const parts = yield* parse(path)
    const rows = yield* run(
      "reading a table",
      sql<{
        id: number
        kind: Catalog.TableKind
        version: number
        schema_version: number
        definition: TableDefinition
        columns: ReadonlyArray<ColumnRow>
        indexes: ReadonlyArray<{ id: number; name: string; definition: Omit<Catalog.IndexMeta, "id" | "name"> }>
      }>`SELECT t.id::int4 AS id, t.kind, t.version, t.schema_version, t.definition,
          (SELECT coalesce(json_agg(c ORDER BY c.column_id), '[]'::json) FROM (
             SELECT column_id, name, definition, added_in FROM tessera.columns
             WHERE table_id = t.id AND dropped_in IS NULL) c) AS columns,
          (SELECT coalesce(json_agg(i ORDER BY i.id), '[]'::json) FROM (
             SELECT id, name, definition FROM tessera.indexes
             WHERE table_id = t.id AND dropped_in IS NULL) i) AS indexes
        FROM tessera.tables t WHERE t.id = tessera.table_at(${`{${parts.map((p) => `"${p}"`).join(",")}}`}::text[])`
    )
    const t = rows[0]
    if (t === undefined) {
      // Say which part of the path is missing.
      yield* findTable(path)
      return yield* notFound(path)
    }
    return metaOf(t.id, path, t, t.columns, t.indexes, undefined)
  })

  const getTable: Store.Store["Service"]["getTable"] = (path, version, options) =>
    version === undefined
      ? options?.cached === true && readCache.has(path)
        ? Effect.succeed(readCache.get(path)!)
        : Effect.tap(loadCurrent(path), (meta) => Effect.sync(() => readCache.set(path, meta)))
      : Effect.gen(function* () {
          const { id } = yield* findTable(path)
          if (id === undefined) return yield* notFound(path)
          return yield* loadMeta(id, path, version)
        })

  const columnDefinition = (column: Store.NewColumn) => ({
    type: column.type,
    nullable: column.nullable,
    ...(column.cells === true ? { cells: true } : {}),
    ...(column.computed === undefined
      ? {}
      : {
          computed: {
            expr: Expr.encode(column.computed.expr),
            onError: column.computed.onError,
            stored: column.computed.stored,
            ...(column.computed.cache === undefined ? {} : { cache: column.computed.cache })
          }
        })
  })

  const physicalColumns = (id: number, column: Store.NewColumn): ReadonlyArray<string> => {
    if (!Catalog.hasCell(column)) return column.computed === undefined ? [`c_${id} ${sqlType(column.type)}`] : []
    const cell = [
      `c_${id} ${sqlType(column.type)}`,
      `s_${id} int2 NOT NULL DEFAULT ${column.computed === undefined ? STATE_CODE.done : STATE_CODE.pending}`,
      `et_${id} text`,
      `em_${id} text`,
      `ea_${id} int2 NOT NULL DEFAULT 0`
    ]
    // The worker holding a computed cell while it computes it (null: nobody).
    return column.computed === undefined ? cell : [...cell, `l_${id} int4`]
  }

  const dropPhysical = (id: number) =>
    run(
      "dropping a table",
      Effect.gen(function* () {
        yield* unsafe(`DROP TABLE IF EXISTS ${tableName(id)}`)
        yield* unsafe(`DROP SEQUENCE IF EXISTS ${tableName(id)}_rowid_seq`)
        yield* sql`DELETE FROM tessera.tables WHERE id = ${id}`
        forget(id)
      })
    )

  const createTable: Store.Store["Service"]["createTable"] = (path, columns, options) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const { dirId, name, id: existing } = yield* findTable(path)
          if (existing !== undefined) {
            if (options.ifExists === "ignore") return { table: yield* loadMeta(existing, path), created: false }
            if (options.ifExists === "error") {
              return yield* new Catalog.CatalogError({
                reason: "AlreadyExists",
                path,
                message: `table ${JSON.stringify(path)} already exists (use ifExists: "ignore", "replace" or "replace_force")`
              })
            }
            yield* dropWithDependents(existing, path, options.ifExists === "replace_force")
          } else if ((yield* occupant(dirId, name)) === "directory") {
            return yield* new Catalog.CatalogError({
              reason: "AlreadyExists",
              path,
              message: `cannot create table ${JSON.stringify(path)}: a directory has that path`
            })
          }
          const seen = new Set<string>()
          for (const c of columns) {
            if (seen.has(c.name)) {
              return yield* new Catalog.CatalogError({
                reason: "InvalidName",
                path,
                message: `duplicate column name ${JSON.stringify(c.name)}`
              })
            }
            seen.add(c.name)
          }
          const primaryKey: Array<number> = []
          for (const key of options.primaryKey ?? []) {
            const index = columns.findIndex((c) => c.name === key)
            const column = columns[index]
            if (column === undefined || column.computed !== undefined || column.nullable) {
              return yield* new Catalog.CatalogError({
                reason: "InvalidDefinition",
                path,
                message: `primary key column ${JSON.stringify(key)} must be a non-nullable data column of ${path}`
              })
            }
            primaryKey.push(index + 1)
          }
          const defs: Array<string> = []
          const view = options.view
          const definition: TableDefinition = {
            ...(primaryKey.length > 0 ? { primaryKey } : {}),
            ...(view === undefined
              ? {}
              : {
                  view: {
                    base: view.base,
                    filter: view.filter.map(Expr.encode),
                    outputs: view.outputs.map((o) => ({ name: o.name, node: Expr.encode(o.node) })),
                    snapshot: view.snapshot,
                    baseVersion: view.baseVersion,
                    ...(view.iterator === undefined
                      ? {}
                      : { iterator: { ...view.iterator, args: view.iterator.args.map(Expr.encode) } })
                  }
                })
          }
          const kind = view === undefined ? "table" : view.snapshot ? "snapshot" : "view"
          const inserted = yield* run(
            "creating a table",
            sql<{ id: number }>`INSERT INTO tessera.tables (dir_id, name, kind, next_column_id, definition)
              VALUES (${dirId}, ${name}, ${kind}, ${columns.length + 1}, ${JSON.stringify(definition)}::jsonb)
              RETURNING id::int4 AS id`
          )
          if (view !== undefined) defs.push("b_rowid int8")
          const id = inserted[0]!.id
          for (const [i, column] of columns.entries()) {
            const columnId = i + 1
            yield* run(
              "creating a table",
              sql`INSERT INTO tessera.columns (table_id, column_id, name, definition, added_in)
                VALUES (${id}, ${columnId}, ${column.name}, ${JSON.stringify(columnDefinition(column))}::jsonb, 0)`
            )
            defs.push(...physicalColumns(columnId, column))
          }
          yield* run(
            "creating a table",
            Effect.gen(function* () {
              yield* unsafe(`CREATE SEQUENCE ${tableName(id)}_rowid_seq`)
              yield* unsafe(`CREATE TABLE ${tableName(id)} (
                rowid int8 NOT NULL DEFAULT nextval('${tableName(id)}_rowid_seq'),
                v_min int4 NOT NULL,
                v_max int4 NOT NULL DEFAULT ${LIVE},
                ${defs.map((d) => `${d},`).join("\n")}
                PRIMARY KEY (rowid, v_min)
              )`)
              yield* unsafe(`ALTER SEQUENCE ${tableName(id)}_rowid_seq OWNED BY ${tableName(id)}.rowid`)
              if (view !== undefined) {
                yield* unsafe(`CREATE INDEX t_${id}_base ON ${tableName(id)} (b_rowid) WHERE v_max = ${LIVE}`)
              }
              if (primaryKey.length > 0) {
                // Unique among live rows: a deleted key can be used again.
                yield* unsafe(
                  `CREATE UNIQUE INDEX t_${id}_pk ON ${tableName(id)} (${primaryKey.map((k) => `c_${k}`).join(", ")}) WHERE v_max = ${LIVE}`
                )
              }
              yield* sql`INSERT INTO tessera.versions (table_id, version, schema_version, change_type, schema_change)
                VALUES (${id}, 0, 0, 'schema', 'Initial Version')`
            })
          )
          return { table: yield* loadMeta(id, path), created: true }
        })
      )
      .pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(storeError(`creating table ${path}`)(e))),
        Effect.tap(({ table, created }) => (created ? notify({ kind: "schema", table: table.id }) : Effect.void))
      )

  const opclass = (index: Pick<Catalog.IndexMeta, "metric" | "precision">) =>
    `${index.precision}_${index.metric === "ip" ? "ip" : index.metric === "l2" ? "l2" : "cosine"}_ops`

  const addIndex: Store.Store["Service"]["addIndex"] = (table, index) =>
    Effect.gen(function* () {
      if (table.indexes?.some((i) => i.name === index.name)) {
        return yield* new Catalog.CatalogError({
          reason: "AlreadyExists",
          path: table.path,
          message: `${table.path} already has an index named ${JSON.stringify(index.name)}`
        })
      }
      return yield* schemaChange(table, `Added index: ${index.name}`, (version) =>
        Effect.gen(function* () {
          const { name, ...definition } = index
          const rows = yield* sql<{ id: number }>`INSERT INTO tessera.indexes (table_id, name, definition, added_in)
            VALUES (${table.id}, ${name}, ${JSON.stringify(definition)}::jsonb, ${version}) RETURNING id::int4 AS id`
          const id = rows[0]!.id
          if (index.kind === "text") {
            // The expression `matches` compiles to, so the index serves full-text queries.
            const language = (index.language ?? "english").replace(/[^a-z_]/g, "")
            yield* unsafe(
              `CREATE INDEX tidx_${table.id}_${id} ON ${tableName(table.id)}
               USING gin (to_tsvector('${language}'::regconfig, coalesce(c_${index.column}, '')))
               WHERE v_max = ${LIVE}`
            )
            return
          }
          // The indexed expression is the one `VectorScore` compiles to, so queries use the index.
          yield* unsafe(
            `CREATE INDEX tidx_${table.id}_${id} ON ${tableName(table.id)}
             USING hnsw ((c_${index.vectors}::${index.precision}(${index.dimension})) ${opclass(index)})
             WITH (m = ${Math.floor(index.m)}, ef_construction = ${Math.floor(index.efConstruction)})
             WHERE v_max = ${LIVE}`
          )
        })
      )
    })

  const dropIndex: Store.Store["Service"]["dropIndex"] = (table, index) =>
    schemaChange(table, `Dropped index: ${index.name}`, (version) =>
      Effect.gen(function* () {
        yield* sql`UPDATE tessera.indexes SET dropped_in = ${version} WHERE id = ${index.id}`
        yield* unsafe(`DROP INDEX IF EXISTS tessera_data.tidx_${table.id}_${index.id}`)
      })
    )

  /** The path of a table by id (undefined when it no longer exists). */
  const pathOf = Effect.fnUntraced(function* (id: number) {
    const rows = yield* run(
      "finding a table",
      sql<{
        dir_id: number | null
        name: string
      }>`SELECT dir_id::int4 AS dir_id, name FROM tessera.tables WHERE id = ${id}`
    )
    if (rows.length === 0) return undefined
    const dirs = yield* loadDirs
    const dir = dirPath(new Map(dirs.map((d) => [d.id, d])), rows[0]!.dir_id)
    return dir === "" ? rows[0]!.name : `${dir}/${rows[0]!.name}`
  })

  const dependentIds = (id: number) =>
    run(
      "finding views",
      sql<{ id: number }>`SELECT id::int4 AS id FROM tessera.tables
        WHERE (definition -> 'view' ->> 'base')::int8 = ${id} ORDER BY id`
    ).pipe(Effect.map((rows) => rows.map((r) => r.id)))

  const dependentsOf: Store.Store["Service"]["dependentsOf"] = (table) =>
    Effect.gen(function* () {
      const out: Array<Catalog.TableMeta> = []
      for (const id of yield* dependentIds(table.id)) {
        const path = yield* pathOf(id)
        if (path !== undefined) out.push(yield* loadMeta(id, path).pipe(Effect.orDie))
      }
      return out
    })

  /** Drops a table's physical storage and catalog entry, and (forced) its views first. */
  const dropWithDependents = (
    id: number,
    path: string,
    force: boolean
  ): Effect.Effect<void, Catalog.CatalogError | Store.StoreError> =>
    Effect.gen(function* () {
      const dependents = yield* dependentIds(id)
      if (dependents.length > 0) {
        const paths: Array<string> = []
        for (const d of dependents) paths.push((yield* pathOf(d)) ?? `#${d}`)
        if (!force) {
          return yield* new Catalog.CatalogError({
            reason: "HasDependents",
            path,
            message: `cannot drop ${path}: ${paths.join(", ")} ${paths.length === 1 ? "is" : "are"} made from it (drop ${paths.length === 1 ? "it" : "them"} first, or use force: true)`
          })
        }
        for (const [i, d] of dependents.entries()) yield* dropWithDependents(d, paths[i]!, true)
      }
      yield* dropPhysical(id)
    })

  const dropTable: Store.Store["Service"]["dropTable"] = (path, options) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const { id } = yield* findTable(path)
          if (id === undefined) {
            if (options.ifNotExists === "ignore") return undefined
            return yield* notFound(path)
          }
          yield* dropWithDependents(id, path, options.force === true)
          return id
        })
      )
      .pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(storeError(`dropping table ${path}`)(e))),
        Effect.flatMap((id) => (id === undefined ? Effect.void : notify({ kind: "schema", table: id })))
      )

  const moveTable: Store.Store["Service"]["moveTable"] = (from, to) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const source = yield* findTable(from)
          if (source.id === undefined) return yield* notFound(from)
          const parts = yield* parse(to)
          const dirId = yield* resolveDir(parts.slice(0, -1), to)
          const name = parts[parts.length - 1]!
          const taken = yield* occupant(dirId, name)
          if (taken !== undefined) {
            return yield* new Catalog.CatalogError({
              reason: "AlreadyExists",
              path: to,
              message: `cannot move ${JSON.stringify(from)} to ${JSON.stringify(to)}: a ${taken} has that path`
            })
          }
          yield* run(
            "moving a table",
            sql`UPDATE tessera.tables SET dir_id = ${dirId}, name = ${name} WHERE id = ${source.id}`
          )
          return source.id
        })
      )
      .pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(storeError(`moving table ${from}`)(e))),
        Effect.flatMap((id) => notify({ kind: "schema", table: id }))
      )

  const dropDir: Store.Store["Service"]["dropDir"] = (path, options) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const parts = yield* parse(path)
          const dirId = yield* resolveDir(parts, path).pipe(
            Effect.catchTag("CatalogError", (e) =>
              options.ifNotExists === "ignore" && e.reason === "NotFound" ? Effect.succeed(undefined) : Effect.fail(e)
            )
          )
          if (dirId === undefined || dirId === null) return
          const { ids } = yield* subtree(dirId)
          const all = [dirId, ...ids]
          const tables = yield* run(
            "dropping a directory",
            sql<{ id: number; name: string }>`SELECT id::int4 AS id, name FROM tessera.tables
              WHERE dir_id IN ${sql.in(all)}`
          )
          if (!options.force && (ids.size > 0 || tables.length > 0)) {
            return yield* new Catalog.CatalogError({
              reason: "NotEmpty",
              path,
              message: `directory ${JSON.stringify(path)} is not empty (${tables.length} table(s), ${ids.size} directory(ies)); use force: true to drop it with its contents`
            })
          }
          for (const t of tables) yield* dropPhysical(t.id)
          // Children before parents.
          for (const id of [...all].reverse()) {
            yield* run("dropping a directory", sql`DELETE FROM tessera.dirs WHERE id = ${id}`)
          }
        })
      )
      .pipe(Effect.catchTag("SqlError", (e) => Effect.fail(storeError(`dropping directory ${path}`)(e))))

  const addColumn: Store.Store["Service"]["addColumn"] = (table, column) =>
    run(
      "adding a column",
      retryConflicts(
        sql.withTransaction(
          Effect.gen(function* () {
            const bumped = yield* sql<{ column_id: number; version: number; schema_version: number }>`
            UPDATE tessera.tables
            SET next_column_id = next_column_id + 1, version = version + 1, schema_version = schema_version + 1
            WHERE id = ${table.id}
            RETURNING next_column_id - 1 AS column_id, version, schema_version`
            const { column_id: id, version, schema_version } = bumped[0]!
            yield* sql`INSERT INTO tessera.columns (table_id, column_id, name, definition, added_in)
            VALUES (${table.id}, ${id}, ${column.name}, ${JSON.stringify(columnDefinition(column))}::jsonb, ${version})`
            const defs = physicalColumns(id, column)
            if (defs.length > 0) {
              yield* unsafe(`ALTER TABLE ${tableName(table.id)} ${defs.map((d) => `ADD COLUMN ${d}`).join(", ")}`)
            }
            if (column.computed?.stored) {
              yield* unsafe(
                `CREATE INDEX t_${table.id}_pending_${id} ON ${tableName(table.id)} (rowid) WHERE s_${id} = 0 AND v_max = ${LIVE}`
              )
            }
            yield* sql`INSERT INTO tessera.versions (table_id, version, schema_version, change_type, schema_change)
            VALUES (${table.id}, ${version}, ${schema_version}, 'schema', ${`Added: ${column.name}`})`
          })
        )
      )
    ).pipe(
      Effect.flatMap(() => loadMeta(table.id, table.path)),
      Effect.tap((meta) => notify({ kind: "schema", table: meta.id }))
    )

  /**
   * A schema change: bumps the table's version and schema version, runs
   * `change` with the new version, records it in the history, in one
   * transaction (retried on conflicts), then returns the new catalog entry.
   */
  const schemaChange = (
    table: Catalog.TableMeta,
    description: string,
    change: (version: number) => Effect.Effect<void, SqlError.SqlError>
  ) =>
    run(
      `${description} (${table.path})`,
      retryConflicts(
        sql.withTransaction(
          Effect.gen(function* () {
            const bumped = yield* sql<{ version: number; schema_version: number }>`
              UPDATE tessera.tables SET version = version + 1, schema_version = schema_version + 1
              WHERE id = ${table.id} RETURNING version, schema_version`
            const { version, schema_version } = bumped[0]!
            yield* change(version)
            yield* sql`INSERT INTO tessera.versions (table_id, version, schema_version, change_type, schema_change)
              VALUES (${table.id}, ${version}, ${schema_version}, 'schema', ${description})`
          })
        )
      )
    ).pipe(
      Effect.flatMap(() => loadMeta(table.id, table.path)),
      Effect.tap((meta) => notify({ kind: "schema", table: meta.id }))
    )

  const dropColumn: Store.Store["Service"]["dropColumn"] = (table, column) =>
    schemaChange(table, `Dropped: ${column.name}`, (version) =>
      Effect.gen(function* () {
        yield* sql`UPDATE tessera.columns SET dropped_in = ${version}
          WHERE table_id = ${table.id} AND column_id = ${column.id}`
        if (column.computed?.stored) {
          // Nothing will compute the dropped column's cells any more.
          yield* unsafe(`DROP INDEX IF EXISTS tessera_data.t_${table.id}_pending_${column.id}`)
        }
      })
    )

  const removeColumn: Store.Store["Service"]["removeColumn"] = (table, column) =>
    run(
      `removing column ${column.name} of ${table.path}`,
      retryConflicts(
        sql.withTransaction(
          Effect.gen(function* () {
            const defs =
              column.computed === undefined || column.computed.stored ? physicalColumns(column.id, column) : []
            if (defs.length > 0) {
              const names = defs.map((d) => d.split(" ")[0]!)
              yield* unsafe(
                `ALTER TABLE ${tableName(table.id)} ${names.map((n) => `DROP COLUMN IF EXISTS ${n}`).join(", ")}`
              )
            }
            yield* sql`DELETE FROM tessera.columns WHERE table_id = ${table.id} AND column_id = ${column.id}`
            // Roll the version back too when nothing came after the column's version.
            const latest = yield* sql<{ version: number }>`SELECT version FROM tessera.tables WHERE id = ${table.id}`
            if (latest[0]?.version === column.addedIn) {
              yield* sql`DELETE FROM tessera.versions WHERE table_id = ${table.id} AND version = ${column.addedIn}`
              yield* sql`UPDATE tessera.tables SET version = version - 1, schema_version = schema_version - 1
              WHERE id = ${table.id}`
            }
          })
        )
      )
    ).pipe(Effect.tap(() => notify({ kind: "schema", table: table.id })))

  const history: Store.Store["Service"]["history"] = (table, limit) =>
    run(
      `reading the history of ${table.path}`,
      sql<{
        version: number
        schema_version: number
        created_at: Date
        change_type: "data" | "schema"
        inserted: bigint
        updated: bigint
        deleted: bigint
        errors: bigint
        schema_change: string | null
      }>`SELECT version, schema_version, created_at, change_type, inserted, updated, deleted, errors, schema_change
        FROM tessera.versions WHERE table_id = ${table.id}
        ORDER BY version DESC ${limit === undefined ? sql.literal("") : sql`LIMIT ${limit}`}`
    ).pipe(
      Effect.map((rows) =>
        rows.map(
          (r): Store.VersionInfo => ({
            version: r.version,
            schemaVersion: r.schema_version,
            createdAt: r.created_at,
            changeType: r.change_type,
            inserted: Number(r.inserted),
            updated: Number(r.updated),
            deleted: Number(r.deleted),
            errors: Number(r.errors),
            schemaChange: r.schema_change
          })
        )
      )
    )

  const setNullable: Store.Store["Service"]["setNullable"] = (table, column) =>
    schemaChange(table, `Altered: ${column.name} (nullable)`, () =>
      Effect.asVoid(
        sql`UPDATE tessera.columns SET definition = jsonb_set(definition, '{nullable}', 'true'::jsonb)
          WHERE table_id = ${table.id} AND column_id = ${column.id}`
      )
    )

  const renameColumn: Store.Store["Service"]["renameColumn"] = (table, column, name) =>
    schemaChange(table, `Renamed: ${column.name} -> ${name}`, (version) =>
      Effect.gen(function* () {
        yield* sql`UPDATE tessera.columns SET name = ${name} WHERE table_id = ${table.id} AND column_id = ${column.id}`
        yield* sql`INSERT INTO tessera.renames (table_id, column_id, version, old_name, new_name)
          VALUES (${table.id}, ${column.id}, ${version}, ${column.name}, ${name})`
      })
    )

  /**
   * Undoes the latest version: rows it inserted are removed, rows it ended
   * are live again, a column it added is removed, one it dropped or renamed
   * is restored; then the version itself is forgotten.
   */
  const revert: Store.Store["Service"]["revert"] = (table) =>
    sql
      .withTransaction(
        Effect.gen(function* () {
          const current = yield* run(
            "reverting",
            sql<{ version: number }>`SELECT version FROM tessera.tables WHERE id = ${table.id} FOR UPDATE`
          )
          const version = current[0]?.version
          if (version === undefined) return yield* notFound(table.path)
          if (version === 0) {
            return yield* new Catalog.CatalogError({
              reason: "InvalidDefinition",
              path: table.path,
              message: `cannot revert ${table.path}: it is at version 0, there is nothing to undo`
            })
          }
          yield* run(
            "reverting",
            Effect.gen(function* () {
              yield* unsafe(`DELETE FROM ${tableName(table.id)} WHERE v_min = ${version}`)
              yield* unsafe(`UPDATE ${tableName(table.id)} SET v_max = ${LIVE} WHERE v_max = ${version}`)
              const added = yield* sql<ColumnRow>`SELECT column_id, name, definition, added_in FROM tessera.columns
                WHERE table_id = ${table.id} AND added_in = ${version}`
              for (const c of added) {
                const column = {
                  name: c.name,
                  type: c.definition.type,
                  nullable: c.definition.nullable,
                  computed: c.definition.computed as Catalog.Computed | undefined
                }
                const names = physicalColumns(c.column_id, column).map((d) => d.split(" ")[0]!)
                if (names.length > 0) {
                  yield* unsafe(
                    `ALTER TABLE ${tableName(table.id)} ${names.map((n) => `DROP COLUMN IF EXISTS ${n}`).join(", ")}`
                  )
                }
                yield* sql`DELETE FROM tessera.columns WHERE table_id = ${table.id} AND column_id = ${c.column_id}`
              }
              const dropped = yield* sql<ColumnRow>`UPDATE tessera.columns SET dropped_in = NULL
                WHERE table_id = ${table.id} AND dropped_in = ${version}
                RETURNING column_id, name, definition, added_in`
              for (const c of dropped) {
                if (c.definition.computed?.stored) {
                  yield* unsafe(
                    `CREATE INDEX IF NOT EXISTS t_${table.id}_pending_${c.column_id} ON ${tableName(table.id)} (rowid)
                     WHERE s_${c.column_id} = 0 AND v_max = ${LIVE}`
                  )
                }
              }
              const addedIndexes = yield* sql<{ id: number }>`DELETE FROM tessera.indexes
                WHERE table_id = ${table.id} AND added_in = ${version} RETURNING id::int4 AS id`
              for (const i of addedIndexes) yield* unsafe(`DROP INDEX IF EXISTS tessera_data.tidx_${table.id}_${i.id}`)
              const droppedIndexes = yield* sql<{ id: number; definition: Omit<Catalog.IndexMeta, "id" | "name"> }>`
                UPDATE tessera.indexes SET dropped_in = NULL WHERE table_id = ${table.id} AND dropped_in = ${version}
                RETURNING id::int4 AS id, definition`
              for (const i of droppedIndexes) {
                const index = i.definition
                yield* unsafe(
                  `CREATE INDEX IF NOT EXISTS tidx_${table.id}_${i.id} ON ${tableName(table.id)}
                   USING hnsw ((c_${index.vectors}::${index.precision}(${index.dimension})) ${opclass(index)})
                   WITH (m = ${Math.floor(index.m)}, ef_construction = ${Math.floor(index.efConstruction)})
                   WHERE v_max = ${LIVE}`
                )
              }
              const renamed = yield* sql<{ column_id: number; old_name: string }>`
                DELETE FROM tessera.renames WHERE table_id = ${table.id} AND version = ${version}
                RETURNING column_id, old_name`
              for (const r of renamed) {
                yield* sql`UPDATE tessera.columns SET name = ${r.old_name}
                  WHERE table_id = ${table.id} AND column_id = ${r.column_id}`
              }
              const change = yield* sql<{ schema_change: string | null }>`SELECT schema_change FROM tessera.versions
                WHERE table_id = ${table.id} AND version = ${version}`
              const altered = /^Altered: (.+) \(nullable\)$/.exec(change[0]?.schema_change ?? "")
              if (altered !== null) {
                yield* sql`UPDATE tessera.columns SET definition = jsonb_set(definition, '{nullable}', 'false'::jsonb)
                  WHERE table_id = ${table.id} AND name = ${altered[1]!} AND dropped_in IS NULL`
              }
              yield* sql`DELETE FROM tessera.versions WHERE table_id = ${table.id} AND version = ${version}`
              yield* sql`UPDATE tessera.tables SET version = ${version - 1},
                schema_version = coalesce((SELECT schema_version FROM tessera.versions
                  WHERE table_id = ${table.id} AND version = ${version - 1}), 0)
                WHERE id = ${table.id}`
            })
          )
          return yield* loadMeta(table.id, table.path)
        })
      )
      .pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(storeError(`reverting ${table.path}`)(e))),
        Effect.tap((meta) => notify({ kind: "schema", table: meta.id }))
      )

  const bumpVersion: Store.Store["Service"]["bumpVersion"] = (table, change) =>
    run(
      "recording a version",
      Effect.gen(function* () {
        const rows = yield* sql<{ version: number; schema_version: number }>`
          UPDATE tessera.tables SET version = version + 1 WHERE id = ${table.id}
          RETURNING version, schema_version`
        const { version, schema_version } = rows[0]!
        yield* sql`INSERT INTO tessera.versions
          (table_id, version, schema_version, change_type, inserted, updated, deleted, errors)
          VALUES (${table.id}, ${version}, ${schema_version}, 'data', ${change.inserted ?? 0}, ${change.updated ?? 0},
                  ${change.deleted ?? 0}, ${change.errors ?? 0})`
        return version
      })
    )

  const recordErrors: Store.Store["Service"]["recordErrors"] = (table, errors) =>
    run(
      "recording errors",
      sql`UPDATE tessera.versions SET errors = errors + ${errors}
        WHERE table_id = ${table.id} AND version = (SELECT version FROM tessera.tables WHERE id = ${table.id})`
    ).pipe(Effect.asVoid)

  // -------------------------------------------------------------------------
  // Rows
  // -------------------------------------------------------------------------

  const { visible, compileContext, compileOrDie, pushable, decodeRow, scanAll, scanPage, scan, count } = Scans.make({
    sql,
    database,
    storeError
  })

  /** The parameters and SQL names of one stored column's value(s). */
  const columnSlots = (column: Catalog.ColumnMeta): ReadonlyArray<{ name: string; cast: string }> =>
    !Catalog.hasCell(column)
      ? [{ name: valueCol(column.id), cast: sqlType(column.type) }]
      : [
          { name: valueCol(column.id), cast: sqlType(column.type) },
          { name: `s_${column.id}`, cast: "int2" },
          { name: `et_${column.id}`, cast: "text" },
          { name: `em_${column.id}`, cast: "text" },
          { name: `ea_${column.id}`, cast: "int2" }
        ]

  const pushValues = (column: Catalog.ColumnMeta, value: unknown, params: Array<unknown>) => {
    if (!Catalog.hasCell(column)) {
      params.push(param(database, column.type, value).value)
      return
    }
    const cell = cellOf(column, value)
    params.push(
      param(database, column.type, cell.value).value,
      STATE_CODE[cell.state],
      cell.errorType,
      cell.errorMessage,
      cell.attempts
    )
  }

  /**
   * Inserts rows (with their row ids when given) at `version`. Each column is
   * sent as one binary array parameter and the rows are built by `unnest` in
   * the server: one small statement per batch, whatever its size. Vector
   * columns have no array codec, so tables with them use multi-row VALUES
   * (in statements of at most MAX_PARAMS parameters). `computed` columns are
   * computed by the statement itself from the row's data columns.
   */
  const insertPhysical = Effect.fnUntraced(function* (
    table: Catalog.TableMeta,
    version: number,
    columns: ReadonlyArray<Catalog.ColumnMeta>,
    given: ReadonlyArray<{ readonly rowid?: number | undefined; readonly values: ReadonlyArray<unknown> }>,
    computed: ReadonlyArray<Catalog.ColumnMeta> = [],
    baseRowids?: ReadonlyArray<number>
  ) {
    if (given.length === 0) return [] as ReadonlyArray<number>
    // Row ids are allocated up front, so the caller knows them (views refer to them).
    let rows = given
    if (given[0]!.rowid === undefined) {
      const ids = yield* sql<{ id: bigint }>`SELECT nextval(${`${tableName(table.id)}_rowid_seq`}::regclass) AS id
        FROM generate_series(1, ${given.length})`
      rows = given.map((row, i) => ({ rowid: Number(ids[i]!.id), values: row.values }))
    }
    const withRowid = true
    const useValues = columns.some((c) => c.type.kind === "Vector")
    // One slot per value sent: the row id, each column's value, each computed cell's state.
    const slots: Array<{
      readonly name: string
      readonly slot: ArraySlot
      readonly cast: string
      readonly type?: ColumnType.ColumnType | undefined
    }> = []
    const add = (name: string, slot: ArraySlot, cast: string, type?: ColumnType.ColumnType) =>
      slots.push({ name, slot, cast, type })
    if (withRowid) add("rowid", arraySlot({ kind: "Int" }), "int8", { kind: "Int" })
    if (baseRowids !== undefined) add("b_rowid", arraySlot({ kind: "Int" }), "int8", { kind: "Int" })
    const slotOf = new Map<number, number>()
    for (const column of columns) {
      slotOf.set(column.id, slots.length)
      add(valueCol(column.id), arraySlot(column.type), sqlType(column.type), column.type)
      if (Catalog.hasCell(column)) {
        add(`s_${column.id}`, INT2_SLOT, "int2")
        add(`et_${column.id}`, TEXT_SLOT, "text")
        add(`em_${column.id}`, TEXT_SLOT, "text")
        add(`ea_${column.id}`, INT2_SLOT, "int2")
      }
    }
    const element = (k: number) => (useValues ? `u.a${k}` : slots[k]!.slot.select(`u.a${k}`))
    const names = [...slots.map((s) => s.name)]
    const selects: Array<Statement.Fragment> = slots.map((_, k) => sql.literal(element(k)))
    const context = {
      ...compileContext(table),
      column: (id: number) => {
        const k = slotOf.get(id)
        if (k === undefined) throw new Error(`Tessera bug: column ${id} is not part of this insert`)
        return sql.literal(`(${element(k)})`)
      }
    }
    for (const column of computed) {
      names.push(valueCol(column.id), `s_${column.id}`)
      selects.push(compileOrDie(table, column.computed!.expr, context), sql.literal(String(STATE_CODE.done)))
    }
    const head = sql.literal(`INSERT INTO ${tableName(table.id)} (v_min, ${names.join(", ")})`)
    const aliases = sql.literal(slots.map((_, k) => `a${k}`).join(", "))

    const valuesOf = (row: (typeof rows)[number], index: number, push: (k: number, value: unknown) => void) => {
      let k = 0
      if (withRowid) push(k++, row.rowid)
      if (baseRowids !== undefined) push(k++, baseRowids[index])
      for (const [j, column] of columns.entries()) {
        const value = row.values[j]
        if (!Catalog.hasCell(column)) {
          push(k++, value)
        } else {
          const cell = cellOf(column, value)
          push(k++, cell.value)
          push(k++, STATE_CODE[cell.state])
          push(k++, cell.errorType)
          push(k++, cell.errorMessage)
          push(k++, cell.attempts)
        }
      }
    }

    if (!useValues) {
      const arrays = slots.map(() => [] as Array<unknown>)
      for (const [index, row] of rows.entries()) {
        valuesOf(row, index, (k, value) => {
          const type = slots[k]!.type
          arrays[k]!.push(type === undefined ? value : arrayValue(type, value))
        })
      }
      const params: Array<Statement.Fragment> = []
      for (const [k, values] of arrays.entries()) {
        const parameter = PgTypes.array(values, slots[k]!.slot.oid)
        if (Result.isFailure(parameter)) return yield* Effect.die(parameter.failure)
        params.push(sql`${parameter.success}::${sql.literal(slots[k]!.slot.cast)}`)
      }
      yield* sql`${head} SELECT ${version}::int4, ${sql.csv(selects)} FROM unnest(${sql.csv(params)}) AS u (${aliases})`
      return rows.map((r) => r.rowid!)
    }

    const chunk = Math.max(1, Math.floor(MAX_PARAMS / slots.length))
    for (let start = 0; start < rows.length; start += chunk) {
      const tuples = rows.slice(start, start + chunk).map((row, offset) => {
        const values: Array<Statement.Fragment> = []
        valuesOf(row, start + offset, (k, value) => {
          const slot = slots[k]!
          const v = slot.type === undefined ? value : param(database, slot.type, value).value
          values.push(sql`${v}::${sql.literal(slot.cast)}`)
        })
        return sql`(${sql.csv(values)})`
      })
      yield* sql`${head} SELECT ${version}::int4, ${sql.csv(selects)} FROM (VALUES ${sql.csv(tuples)}) AS u (${aliases})`
    }
    return rows.map((r) => r.rowid!)
  })

  const insertRows: Store.Store["Service"]["insertRows"] = (table, version, columns, rows, computed, baseRowids) =>
    run(
      `inserting into ${table.path}`,
      insertPhysical(
        table,
        version,
        columns,
        rows.map((values) => ({ values })),
        computed,
        baseRowids
      )
    )

  const writeCells: Store.Store["Service"]["writeCells"] = (table, column, cells) =>
    writeCellsGuarded(table, column, cells, undefined)

  /** Writes cells of live rows; with a worker, only rows it holds, releasing them. */
  const writeCellsGuarded = (
    table: Catalog.TableMeta,
    column: Catalog.ColumnMeta,
    cells: ReadonlyArray<{ readonly rowid: number; readonly cell: Store.Cell }>,
    worker: number | undefined
  ) =>
    run(
      `writing ${column.name} of ${table.path}`,
      Effect.gen(function* () {
        const slots = [{ name: "rowid", cast: "int8" }, ...columnSlots(column)]
        const chunk = Math.floor(MAX_PARAMS / slots.length)
        const id = column.id
        for (let start = 0; start < cells.length; start += chunk) {
          const slice = cells.slice(start, start + chunk)
          const params: Array<unknown> = []
          const tuples: Array<string> = []
          for (const { rowid, cell } of slice) {
            const base = params.length
            params.push(rowid)
            pushValues(column, cell, params)
            tuples.push(`(${slots.map((s, k) => `$${base + k + 1}::${s.cast}`).join(", ")})`)
          }
          yield* unsafe(
            `UPDATE ${tableName(table.id)} AS t
             SET c_${id} = v.val, s_${id} = v.s, et_${id} = v.et, em_${id} = v.em, ea_${id} = v.ea, l_${id} = NULL
             FROM (VALUES ${tuples.join(", ")}) AS v (rowid, val, s, et, em, ea)
             WHERE t.rowid = v.rowid AND t.v_max = ${LIVE}${worker === undefined ? "" : ` AND t.l_${id} = ${worker}`}`,
            params
          )
        }
      })
    )

  const endRows = (table: Catalog.TableMeta, version: number, rowids: ReadonlyArray<number>) =>
    sql<{ n: bigint }>`WITH ended AS (
        UPDATE ${sql.literal(tableName(table.id))} SET v_max = ${version}
        WHERE rowid = ANY(${`{${rowids.join(",")}}`}::int8[]) AND v_max = ${sql.literal(String(LIVE))}
        RETURNING 1)
      SELECT count(*) AS n FROM ended`.pipe(Effect.map((rows) => Number(rows[0]!.n)))

  const replaceRows: Store.Store["Service"]["replaceRows"] = (table, version, columns, rows) =>
    run(
      `updating ${table.path}`,
      Effect.gen(function* () {
        // A view row's new version keeps the base row it comes from.
        let baseRowids: Array<number> | undefined
        if (table.view !== undefined && rows.length > 0) {
          const links = yield* sql<{ rowid: bigint; b_rowid: bigint }>`SELECT rowid, b_rowid
            FROM ${sql.literal(tableName(table.id))}
            WHERE rowid = ANY(${`{${rows.map((r) => r.rowid).join(",")}}`}::int8[]) AND v_max = ${sql.literal(String(LIVE))}`
          const byRowid = new Map(links.map((l) => [Number(l.rowid), Number(l.b_rowid)]))
          baseRowids = rows.map((r) => byRowid.get(r.rowid)!)
        }
        yield* endRows(
          table,
          version,
          rows.map((r) => r.rowid)
        )
        yield* insertPhysical(table, version, columns, rows, [], baseRowids)
      })
    )

  const deleteRows: Store.Store["Service"]["deleteRows"] = (table, version, rowids) =>
    run(`deleting from ${table.path}`, endRows(table, version, rowids))

  // -------------------------------------------------------------------------
  // Durable execution
  // -------------------------------------------------------------------------

  const registerWorker: Store.Store["Service"]["registerWorker"] = Effect.gen(function* () {
    const rows = yield* run(
      "registering a worker",
      sql<{ id: number }>`SELECT nextval('tessera.worker_seq')::int4 AS id`
    )
    const id = rows[0]!.id
    const lock = `SELECT pg_advisory_lock(${WORKER_LOCK}, ${id})`
    const unlock = `SELECT pg_advisory_unlock(${WORKER_LOCK}, ${id})`
    if (database.backend === "embedded") {
      // One process, one session: the lock lives as long as the database is open.
      yield* Effect.acquireRelease(run("registering a worker", unsafe(lock)), () => unsafe(unlock).pipe(Effect.ignore))
    } else {
      // The lock lives on a connection kept for the worker's lifetime: if the
      // process dies, the server drops the connection and the lock with it.
      const connection = yield* sql.reserve.pipe(Effect.mapError(storeError("registering a worker")))
      yield* Effect.acquireRelease(run("registering a worker", connection.executeRaw(lock, [])), () =>
        connection.executeRaw(unlock, []).pipe(Effect.ignore)
      )
    }
    return id
  })

  /** The stored computed columns a column's cells wait for. */
  const readinessOf = (table: Catalog.TableMeta, column: Catalog.ColumnMeta): ReadonlyArray<number> => {
    const reads = Expr.columnIds(Catalog.inlineUnstored(table, column.computed!.expr))
    return table.columns.filter((c) => c.computed?.stored && reads.has(c.id)).map((c) => c.id)
  }

  const claim: Store.Store["Service"]["claim"] = (table, column, inputs, options) => {
    const id = column.id
    const conditions: Array<Statement.Fragment> = [
      sql.literal(`t.v_max = ${LIVE}`),
      sql.literal(`t.s_${id} = ${STATE_CODE.pending}`),
      sql.literal(`(t.l_${id} IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted
          AND k.classid = ${WORKER_LOCK} AND k.objid = t.l_${id}::oid AND k.objsubid = 2))`),
      ...readinessOf(table, column).map((dep) => sql.literal(`t.s_${dep} <> ${STATE_CODE.pending}`))
    ]
    if (options.rowids !== undefined) conditions.push(sql`t.rowid = ANY(${`{${options.rowids.join(",")}}`}::int8[])`)
    const outputs: Array<Statement.Fragment> = [sql.literal(`t.rowid AS "$rowid"`)]
    for (const output of inputs.outputs) {
      outputs.push(sql`${compileOrDie(table, output.node, qualified(table))} AS ${sql(output.key)}`)
    }
    for (const cell of inputs.cells ?? []) {
      outputs.push(
        sql.literal(
          `t.c_${cell} AS "$cell${cell}", t.s_${cell} AS "$s${cell}", t.et_${cell} AS "$et${cell}", t.em_${cell} AS "$em${cell}", t.ea_${cell} AS "$ea${cell}"`
        )
      )
    }
    return run(
      `claiming cells of ${column.name} in ${table.path}`,
      sql<Record<string, unknown>>`WITH c AS (
          SELECT t.rowid, t.v_min FROM ${sql.literal(tableName(table.id))} AS t
          WHERE ${sql.and(conditions)}
          ORDER BY t.rowid LIMIT ${options.limit}
          FOR UPDATE SKIP LOCKED)
        UPDATE ${sql.literal(tableName(table.id))} AS t SET ${sql.literal(`l_${id}`)} = ${options.worker}
        FROM c WHERE t.rowid = c.rowid AND t.v_min = c.v_min
        RETURNING ${sql.csv(outputs)}`
    ).pipe(
      Effect.map((rows) => {
        const decode = decodeRow(table, inputs)
        return rows.map(decode).sort((a, b) => (a.$rowid as number) - (b.$rowid as number))
      })
    )
  }

  /** A compile context whose columns are qualified by the table alias `t`. */
  const qualified = (table: Catalog.TableMeta): CompileContext => ({
    ...compileContext(table),
    column: (id: number) => sql.literal(`t.c_${id}`),
    errorColumn: (id: number, prop: Expr.ErrorProp) => sql.literal(prop === "errorType" ? `t.et_${id}` : `t.em_${id}`)
  })

  const complete: Store.Store["Service"]["complete"] = (table, column, worker, cells) =>
    writeCellsGuarded(table, column, cells, worker)

  const release: Store.Store["Service"]["release"] = (table, column, worker, rowids) =>
    rowids.length === 0
      ? Effect.void
      : run(
          `releasing cells of ${column.name} in ${table.path}`,
          sql`UPDATE ${sql.literal(tableName(table.id))} SET ${sql.literal(`l_${column.id}`)} = NULL
            WHERE rowid = ANY(${`{${rowids.join(",")}}`}::int8[]) AND ${sql.literal(`l_${column.id}`)} = ${worker}`
        ).pipe(Effect.asVoid)

  const cellCounts: Store.Store["Service"]["cellCounts"] = (table) =>
    Effect.gen(function* () {
      const columns = table.columns.filter((c) => c.computed?.stored)
      if (columns.length === 0) return []
      const selects = columns.map((c) => {
        const id = c.id
        return `count(*) FILTER (WHERE s_${id} = 0) AS "p${id}",
          count(*) FILTER (WHERE s_${id} = 0 AND l_${id} IS NOT NULL AND EXISTS (
            SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted
              AND k.classid = ${WORKER_LOCK} AND k.objid = l_${id}::oid AND k.objsubid = 2)) AS "c${id}",
          count(*) FILTER (WHERE s_${id} = 1) AS "d${id}",
          count(*) FILTER (WHERE s_${id} = 2) AS "e${id}",
          (array_agg(et_${id} ORDER BY rowid DESC) FILTER (WHERE s_${id} = 2))[1] AS "lt${id}",
          (array_agg(em_${id} ORDER BY rowid DESC) FILTER (WHERE s_${id} = 2))[1] AS "lm${id}"`
      })
      const rows = yield* run(
        `counting cells of ${table.path}`,
        sql`SELECT ${sql.literal(selects.join(", "))} FROM ${sql.literal(tableName(table.id))} WHERE ${visible(table)}`
      )
      const row = rows[0] ?? {}
      return columns.map((c): Store.CellCounts => {
        const type = row[`lt${c.id}`] as string | null | undefined
        return {
          column: c.id,
          pending: Number(row[`p${c.id}`] ?? 0),
          claimed: Number(row[`c${c.id}`] ?? 0),
          done: Number(row[`d${c.id}`] ?? 0),
          error: Number(row[`e${c.id}`] ?? 0),
          lastError:
            type === null || type === undefined
              ? undefined
              : { type, message: (row[`lm${c.id}`] as string | null) ?? "" }
        }
      })
    })

  // -------------------------------------------------------------------------
  // Media references
  // -------------------------------------------------------------------------

  /** The physical media columns (data, or stored computed; dropped ones too) of every table, or of one. */
  const mediaColumns = (tableId?: number) =>
    sql<{ table_id: number; column_id: number; added_in: number }>`
      SELECT table_id::int4 AS table_id, column_id, added_in FROM tessera.columns
      WHERE definition -> 'type' ->> 'kind' IN ('Image', 'Video', 'Audio', 'Document')
        AND coalesce((definition -> 'computed' ->> 'stored')::boolean, true)
        ${tableId === undefined ? sql.literal("") : sql`AND table_id = ${tableId}`}`

  /** The distinct non-null references `select(column)` finds, over all the given columns. */
  const references = (
    columns: ReadonlyArray<{ readonly table_id: number; readonly column_id: number; readonly added_in: number }>,
    where: (column: { readonly column_id: number; readonly added_in: number }) => string,
    params: ReadonlyArray<unknown> = []
  ) =>
    columns.length === 0
      ? Effect.succeed([] as ReadonlyArray<string>)
      : unsafe<{ ref: string }>(
          columns
            .map((c) => `SELECT c_${c.column_id} AS ref FROM ${tableName(c.table_id)} WHERE ${where(c)}`)
            .join(" UNION "),
          params
        ).pipe(Effect.map((rows) => rows.map((r) => r.ref)))

  const mediaInUse: Store.Store["Service"]["mediaInUse"] = (refs) => {
    const parameter = PgTypes.array(refs, PgTypes.OID.text)
    if (refs.length === 0 || Result.isFailure(parameter)) return Effect.succeed(new Set<string>())
    return run(
      "checking which media files are referenced",
      Effect.flatMap(mediaColumns(), (columns) =>
        references(columns, (c) => `c_${c.column_id} = ANY($1::text[])`, [parameter.success])
      )
    ).pipe(Effect.map((found) => new Set(found)))
  }

  const versionMedia: Store.Store["Service"]["versionMedia"] = (table, version) =>
    run(
      `reading the media of version ${version} of ${table.path}`,
      Effect.flatMap(mediaColumns(table.id), (columns) =>
        references(columns, (c) =>
          c.added_in === version
            ? `c_${c.column_id} IS NOT NULL`
            : `v_min = ${Math.floor(version)} AND c_${c.column_id} IS NOT NULL`
        )
      )
    )

  const transaction: Store.Store["Service"]["transaction"] = (effect) =>
    retryConflicts(sql.withTransaction(effect)).pipe(
      Effect.catchIf(
        (e): e is SqlError.SqlError => (e as { _tag?: unknown })?._tag === "SqlError",
        (e) => Effect.fail(storeError("transaction")(e))
      )
    ) as any

  return Store.Store.of({
    createDir,
    dropDir,
    listDirs,
    listTables,
    createTable,
    getTable,
    dropTable,
    moveTable,
    addColumn,
    addIndex,
    dropIndex,
    dependentsOf,
    dropColumn,
    renameColumn,
    setNullable,
    history,
    revert,
    removeColumn,
    bumpVersion,
    recordErrors,
    pushable,
    scan,
    scanAll,
    scanPage,
    count,
    insertRows,
    writeCells,
    replaceRows,
    deleteRows,
    registerWorker,
    claim,
    complete,
    release,
    cellCounts,
    changes: Stream.fromPubSub(changesHub),
    notify,
    mediaInUse,
    versionMedia,
    transaction
  })
})

/** The Store on the Database in context. */
export const layer: Layer.Layer<Store.Store, never, SqlClient.SqlClient | PgClient.PgClient | Database> = Layer.effect(
  Store.Store,
  make
)
