/**
 * Database: the one SQL client Tessera talks through (`@effect/sql-pg`), on
 * either backend:
 *
 * - embedded (the default): PGlite with pgvector, in-process, persisted under
 *   the Tessera home (`TESSERA_HOME`, default `~/.tessera`), over exactly one
 *   connection that serialises every fiber's statements;
 * - server: a PostgreSQL URL (`TESSERA_DATABASE_URL`) with a connection pool.
 *
 * Opening a database makes sure pgvector is there, installs the binary vector
 * codecs and applies Tessera's metadata migrations. The layer provides this
 * service together with `PgClient` and `SqlClient`.
 */
import { PGlite } from "@electric-sql/pglite"
import { vector as pgliteVector } from "@electric-sql/pglite-pgvector"
import { PgClient, PgTypes } from "@effect/sql-pg"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient } from "effect/sql"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { makePgliteStream } from "./internal/pgliteStream.ts"
import * as Migrations from "./Migrations.ts"
import * as Vector from "./Vector.ts"

export class DatabaseError extends Schema.TaggedError<DatabaseError>()("DatabaseError", {
  reason: Schema.Literals([
    "Unreachable",
    "MissingExtension",
    "HomeNotWritable",
    "OpenFailed",
    "MigrationFailed",
    "NewerSchema",
    "InvalidConfig"
  ]),
  /** The home directory or the server URL (password redacted). */
  location: Schema.String,
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

export type Backend = "embedded" | "server"

export class Database extends Context.Service<
  Database,
  {
    readonly backend: Backend
    /** The home directory (embedded) or the server URL with its password redacted. */
    readonly location: string
    /** The home directory: database files (embedded), media store, caches. */
    readonly home: string
    /** The server URL (server backend only), for tools that start other processes on it. */
    readonly url: Redacted.Redacted<string> | undefined
    readonly vectorTypes: Vector.VectorTypes
    /** A binary `vector` parameter for this database. */
    readonly vector: (value: Vector.VectorInput | null) => PgTypes.Parameter
    /** A binary `halfvec` parameter for this database. */
    readonly halfvec: (value: Vector.VectorInput | null) => PgTypes.Parameter
  }
>()("@tessera/sql/Database") {}

export interface EmbeddedOptions {
  /** The Tessera home; the database lives in `<home>/pgdata`. */
  readonly home: string
  /** Start from this data directory dump instead of running initdb (tests use a template). */
  readonly loadDataDir?: Blob | undefined
  /** Keep the database in memory only (nothing under `home/pgdata`). */
  readonly inMemory?: boolean | undefined
  readonly migrations?: ReadonlyArray<Migrations.Migration> | undefined
}

export interface ServerOptions {
  readonly url: Redacted.Redacted<string>
  /** The Tessera home for media store and caches (the database itself is on the server). */
  readonly home: string
  readonly maxConnections?: number | undefined
  readonly connectTimeout?: number | undefined
  readonly migrations?: ReadonlyArray<Migrations.Migration> | undefined
}

/** The home directory Tessera uses when `TESSERA_HOME` is not set. */
export const defaultHome = (): string => NodePath.join(NodeOs.homedir(), ".tessera")

/** Reads the database configuration: `TESSERA_HOME` and `TESSERA_DATABASE_URL`. */
export const config = Config.all({
  home: Config.String("TESSERA_HOME").pipe(Config.withDefault(defaultHome())),
  url: Config.option(Config.Redacted("TESSERA_DATABASE_URL"))
})

/** A server URL with its password hidden, for messages and logs. */
export const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<unparseable database URL>"
  }
}

const ensureHome = (home: string): Effect.Effect<void, DatabaseError> =>
  Effect.try({
    try: () => {
      NodeFs.mkdirSync(home, { recursive: true })
      NodeFs.accessSync(home, NodeFs.constants.W_OK)
      // Root passes access checks on read-only mounts too: prove it by writing.
      const probe = NodePath.join(home, `.write-probe-${process.pid}`)
      NodeFs.writeFileSync(probe, "")
      NodeFs.rmSync(probe)
    },
    catch: (cause) =>
      new DatabaseError({
        reason: "HomeNotWritable",
        location: home,
        message: `The Tessera home ${home} is not a writable directory (${(cause as Error).message}). Set TESSERA_HOME to a directory you can write to.`,
        cause
      })
  })

const vectorTypesOf = Effect.fnUntraced(function* (sql: SqlClient.SqlClient, location: string) {
  const rows = yield* sql<{ typname: string; oid: number }>`
    SELECT typname, oid::int4 AS oid FROM pg_type WHERE typname IN ('vector', 'halfvec')
  `.pipe(Effect.mapError((cause) => openFailed(location, "could not read pgvector's types", cause)))
  const vector = rows.find((r) => r.typname === "vector")?.oid
  const halfvec = rows.find((r) => r.typname === "halfvec")?.oid
  if (vector === undefined || halfvec === undefined) {
    return yield* new DatabaseError({
      reason: "MissingExtension",
      location,
      message: `The database at ${location} has the vector extension but not its vector/halfvec types (pgvector >= 0.7 is required).`
    })
  }
  return { vector, halfvec } satisfies Vector.VectorTypes
})

const openFailed = (location: string, what: string, cause: unknown) =>
  new DatabaseError({
    reason: "OpenFailed",
    location,
    message: `${what} at ${location}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

const finishOpen = Effect.fnUntraced(function* (options: {
  readonly backend: Backend
  readonly location: string
  readonly home: string
  readonly client: PgClient.PgClient
  readonly registry: PgTypes.Registry
  readonly migrations: ReadonlyArray<Migrations.Migration>
  readonly url?: Redacted.Redacted<string> | undefined
}) {
  const vectorTypes = yield* vectorTypesOf(options.client, options.location)
  Vector.registerCodecs(options.registry, vectorTypes)
  yield* Migrations.run(options.client, options.migrations).pipe(
    Effect.mapError(
      (error) =>
        new DatabaseError({
          reason: error.reason === "NewerSchema" ? "NewerSchema" : "MigrationFailed",
          location: options.location,
          message: error.message,
          cause: error
        })
    )
  )
  return Database.of({
    backend: options.backend,
    location: options.location,
    home: options.home,
    url: options.url,
    vectorTypes,
    vector: (value) => Vector.param(vectorTypes, value),
    halfvec: (value) => Vector.halfParam(vectorTypes, value)
  })
})

/**
 * How an HNSW index scan with a filter goes on (pgvector 0.8): past its first
 * `hnsw.ef_search` candidates until the query's limit is filled (or
 * `hnsw.max_scan_tuples`), results in exact distance order. Without it, a
 * filtered similarity query returns only the matches among those candidates.
 */
const ITERATIVE_SCAN = "strict_order"

/** Opens (creating if needed) the embedded PGlite database under `home`. */
export const makeEmbedded = Effect.fnUntraced(function* (
  options: EmbeddedOptions
): Effect.fn.Return<
  { readonly database: Database["Service"]; readonly client: PgClient.PgClient },
  DatabaseError,
  Scope.Scope | Reactivity.Reactivity
> {
  const home = NodePath.resolve(options.home)
  const location = home
  yield* ensureHome(home)
  const dataDir = NodePath.join(home, "pgdata")
  const db = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        PGlite.create({
          ...(options.inMemory ? {} : { dataDir }),
          ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
          extensions: { vector: pgliteVector }
        }),
      catch: (cause) => openFailed(location, "could not open the embedded database", cause)
    }),
    (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
  )
  yield* Effect.tryPromise({
    try: () => db.exec(`CREATE EXTENSION IF NOT EXISTS vector; SET hnsw.iterative_scan = ${ITERATIVE_SCAN}`),
    catch: (cause) =>
      new DatabaseError({
        reason: "MissingExtension",
        location,
        message: `could not create the vector extension in the embedded database: ${String(cause)}`,
        cause
      })
  })
  const registry = PgTypes.makeRegistry()
  const client = yield* PgClient.makeClient({
    stream: () => makePgliteStream(db),
    ssl: false,
    username: "postgres",
    database: "postgres",
    types: registry,
    applicationName: "tessera"
  }).pipe(Effect.mapError((cause) => openFailed(location, "could not connect to the embedded database", cause)))
  const database = yield* finishOpen({
    backend: "embedded",
    location,
    home,
    client,
    registry,
    migrations: options.migrations ?? Migrations.all
  })
  return { database, client }
})

/** Connects to a PostgreSQL server with pgvector, with a connection pool. */
export const makeServer = Effect.fnUntraced(function* (
  options: ServerOptions
): Effect.fn.Return<
  { readonly database: Database["Service"]; readonly client: PgClient.PgClient },
  DatabaseError,
  Scope.Scope | Reactivity.Reactivity
> {
  const location = redactUrl(Redacted.value(options.url))
  const home = NodePath.resolve(options.home)
  const registry = PgTypes.makeRegistry()
  const client = yield* PgClient.make({
    url: options.url,
    types: registry,
    maxConnections: options.maxConnections ?? 10,
    connectTimeout: options.connectTimeout ?? 10_000,
    applicationName: "tessera",
    startupParameters: { "hnsw.iterative_scan": ITERATIVE_SCAN }
  }).pipe(
    Effect.mapError(
      (cause) =>
        new DatabaseError({
          reason: "Unreachable",
          location,
          message: `Cannot reach the PostgreSQL server at ${location}: ${cause.message}. Check TESSERA_DATABASE_URL and that the server is running.`,
          cause
        })
    )
  )
  // The pool connects lazily: prove the server answers before going further.
  yield* client`SELECT 1`.pipe(
    Effect.mapError(
      (cause) =>
        new DatabaseError({
          reason: "Unreachable",
          location,
          message: `Cannot reach the PostgreSQL server at ${location}: ${cause.message}. Check TESSERA_DATABASE_URL and that the server is running.`,
          cause
        })
    )
  )
  const installed = yield* client<{ n: number }>`
    SELECT count(*)::int4 AS n FROM pg_extension WHERE extname = 'vector'
  `.pipe(Effect.mapError((cause) => openFailed(location, "could not inspect extensions", cause)))
  if (installed[0]!.n === 0) {
    const available = yield* client<{ n: number }>`
      SELECT count(*)::int4 AS n FROM pg_available_extensions WHERE name = 'vector'
    `.pipe(Effect.mapError((cause) => openFailed(location, "could not inspect extensions", cause)))
    if (available[0]!.n === 0) {
      return yield* new DatabaseError({
        reason: "MissingExtension",
        location,
        message: `The PostgreSQL server at ${location} does not have the pgvector extension ("vector"). Install pgvector on the server (https://github.com/pgvector/pgvector#installation), then run again.`
      })
    }
    yield* client`CREATE EXTENSION IF NOT EXISTS vector`.pipe(
      Effect.mapError(
        (cause) =>
          new DatabaseError({
            reason: "MissingExtension",
            location,
            message: `pgvector is available on ${location} but could not be enabled in this database (${cause.message}). Ask an administrator to run CREATE EXTENSION vector.`,
            cause
          })
      )
    )
  }
  yield* ensureHome(home)
  const database = yield* finishOpen({
    backend: "server",
    location,
    home,
    client,
    registry,
    url: options.url,
    migrations: options.migrations ?? Migrations.all
  })
  return { database, client }
})

const toLayer = (
  open: Effect.Effect<
    { readonly database: Database["Service"]; readonly client: PgClient.PgClient },
    DatabaseError,
    Scope.Scope | Reactivity.Reactivity
  >
): Layer.Layer<Database | PgClient.PgClient | SqlClient.SqlClient, DatabaseError> =>
  Layer.effectContext(
    Effect.map(open, ({ database, client }) =>
      Context.make(Database, database).pipe(
        Context.add(PgClient.PgClient, client),
        Context.add(SqlClient.SqlClient, client)
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))

/** The embedded database under `options.home`. */
export const layerEmbedded = (options: EmbeddedOptions) => toLayer(makeEmbedded(options))

/** A PostgreSQL server given by URL. */
export const layerServer = (options: ServerOptions) => toLayer(makeServer(options))

/**
 * The database chosen by configuration: the server at `TESSERA_DATABASE_URL`
 * when it is set, the embedded database under `TESSERA_HOME` otherwise.
 */
export const layer: Layer.Layer<Database | PgClient.PgClient | SqlClient.SqlClient, DatabaseError> = Layer.unwrap(
  Effect.gen(function* () {
    const { home, url } = yield* Effect.mapError(
      config,
      (cause) =>
        new DatabaseError({
          reason: "InvalidConfig",
          location: "configuration",
          message: `Invalid Tessera database configuration: ${cause.message}`,
          cause
        })
    )
    return Option.match(url, {
      onNone: () => layerEmbedded({ home }),
      onSome: (url) => layerServer({ url, home })
    })
  })
)
