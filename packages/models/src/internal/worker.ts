/**
 * A model worker thread: loads each model it is asked for once (by the
 * model's key) and embeds the batches the pool sends it, one at a time.
 * Started by `WorkerPool` as `new Worker(new URL("./worker.ts", ...))`:
 * Node strips the types, so this file and what it imports use only erasable
 * TypeScript and `.ts` import paths.
 */
import { parentPort, threadId } from "node:worker_threads"
import {
  type FailurePayload,
  type Load,
  type LoadedModel,
  ModelFailure,
  type ModelSpec,
  type Reply,
  type Request,
  toPayload
} from "./protocol.ts"

const port = parentPort
if (port === null) throw new Error("worker.ts runs as a worker thread")

const models = new Map<string, Promise<LoadedModel>>()

const load = (spec: ModelSpec): Promise<LoadedModel> => {
  let model = models.get(spec.key)
  if (model === undefined) {
    model = import(spec.module).then(
      (module: { readonly load?: Load }) => {
        if (typeof module.load !== "function") {
          throw new ModelFailure("InvalidModel", `${spec.module} exports no load function`)
        }
        return module.load(spec.options)
      },
      (cause: unknown) => {
        const message = cause instanceof Error ? cause.message : String(cause)
        throw new ModelFailure("InvalidModel", `Cannot import model module ${spec.module}: ${message}`)
      }
    )
    // A failed load is not kept: the next batch tries again (the files may have appeared).
    model.catch(() => models.delete(spec.key))
    models.set(spec.key, model)
  }
  return model
}

const run = async (request: Request): Promise<{ reply: Reply; transfer: Array<ArrayBuffer> }> => {
  try {
    const model = await load(request.model)
    const outcomes = await model.embed(request.inputs)
    if (outcomes.length !== request.inputs.length) {
      throw new ModelFailure(
        "InvalidModel",
        `${request.model.module} returned ${outcomes.length} results for ${request.inputs.length} inputs`
      )
    }
    const data = new Float32Array(model.dimensions * request.inputs.length)
    const failures: Array<{ index: number; failure: FailurePayload }> = []
    outcomes.forEach((outcome, index) => {
      if (!(outcome instanceof Float32Array)) failures.push({ index, failure: toPayload(outcome) })
      else if (outcome.length === model.dimensions) data.set(outcome, index * model.dimensions)
      else {
        const message = `${request.model.module} returned a vector of ${outcome.length} numbers, expected ${model.dimensions}`
        failures.push({ index, failure: { reason: "InvalidModel", message } })
      }
    })
    const reply: Reply = { id: request.id, _tag: "Done", threadId, dimensions: model.dimensions, data, failures }
    return { reply, transfer: [data.buffer] }
  } catch (error) {
    return { reply: { id: request.id, _tag: "Failed", threadId, failure: toPayload(error) }, transfer: [] }
  }
}

port.on("message", (request: Request) => {
  void run(request).then(({ reply, transfer }) => port.postMessage(reply, transfer))
})
