import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // PGlite instances are memory hungry and 2-core machines are the norm here.
    maxWorkers: 2,
    fileParallelism: true
  }
})
