/**
 * An in-process Duplex that speaks the PostgreSQL wire protocol to a PGlite
 * instance, so that `@effect/sql-pg` (which implements the protocol itself)
 * can use PGlite as if it were a server on a socket.
 *
 * Frontend messages are framed here and handed to PGlite in order; PGlite's
 * answers are pushed back as they are produced. The client holds exactly one
 * connection over this stream: PGlite is a single backend, and several
 * connections would interleave their messages.
 */
import type { PGlite } from "@electric-sql/pglite"
import { Duplex } from "node:stream"

const SSL_REQUEST_CODE = 80877103
const GSSENC_REQUEST_CODE = 80877104
const CANCEL_REQUEST_CODE = 80877102
const PROTOCOL_3 = 196608
const TERMINATE = 0x58 // 'X'

export const makePgliteStream = (db: PGlite): Duplex => {
  let buffer: Buffer = Buffer.alloc(0)
  let startupDone = false
  let closed = false
  let chain: Promise<void> = Promise.resolve()

  const run = (message: Uint8Array, stream: Duplex): Promise<void> =>
    db.runExclusive(() =>
      db.execProtocolRawStream(message, {
        onRawData: (data) => {
          if (!closed && data.length > 0) stream.push(Buffer.from(data))
        }
      })
    )

  // Splits the buffered bytes into the messages that are complete. Regular
  // messages that arrive together are handed to PGlite in one call: the
  // backend loop reads them one after another, as a server would.
  const drain = (stream: Duplex): Array<() => Promise<void>> => {
    const work: Array<() => Promise<void>> = []
    let batchStart = -1
    let offset = 0
    const flushBatch = (end: number) => {
      if (batchStart >= 0) {
        const message = buffer.subarray(batchStart, end)
        work.push(() => run(message, stream))
        batchStart = -1
      }
    }
    while (buffer.length - offset >= 4) {
      if (!startupDone) {
        if (buffer.length - offset < 8) break
        const length = buffer.readInt32BE(offset)
        if (buffer.length - offset < length) break
        const code = buffer.readInt32BE(offset + 4)
        const message = buffer.subarray(offset, offset + length)
        offset += length
        if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
          work.push(async () => {
            if (!closed) stream.push(Buffer.from("N"))
          })
        } else if (code === CANCEL_REQUEST_CODE) {
          // PGlite runs one statement at a time to completion: there is nothing
          // to cancel, so the cancel connection just closes.
          work.push(async () => {
            closed = true
            stream.destroy()
          })
        } else if (code === PROTOCOL_3) {
          startupDone = true
          work.push(() => run(message, stream))
        } else {
          work.push(async () => {
            stream.destroy(new Error(`Unsupported startup message code ${code}`))
          })
        }
        continue
      }
      if (buffer.length - offset < 5) break
      const type = buffer[offset]!
      const length = 1 + buffer.readInt32BE(offset + 1)
      if (buffer.length - offset < length) break
      if (type === TERMINATE) {
        flushBatch(offset)
        offset += length
        work.push(async () => {
          closed = true
          stream.push(null)
        })
        continue
      }
      if (batchStart < 0) batchStart = offset
      offset += length
    }
    flushBatch(offset)
    buffer = offset === buffer.length ? Buffer.alloc(0) : Buffer.from(buffer.subarray(offset))
    return work
  }

  const stream: Duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (closed) return callback()
      buffer = buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([buffer, chunk])
      const work = drain(stream)
      for (const step of work) {
        chain = chain.then(step)
      }
      chain = chain.catch((error: unknown) => {
        closed = true
        stream.destroy(error instanceof Error ? error : new Error(String(error)))
      })
      callback()
    },
    final(callback) {
      chain.then(
        () => callback(),
        () => callback()
      )
    },
    destroy(error, callback) {
      closed = true
      callback(error)
    }
  })
  // The client may look for socket-like methods.
  Object.assign(stream, {
    setNoDelay: () => stream,
    setKeepAlive: () => stream,
    unref: () => stream,
    ref: () => stream
  })
  return stream
}
