/**
 * Migrations: numbered, forward-only changes to Tessera's own metadata schema
 * (`tessera`). Opening a database applies the ones it lacks, inside one
 * transaction guarded by an advisory lock so that two processes opening the
 * same database at once do not race. A database migrated by a newer Tessera is
 * refused rather than silently used by an older one.
 */
import { Effect, Schema } from "effect"
import type { SqlClient } from "effect/sql"

export interface Migration {
  readonly id: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

export class MigrationError extends Schema.TaggedError<MigrationError>()("MigrationError", {
  reason: Schema.Literals(["Failed", "NewerSchema", "Invalid"]),
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** Arbitrary but fixed key for `pg_advisory_xact_lock`. */
const LOCK_KEY = 7_265_738_001

const m0001: Migration = {
  id: 1,
  name: "metadata",
  statements: [
    `CREATE SCHEMA IF NOT EXISTS tessera`,
    `CREATE TABLE tessera.meta (
       key text PRIMARY KEY,
       value jsonb NOT NULL
     )`,
    `CREATE TABLE tessera.dirs (
       id bigserial PRIMARY KEY,
       parent_id bigint REFERENCES tessera.dirs (id),
       name text NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now()
     )`,
    `CREATE UNIQUE INDEX dirs_parent_name ON tessera.dirs (coalesce(parent_id, 0), name)`,
    `CREATE TABLE tessera.tables (
       id bigserial PRIMARY KEY,
       dir_id bigint REFERENCES tessera.dirs (id),
       name text NOT NULL,
       kind text NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now(),
       version integer NOT NULL DEFAULT 0,
       schema_version integer NOT NULL DEFAULT 0,
       next_column_id integer NOT NULL DEFAULT 1,
       definition jsonb NOT NULL DEFAULT '{}'::jsonb
     )`,
    `CREATE UNIQUE INDEX tables_dir_name ON tessera.tables (coalesce(dir_id, 0), name)`,
    `CREATE TABLE tessera.columns (
       table_id bigint NOT NULL REFERENCES tessera.tables (id) ON DELETE CASCADE,
       column_id integer NOT NULL,
       name text NOT NULL,
       definition jsonb NOT NULL,
       added_in integer NOT NULL,
       dropped_in integer,
       PRIMARY KEY (table_id, column_id)
     )`,
    `CREATE TABLE tessera.versions (
       table_id bigint NOT NULL REFERENCES tessera.tables (id) ON DELETE CASCADE,
       version integer NOT NULL,
       schema_version integer NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now(),
       change_type text NOT NULL,
       inserted bigint NOT NULL DEFAULT 0,
       updated bigint NOT NULL DEFAULT 0,
       deleted bigint NOT NULL DEFAULT 0,
       errors bigint NOT NULL DEFAULT 0,
       schema_change text,
       PRIMARY KEY (table_id, version)
     )`,
    `CREATE TABLE tessera.indexes (
       id bigserial PRIMARY KEY,
       table_id bigint NOT NULL REFERENCES tessera.tables (id) ON DELETE CASCADE,
       name text NOT NULL,
       definition jsonb NOT NULL,
       added_in integer NOT NULL,
       dropped_in integer
     )`
  ]
}

const m0002: Migration = {
  id: 2,
  name: "row storage",
  statements: [
    // One physical table per user table lives here, named by id.
    `CREATE SCHEMA IF NOT EXISTS tessera_data`
  ]
}

const m0003: Migration = {
  id: 3,
  name: "workers",
  statements: [
    // Ids of worker processes; a live worker holds an advisory lock on its id.
    `CREATE SEQUENCE IF NOT EXISTS tessera.worker_seq AS int4 CYCLE`
  ]
}

const m0004: Migration = {
  id: 4,
  name: "result cache",
  statements: [
    `CREATE TABLE tessera.results (
       fn text NOT NULL,
       version integer NOT NULL,
       key text NOT NULL,
       value jsonb NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now(),
       used_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (fn, version, key)
     )`,
    `CREATE INDEX results_used_at ON tessera.results (used_at)`
  ]
}

const m0005: Migration = {
  id: 5,
  name: "column renames",
  statements: [
    // Renames are metadata only; their history lets a handle on an old version use the old names.
    `CREATE TABLE tessera.renames (
       table_id bigint NOT NULL REFERENCES tessera.tables (id) ON DELETE CASCADE,
       column_id integer NOT NULL,
       version integer NOT NULL,
       old_name text NOT NULL,
       new_name text NOT NULL,
       PRIMARY KEY (table_id, version, column_id)
     )`
  ]
}

const m0006: Migration = {
  id: 6,
  name: "cell claims on older tables",
  statements: [
    // Tables made before cells could be claimed get their claim columns.
    `DO $$
     DECLARE c record;
     BEGIN
       FOR c IN
         SELECT table_id, column_id FROM tessera.columns
         WHERE (definition -> 'computed' ->> 'stored')::boolean
       LOOP
         IF to_regclass(format('tessera_data.t_%s', c.table_id)) IS NOT NULL THEN
           EXECUTE format('ALTER TABLE tessera_data.t_%s ADD COLUMN IF NOT EXISTS l_%s int4', c.table_id, c.column_id);
         END IF;
       END LOOP;
     END $$`
  ]
}

const m0007: Migration = {
  id: 7,
  name: "one-trip table lookup",
  statements: [
    // The table at a path (its parts), or null: lets opening a table take one round trip.
    `CREATE OR REPLACE FUNCTION tessera.table_at(parts text[]) RETURNS bigint
     LANGUAGE plpgsql STABLE AS $$
     DECLARE dir bigint := NULL; i int;
     BEGIN
       FOR i IN 1 .. coalesce(array_length(parts, 1), 0) - 1 LOOP
         SELECT id INTO dir FROM tessera.dirs WHERE coalesce(parent_id, 0) = coalesce(dir, 0) AND name = parts[i];
         IF dir IS NULL THEN RETURN NULL; END IF;
       END LOOP;
       RETURN (SELECT id FROM tessera.tables
               WHERE coalesce(dir_id, 0) = coalesce(dir, 0) AND name = parts[array_length(parts, 1)]);
     END $$`
  ]
}

const m0008: Migration = {
  id: 8,
  name: "media data cells",
  statements: [
    // Media data columns record a value that failed its check on write as an error, like a computed cell.
    `DO $$
     DECLARE c record;
     BEGIN
       FOR c IN
         SELECT table_id, column_id FROM tessera.columns
         WHERE definition -> 'computed' IS NULL
           AND definition -> 'type' ->> 'kind' IN ('Image', 'Video', 'Audio', 'Document')
       LOOP
         IF to_regclass(format('tessera_data.t_%s', c.table_id)) IS NOT NULL THEN
           EXECUTE format(
             'ALTER TABLE tessera_data.t_%1$s ADD COLUMN IF NOT EXISTS s_%2$s int2 NOT NULL DEFAULT 1,
                ADD COLUMN IF NOT EXISTS et_%2$s text, ADD COLUMN IF NOT EXISTS em_%2$s text,
                ADD COLUMN IF NOT EXISTS ea_%2$s int2 NOT NULL DEFAULT 0',
             c.table_id, c.column_id);
         END IF;
       END LOOP;
     END $$`
  ]
}

/** Every migration this version of Tessera knows, in order. */
export const all: ReadonlyArray<Migration> = [m0001, m0002, m0003, m0004, m0005, m0006, m0007, m0008]

/** The schema version this engine writes: the id of its newest migration. */
export const latest = (migrations: ReadonlyArray<Migration> = all): number =>
  migrations.reduce((max, m) => Math.max(max, m.id), 0)

const failed = (message: string) => (cause: unknown) =>
  new MigrationError({
    reason: "Failed",
    message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/**
 * Applies the migrations the database lacks, in order, in one transaction.
 * Returns the ids it applied (empty when the database was up to date).
 */
export const run = Effect.fn("Migrations.run")(function* (
  sql: SqlClient.SqlClient,
  migrations: ReadonlyArray<Migration> = all
) {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.id <= migrations[i - 1]!.id) {
      return yield* new MigrationError({ reason: "Invalid", message: "migration ids must increase" })
    }
  }
  const apply = Effect.gen(function* () {
    yield* sql`SELECT pg_advisory_xact_lock(${LOCK_KEY}::int8)`
    yield* sql`CREATE SCHEMA IF NOT EXISTS tessera`
    yield* sql`CREATE TABLE IF NOT EXISTS tessera.migrations (
      id integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
    const done = yield* sql<{ id: number }>`SELECT id FROM tessera.migrations ORDER BY id`
    const doneIds = new Set(done.map((r) => r.id))
    const newest = done.reduce((max, r) => Math.max(max, r.id), 0)
    const known = latest(migrations)
    if (newest > known) {
      return yield* new MigrationError({
        reason: "NewerSchema",
        message: `This database was migrated by a newer Tessera (metadata schema ${newest}; this version knows up to ${known}). Upgrade Tessera to open it.`
      })
    }
    const applied: Array<number> = []
    for (const migration of migrations) {
      if (doneIds.has(migration.id)) continue
      for (const statement of migration.statements) {
        yield* sql.unsafe(statement).pipe(Effect.mapError(failed(`migration ${migration.id} (${migration.name})`)))
      }
      yield* sql`INSERT INTO tessera.migrations (id, name) VALUES (${migration.id}, ${migration.name})`
      applied.push(migration.id)
    }
    return applied
  })
  return yield* sql
    .withTransaction(apply)
    .pipe(Effect.catchTag("SqlError", (cause) => Effect.fail(failed("could not migrate Tessera's metadata")(cause))))
})
