/**
 * Tessera: the layer an application provides to use Tessera: the database
 * (embedded or server, chosen by configuration) and the store on it.
 *
 * ```ts
 * program.pipe(Effect.provide(Tessera.layer), NodeRuntime.runMain)
 * ```
 */
import type { Store } from "@tessera/core"
import type { PgClient } from "@effect/sql-pg"
import { Layer } from "effect"
import type { SqlClient } from "effect/sql"
import * as Database from "./Database.ts"
import * as SqlStore from "./SqlStore.ts"

export type Services = Store.Store | Database.Database | PgClient.PgClient | SqlClient.SqlClient

const withStore = (
  database: Layer.Layer<Database.Database | PgClient.PgClient | SqlClient.SqlClient, Database.DatabaseError>
): Layer.Layer<Services, Database.DatabaseError> => SqlStore.layer.pipe(Layer.provideMerge(database))

/** Tessera on the database chosen by configuration (`TESSERA_DATABASE_URL`, else the embedded one under `TESSERA_HOME`). */
export const layer: Layer.Layer<Services, Database.DatabaseError> = withStore(Database.layer)

/** Tessera on the embedded database under `options.home`. */
export const layerEmbedded = (options: Database.EmbeddedOptions): Layer.Layer<Services, Database.DatabaseError> =>
  withStore(Database.layerEmbedded(options))

/** Tessera on a PostgreSQL server. */
export const layerServer = (options: Database.ServerOptions): Layer.Layer<Services, Database.DatabaseError> =>
  withStore(Database.layerServer(options))

/** Tessera on an already provided database (tests use this with their per-test databases). */
export const layerOn = <E, R>(
  database: Layer.Layer<Database.Database | PgClient.PgClient | SqlClient.SqlClient, E, R>
): Layer.Layer<Services, E, R> => SqlStore.layer.pipe(Layer.provideMerge(database))
