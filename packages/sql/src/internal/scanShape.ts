/**
 * The shape of a scan: everything its SQL depends on, with the query vectors
 * of vector scores left as holes. Two scans of one shape compile to the same
 * SQL text and parameters but for the vectors in the holes, so the store
 * compiles a shape once and, for each later scan, only puts its vectors in.
 */
import type { Expr, Store } from "@tessera/core"

export interface ScanShape {
  /** The key: the spec as JSON, each query vector written as its hole (`?<n>:<dimension>`). */
  readonly key: string
  /** The vectors in the holes, by hole number (vectors equal in value share a hole). */
  readonly vectors: ReadonlyArray<Float32Array>
  /** The hole of each vector array of the spec's vector scores. */
  readonly holes: ReadonlyMap<Float32Array, number>
}

const MAX_KEY_LENGTH = 16_384

const sameVector = (a: Float32Array, b: Float32Array) => {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The shape of a scan, or undefined when it is not worth keeping (scans of
 * given rows, or of cells: the engine's own bookkeeping reads, each different;
 * scans with large literals).
 */
export const scanShape = (spec: Store.ScanSpec): ScanShape | undefined => {
  if (spec.rowids !== undefined || spec.baseRowids !== undefined || spec.cells !== undefined) return undefined
  const vectors: Array<Float32Array> = []
  const holes = new Map<Float32Array, number>()
  let literalVectors: Array<Float32Array> | undefined
  let key = ""
  // Like JSON.stringify (which is several times slower with a replacer), with typed arrays
  // written out, and the query vectors of vector scores as holes.
  const write = (value: unknown, holder: unknown, name: string): void => {
    if (value === null || typeof value !== "object") {
      key += typeof value === "string" ? JSON.stringify(value) : typeof value === "bigint" ? `${value}n` : String(value)
    } else if (value instanceof Float32Array) {
      if (name === "vector" && (holder as Expr.Node)._tag === "VectorScore") {
        let hole = vectors.findIndex((v) => sameVector(v, value))
        if (hole < 0) hole = vectors.push(value) - 1
        holes.set(value, hole)
        key += `?${hole}:${value.length}`
      } else {
        ;(literalVectors ??= []).push(value)
        key += `f32[${value.join(",")}]`
      }
    } else if (ArrayBuffer.isView(value)) {
      key += `${value.constructor.name}[${Array.from(value as Uint8Array).join(",")}]`
    } else if (value instanceof Date) {
      key += `date(${value.getTime()})`
    } else if (Array.isArray(value)) {
      key += "["
      for (const item of value) {
        write(item, value, "")
        key += ","
      }
      key += "]"
    } else {
      key += "{"
      for (const k in value) {
        const v = (value as Record<string, unknown>)[k]
        if (v === undefined) continue
        key += `${JSON.stringify(k)}:`
        write(v, value, k)
        key += ","
      }
      key += "}"
    }
  }
  write(spec, undefined, "")
  // A hole whose vector is also a literal's array could not be told apart from it in the parameters.
  if (literalVectors?.some((l) => holes.has(l))) return undefined
  // A scan with large literals (a long IN list, say) is not worth keeping.
  if (key.length > MAX_KEY_LENGTH) return undefined
  return { key, vectors, holes }
}

/**
 * Where a shape's query vectors go in its compiled parameters: for each
 * parameter that holds one of the vectors (itself or as a typed parameter's
 * value), its position and hole number.
 */
export const vectorSlots = (
  params: ReadonlyArray<unknown>,
  shape: ScanShape
): ReadonlyArray<readonly [slot: number, hole: number]> => {
  const slots: Array<readonly [number, number]> = []
  params.forEach((param, slot) => {
    const value = typeof param === "object" && param !== null && "value" in param ? param.value : param
    const hole = value instanceof Float32Array ? shape.holes.get(value) : undefined
    if (hole !== undefined) slots.push([slot, hole])
  })
  return slots
}

/** A shape's compiled parameters with another scan's vectors (of the same shape) in the holes. */
export const fillSlots = (
  params: ReadonlyArray<unknown>,
  slots: ReadonlyArray<readonly [slot: number, hole: number]>,
  vectors: ReadonlyArray<Float32Array>
): Array<unknown> => {
  const filled = params.slice()
  for (const [slot, hole] of slots) {
    const param = params[slot]
    filled[slot] = param instanceof Float32Array ? vectors[hole] : { ...(param as object), value: vectors[hole] }
  }
  return filled
}
