/**
 * ModelError: why a local model could not embed a batch. Names the file (an
 * image that is missing or cannot be decoded) or the model directory (missing
 * or invalid model files) concerned. Only a crashed worker is worth a retry:
 * the batch then runs on the worker that replaced it.
 */
import { Schedule, Schema } from "effect"
import type { FailurePayload } from "./internal/protocol.ts"

export const Reason = Schema.Literals([
  "ModelNotFound",
  "InvalidModel",
  "InputNotFound",
  "InvalidInput",
  "Inference",
  "WorkerCrashed",
  "InvalidConfig"
])
export type Reason = typeof Reason.Type

export class ModelError extends Schema.TaggedError<ModelError>()("ModelError", {
  reason: Reason,
  /** The model: its name (`use-lite`, `mobilenet-v2`) or directory. */
  model: Schema.String,
  /** The file or directory concerned, when there is one. */
  path: Schema.optional(Schema.String),
  message: Schema.String
}) {
  get isRetryable(): boolean {
    return this.reason === "WorkerCrashed"
  }
}

export const isModelError = (u: unknown): u is ModelError => u instanceof ModelError

/** A failure reported by a worker, as a `ModelError` of `model`. */
export const fromPayload = (model: string, payload: FailurePayload): ModelError =>
  new ModelError({
    reason: payload.reason,
    model,
    message: payload.message,
    ...(payload.path === undefined ? {} : { path: payload.path })
  })

/** The default retry of local model functions: up to `times` (default 2) retries of retryable failures. */
export const retry = (times = 2): Schedule.Schedule<number, unknown> =>
  Schedule.recurs(times).pipe(Schedule.while(({ input }) => isModelError(input) && input.isRetryable))
