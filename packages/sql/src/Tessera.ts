/**
 * Tessera: the layer an application provides to use Tessera: the database
 * (embedded or server, chosen by configuration), the store on it, and the
 * supervisor that computes pending cells in this process (library mode).
 *
 * ```ts
 * program.pipe(Effect.provide(Tessera.layer), NodeRuntime.runMain)
 * ```
 */
import type { PgClient } from "@effect/sql-pg"
import { type ResultCache, type Store, Supervisor } from "@tessera/core"
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as Database from "./Database.ts"
import * as SqlResultCache from "./SqlResultCache.ts"
import * as SqlStore from "./SqlStore.ts"

/** Everything the engine needs, without the supervisor. */
export type StoreServices =
  | Store.Store
  | ResultCache.ResultCache
  | Database.Database
  | PgClient.PgClient
  | SqlClient.SqlClient

export type Services = StoreServices | Supervisor.Supervisor

type DatabaseLayer<E, R> = Layer.Layer<Database.Database | PgClient.PgClient | SqlClient.SqlClient, E, R>

/** A server database layer (for `layerOn`). */
export const databaseServer = Database.layerServer

/** An embedded database layer (for `layerOn`). */
export const databaseEmbedded = Database.layerEmbedded

/** The store on an already provided database, without a supervisor (tests use this). */
export const layerOn = <E, R>(database: DatabaseLayer<E, R>): Layer.Layer<StoreServices, E, R> =>
  Layer.mergeAll(SqlStore.layer, SqlResultCache.layer()).pipe(Layer.provideMerge(database))

/** The store and a supervisor (library mode) on a database. */
export const layerWithSupervisor = <E, R>(
  database: DatabaseLayer<E, R>,
  options?: Supervisor.Options
): Layer.Layer<Services, E | Store.StoreError, R> =>
  Supervisor.layer(options).pipe(Layer.provideMerge(layerOn(database)))

/** The store on the database chosen by configuration, without a supervisor (tools such as `tessera status`). */
export const layerStore: Layer.Layer<StoreServices, Database.DatabaseError> = layerOn(Database.layer)

/** Tessera on the database chosen by configuration (`TESSERA_DATABASE_URL`, else the embedded one under `TESSERA_HOME`). */
export const layer: Layer.Layer<Services, Database.DatabaseError | Store.StoreError> = layerWithSupervisor(
  Database.layer
)

/** Tessera on the embedded database under `options.home`. */
export const layerEmbedded = (
  options: Database.EmbeddedOptions
): Layer.Layer<Services, Database.DatabaseError | Store.StoreError> =>
  layerWithSupervisor(Database.layerEmbedded(options))

/** Tessera on a PostgreSQL server. */
export const layerServer = (
  options: Database.ServerOptions
): Layer.Layer<Services, Database.DatabaseError | Store.StoreError> =>
  layerWithSupervisor(Database.layerServer(options))
