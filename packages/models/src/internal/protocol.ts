/**
 * What the main thread and a model worker say to each other, and the contract
 * a model module (loaded inside a worker) implements. Plain TypeScript with no
 * dependencies: the worker imports it directly.
 */

/** Why a model call failed (the `reason` of a `ModelError`). */
export type FailureReason =
  | "ModelNotFound"
  | "InvalidModel"
  | "InputNotFound"
  | "InvalidInput"
  | "Inference"
  | "WorkerCrashed"
  | "InvalidConfig"

/** A failure a model module raises; it crosses the thread boundary as a `FailurePayload`. */
export class ModelFailure extends Error {
  readonly reason: FailureReason
  /** The file or directory concerned. */
  readonly path: string | undefined
  constructor(reason: FailureReason, message: string, path?: string) {
    super(message)
    this.reason = reason
    this.path = path
  }
}

export interface FailurePayload {
  readonly reason: FailureReason
  readonly message: string
  readonly path?: string | undefined
}

/** One input's outcome: its vector, or why it has none. */
export type Outcome = Float32Array | ModelFailure

/** A model, loaded once per worker. */
export interface LoadedModel {
  /** The length of every vector the model returns. */
  readonly dimensions: number
  /** One vector (or failure) per input, in order. */
  readonly embed: (inputs: ReadonlyArray<string>) => Promise<ReadonlyArray<Outcome>>
}

/** What a model module exports: `load(options)`, called once per worker. */
export type Load = (options: unknown) => Promise<LoadedModel>

/** Which model to run: the module that loads it and its (structured-cloneable) options. */
export interface ModelSpec {
  /** How errors name the model (`use-lite`, a model directory, ...). */
  readonly name: string
  /** A `file:` URL of a module exporting `load`. */
  readonly module: string
  readonly options: unknown
  /** Identifies the loaded model in a worker: equal keys share one loaded model. */
  readonly key: string
}

export interface Request {
  readonly id: number
  readonly model: ModelSpec
  readonly inputs: ReadonlyArray<string>
}

export type Reply =
  | {
      readonly id: number
      readonly _tag: "Done"
      readonly threadId: number
      readonly dimensions: number
      /** The vectors, concatenated (`dimensions` numbers per input); a failed input's are zeros. */
      readonly data: Float32Array
      /** The inputs that failed, by index. */
      readonly failures: ReadonlyArray<{ readonly index: number; readonly failure: FailurePayload }>
    }
  | { readonly id: number; readonly _tag: "Failed"; readonly threadId: number; readonly failure: FailurePayload }

export const toPayload = (error: unknown): FailurePayload =>
  error instanceof ModelFailure
    ? { reason: error.reason, message: error.message, path: error.path }
    : { reason: "Inference", message: error instanceof Error ? error.message : String(error) }
