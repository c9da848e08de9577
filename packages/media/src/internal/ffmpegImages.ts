/**
 * Splits the byte stream of `ffmpeg -f image2pipe` into images: PNG by its
 * chunk lengths (up to IEND), JPEG by its markers (up to EOI, scanning the
 * entropy-coded data, where a 0xFF byte is always stuffed or a restart marker).
 */

export type ImageFormat = "png" | "jpeg"

export class ImageSplitter {
  private buffer = new Uint8Array(1 << 20)
  private length = 0
  /** Where parsing of the current image resumes. */
  private cursor = 0
  /** JPEG only: the cursor is inside entropy-coded data. */
  private inScan = false

  readonly format: ImageFormat

  constructor(format: ImageFormat) {
    this.format = format
  }

  /** Adds bytes; returns the images they complete. */
  push(chunk: Uint8Array): Array<Uint8Array> {
    this.append(chunk)
    const images: Array<Uint8Array> = []
    for (;;) {
      const end = this.format === "png" ? this.scanPng() : this.scanJpeg()
      if (end === undefined) break
      images.push(this.buffer.slice(0, end))
      this.buffer.copyWithin(0, end, this.length)
      this.length -= end
      this.cursor = 0
      this.inScan = false
    }
    return images
  }

  /** Bytes received that do not form a whole image (a truncated stream). */
  get pending(): number {
    return this.length
  }

  private append(chunk: Uint8Array) {
    if (this.length + chunk.length > this.buffer.length) {
      let size = this.buffer.length * 2
      while (size < this.length + chunk.length) size *= 2
      const next = new Uint8Array(size)
      next.set(this.buffer.subarray(0, this.length))
      this.buffer = next
    }
    this.buffer.set(chunk, this.length)
    this.length += chunk.length
  }

  private u32(at: number): number {
    const b = this.buffer
    return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0
  }

  /** The end offset of a complete PNG at the buffer's start, if any. */
  private scanPng(): number | undefined {
    if (this.cursor === 0) {
      if (this.length < 8) return undefined
      this.cursor = 8
    }
    while (this.cursor + 8 <= this.length) {
      const size = this.u32(this.cursor)
      const end = this.cursor + 12 + size
      if (end > this.length) return undefined
      const b = this.buffer
      const c = this.cursor + 4
      // IEND
      const isEnd = b[c] === 0x49 && b[c + 1] === 0x45 && b[c + 2] === 0x4e && b[c + 3] === 0x44
      this.cursor = end
      if (isEnd) return end
    }
    return undefined
  }

  /** The end offset of a complete JPEG at the buffer's start, if any. */
  private scanJpeg(): number | undefined {
    const b = this.buffer
    if (this.cursor === 0) {
      if (this.length < 2) return undefined
      this.cursor = 2 // SOI
    }
    for (;;) {
      if (this.inScan) {
        let i = this.cursor
        while (i + 1 < this.length) {
          if (b[i] === 0xff) {
            const m = b[i + 1]!
            if (m === 0x00 || (m >= 0xd0 && m <= 0xd7) || m === 0xff) {
              i += m === 0xff ? 1 : 2
              continue
            }
            break
          }
          i++
        }
        this.cursor = i
        if (i + 1 >= this.length) return undefined
        this.inScan = false
      }
      if (this.cursor + 2 > this.length) return undefined
      const marker = b[this.cursor + 1]!
      if (marker === 0xd9) return this.cursor + 2 // EOI
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        this.cursor += 2
        continue
      }
      if (this.cursor + 4 > this.length) return undefined
      const size = (b[this.cursor + 2]! << 8) | b[this.cursor + 3]!
      if (this.cursor + 2 + size > this.length) return undefined
      this.cursor += 2 + size
      if (marker === 0xda) this.inScan = true // SOS: entropy-coded data follows its header
    }
  }
}
