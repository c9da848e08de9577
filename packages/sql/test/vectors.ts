/** Test vectors: deterministic pseudo-random ones (so failures reproduce) and exact scores to check against. */

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export const prng = (seed: number) => () => {
  seed |= 0
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** `n` vectors of `dim` numbers in [-1, 1), the same for the same seed. */
export const randomVectors = (n: number, dim: number, seed: number): Array<Float32Array> => {
  const next = prng(seed)
  return Array.from({ length: n }, () => Float32Array.from({ length: dim }, () => next() * 2 - 1))
}

/** Cosine similarity, exactly (in doubles). */
export const cosine = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!
    na += a[i]! * a[i]!
    nb += b[i]! * b[i]!
  }
  return dot / Math.sqrt(na * nb)
}
