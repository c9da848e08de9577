/**
 * Vector: pgvector's `vector` and `halfvec` values as `Float32Array`s on the
 * wire, in pgvector's binary format (int16 dimension, int16 unused, then
 * float4 / float2 big-endian elements).
 *
 * The types come from an extension, so their OIDs differ between databases:
 * `register` looks them up once the extension exists and installs the codecs
 * in the client's own type registry. Values read from either type decode to
 * `Float32Array`; parameters are built with `param` / `halfParam` (or through
 * the `Database` service, which knows the OIDs).
 */
import { PgTypes } from "@effect/sql-pg"
import { Result } from "effect"

/** Anything a vector can be written from. */
export type VectorInput = Float32Array | Float64Array | ReadonlyArray<number>

/** The OIDs of pgvector's types in one database. */
export interface VectorTypes {
  readonly vector: number
  readonly halfvec: number
}

const MAX_DIM = 16000

const codecError = (message: string) => new PgTypes.CodecError({ message })

const checkInput = (value: VectorInput, kind: string): PgTypes.CodecError | undefined => {
  if (value.length === 0) return codecError(`${kind} must have at least 1 dimension`)
  if (value.length > MAX_DIM) return codecError(`${kind} cannot have more than ${MAX_DIM} dimensions`)
  for (let i = 0; i < value.length; i++) {
    if (!Number.isFinite(value[i])) return codecError(`${kind} element ${i} is not a finite number (${value[i]})`)
  }
  return undefined
}

const readHeader = (bytes: Uint8Array, offset: number, size: number, width: number, kind: string) => {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, size)
  if (size < 4) throw codecError(`${kind}: truncated value`)
  const dim = view.getInt16(0)
  if (size !== 4 + dim * width) throw codecError(`${kind}: expected ${4 + dim * width} bytes, got ${size}`)
  return { view, dim }
}

const vectorCodec: PgTypes.Codec<VectorInput> = {
  encode: (value) => {
    const error = checkInput(value, "vector")
    if (error) return Result.fail(error)
    const out = new Uint8Array(4 + value.length * 4)
    const view = new DataView(out.buffer)
    view.setInt16(0, value.length)
    view.setInt16(2, 0)
    for (let i = 0; i < value.length; i++) view.setFloat32(4 + i * 4, value[i]!)
    return Result.succeed(out)
  },
  write: (sink, value) => {
    const error = checkInput(value, "vector")
    if (error) return Result.fail(error)
    sink.int16(value.length)
    sink.int16(0)
    for (let i = 0; i < value.length; i++) sink.float32(value[i]!)
    return Result.void
  },
  decode: (bytes) => vectorCodec.read!(bytes, 0, bytes.length),
  read: (bytes, offset, size) => {
    try {
      const { view, dim } = readHeader(bytes, offset, size, 4, "vector")
      const out = new Float32Array(dim)
      for (let i = 0; i < dim; i++) out[i] = view.getFloat32(4 + i * 4)
      return Result.succeed(out)
    } catch (error) {
      return Result.fail(error as PgTypes.CodecError)
    }
  }
}

const halfvecCodec: PgTypes.Codec<VectorInput> = {
  encode: (value) => {
    const error = checkInput(value, "halfvec")
    if (error) return Result.fail(error)
    const out = new Uint8Array(4 + value.length * 2)
    const view = new DataView(out.buffer)
    view.setInt16(0, value.length)
    view.setInt16(2, 0)
    for (let i = 0; i < value.length; i++) view.setFloat16(4 + i * 2, value[i]!)
    return Result.succeed(out)
  },
  decode: (bytes) => halfvecCodec.read!(bytes, 0, bytes.length),
  read: (bytes, offset, size) => {
    try {
      const { view, dim } = readHeader(bytes, offset, size, 2, "halfvec")
      const out = new Float32Array(dim)
      for (let i = 0; i < dim; i++) out[i] = view.getFloat16(4 + i * 2)
      return Result.succeed(out)
    } catch (error) {
      return Result.fail(error as PgTypes.CodecError)
    }
  }
}

/** Installs the vector codecs for the given OIDs into a client's registry. */
export const registerCodecs = (registry: PgTypes.Registry, types: VectorTypes): void => {
  registry.register(types.vector, vectorCodec)
  registry.register(types.halfvec, halfvecCodec)
}

const makeParameter = (oid: number, value: VectorInput | null): PgTypes.Parameter => ({
  [PgTypes.ParameterTypeId]: PgTypes.ParameterTypeId,
  oid,
  value
})

/** A `vector` parameter, sent in binary form. */
export const param = (types: VectorTypes, value: VectorInput | null): PgTypes.Parameter =>
  makeParameter(types.vector, value)

/** A `halfvec` parameter, sent in binary form (elements rounded to float16). */
export const halfParam = (types: VectorTypes, value: VectorInput | null): PgTypes.Parameter =>
  makeParameter(types.halfvec, value)

/** pgvector's text literal for a vector, for the rare place that needs SQL text. */
export const toLiteral = (value: VectorInput): string => `[${Array.from(value).join(",")}]`
