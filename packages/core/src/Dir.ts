/**
 * Dir: directories that organise tables into paths (`dir/sub/table`).
 */
import { Effect } from "effect"
import type * as Catalog from "./Catalog.ts"
import { Store, type StoreError } from "./Store.ts"

/** Creates a directory; `parents` creates missing ancestors too. */
export const create = (
  path: string,
  options?: { readonly ifExists?: "error" | "ignore"; readonly parents?: boolean }
): Effect.Effect<void, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) =>
    store.createDir(path, { ifExists: options?.ifExists ?? "error", parents: options?.parents ?? false })
  )

/** The directories in a directory (the root by default), recursively if asked. */
export const list = (
  path = "",
  options?: { readonly recursive?: boolean }
): Effect.Effect<ReadonlyArray<string>, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) => store.listDirs(path, options?.recursive ?? false))

/** Drops a directory; it must be empty unless `force`, which drops everything in it. */
export const drop = (
  path: string,
  options?: { readonly force?: boolean; readonly ifNotExists?: "error" | "ignore" }
): Effect.Effect<void, Catalog.CatalogError | StoreError, Store> =>
  Effect.flatMap(Effect.service(Store), (store) =>
    store.dropDir(path, { force: options?.force ?? false, ifNotExists: options?.ifNotExists ?? "error" })
  )
