/**
 * Benchmark runner: `npm run bench -- <name> [--quick]`. Each benchmark prints
 * its measurements and ends with one line `BENCH <name> key=value ... ratio=<x>`.
 */
const [name, ...rest] = process.argv.slice(2)
const benches: Record<string, () => Promise<{ main: (args: ReadonlyArray<string>) => Promise<void> }>> = {
  insert: () => import("./insert.ts"),
  search: () => import("./search.ts"),
  frames: () => import("./frames.ts"),
  "rate-limit": () => import("./rate-limit.ts"),
  thumbnails: () => import("./thumbnails.ts"),
  embed: () => import("./embed.ts")
}
if (name === undefined || benches[name] === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(benches).join("|")}> [--quick]`)
  process.exit(2)
}
const bench = await benches[name]()
await bench.main(rest)
