/**
 * @tessera/cli: the `tessera` command (`serve`, `status`, `ls`).
 */
export * as Cli from "./Cli.ts"
