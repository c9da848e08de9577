/**
 * Harness: runs one test suite against every configured backend, the way a
 * query builder runs its suite per dialect.
 *
 * - embedded: always. Each test gets a fresh in-memory PGlite cloned from a
 *   template (initdb, pgvector and migrations done once per worker), with its
 *   own temporary home directory.
 * - server: when `TESSERA_TEST_DATABASE_URL` is set. Each test gets a fresh
 *   database on that server, dropped when the test ends.
 */
import { PGlite } from "@electric-sql/pglite"
import { vector as pgliteVector } from "@electric-sql/pglite-pgvector"
import { describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import type { Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import * as Database from "../Database.ts"
import * as Migrations from "../Migrations.ts"
import * as Tessera from "../Tessera.ts"

export type DatabaseServices = Tessera.StoreServices

export interface Backend {
  readonly name: Database.Backend
  /** Tessera on a fresh, isolated database (and home directory) each time it is built. */
  readonly layer: () => Layer.Layer<DatabaseServices, Database.DatabaseError>
}

/** A fresh temporary directory, removed when the scope closes. */
export const tempDir = (prefix = "tessera-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
  )

let template: Promise<Blob> | undefined

/** A data directory dump of an empty, migrated embedded database, made once per process. */
export const embeddedTemplate = (): Promise<Blob> => {
  if (template === undefined) {
    template = (async () => {
      const db = await PGlite.create({ extensions: { vector: pgliteVector } })
      try {
        await db.exec("CREATE EXTENSION IF NOT EXISTS vector")
        return await db.dumpDataDir("none")
      } finally {
        await db.close()
      }
    })()
  }
  return template
}

const embedded: Backend = {
  name: "embedded",
  layer: () =>
    Layer.unwrap(
      Effect.gen(function* () {
        const home = yield* tempDir()
        const loadDataDir = yield* Effect.promise(embeddedTemplate)
        return Tessera.layerOn(Database.layerEmbedded({ home, loadDataDir, inMemory: true }))
      })
    )
}

let counter = 0

const serverBackend = (url: string): Backend => ({
  name: "server",
  layer: () =>
    Layer.unwrap(
      Effect.gen(function* () {
        const home = yield* tempDir()
        const admin = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 1 }).pipe(
          Effect.provide(Reactivity.layer),
          Effect.mapError(
            (cause) =>
              new Database.DatabaseError({
                reason: "Unreachable",
                location: Database.redactUrl(url),
                message: `test server unreachable: ${cause.message}`,
                cause
              })
          )
        )
        const name = `tessera_t_${process.pid}_${Date.now().toString(36)}_${counter++}`
        yield* Effect.acquireRelease(admin.unsafe(`CREATE DATABASE ${name}`), () =>
          admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
        ).pipe(Effect.orDie)
        const testUrl = new URL(url)
        testUrl.pathname = `/${name}`
        return Tessera.layerOn(
          Database.layerServer({ url: Redacted.make(testUrl.toString()), home, maxConnections: 4 })
        )
      })
    )
})

/** The server URL tests use, when one is configured. */
export const serverUrl = (): string | undefined => {
  const url = process.env.TESSERA_TEST_DATABASE_URL
  return url === undefined || url === "" ? undefined : url
}

/** Every backend configured for this run: embedded always, the server when configured. */
export const backends = (): ReadonlyArray<Backend> => {
  const url = serverUrl()
  return url === undefined ? [embedded] : [embedded, serverBackend(url)]
}

export type BackendTest = <E>(
  name: string,
  body: (backend: Backend) => Effect.Effect<void, E, DatabaseServices | Scope.Scope>,
  timeout?: number
) => void

/**
 * Declares `suite` once per backend. Each test runs with live services (real
 * clock: databases time out for real) against its own fresh database.
 */
export const forEachBackend = (
  suite: string,
  body: (test: BackendTest, backend: Backend) => void,
  options?: {
    /** Only on this backend (e.g. what needs several processes on one database). */
    readonly only?: Database.Backend
  }
): void => {
  if (options?.only !== undefined && !backends().some((b) => b.name === options.only)) {
    describe.skip(`${suite} [${options.only}]`, () => {
      it.skip(`needs the ${options.only} backend (set TESSERA_TEST_DATABASE_URL)`, () => {})
    })
    return
  }
  for (const backend of backends()) {
    if (options?.only !== undefined && backend.name !== options.only) continue
    describe(`${suite} [${backend.name}]`, () => {
      const test: BackendTest = (name, run, timeout) =>
        it.live(name, () => run(backend).pipe(Effect.provide(backend.layer())), timeout)
      body(test, backend)
    })
  }
}

export { Migrations }
