/**
 * What the provider modules share besides the request boundary: the options
 * every provider function takes, resolving the API key (option, else the
 * environment through `Config`), one SDK client per key, and stable function
 * names.
 */
import { Config, Duration, Effect, Redacted, type Schedule } from "effect"
import * as ProviderError from "../ProviderError.ts"

/** Options every provider function takes. */
export interface CommonOptions {
  /** The API's base URL (default: the SDK's, which also reads the usual env variable). */
  readonly baseURL?: string | undefined
  /** The API key (default: the provider's env variable, read through `Config`). */
  readonly apiKey?: string | Redacted.Redacted<string> | undefined
  /** How many calls (requests) of this function may run at once, process-wide (default 8; embeddings 4). */
  readonly concurrency?: number | undefined
  /** The rate-limit pool the calls share (default `<provider>/<model>`). */
  readonly pool?: string | undefined
  /** How failed calls are retried (default `ProviderError.retry()`). */
  readonly retry?: Schedule.Schedule<unknown, ProviderError.Reason> | undefined
  /** How long one HTTP request may take (default 2 minutes). */
  readonly timeout?: Duration.Input | undefined
  /** The function's name in the catalog (default derived from the model and settings). */
  readonly name?: string | undefined
  readonly version?: number | undefined
}

export const DEFAULT_TIMEOUT: Duration.Input = "2 minutes"

export const timeoutMillis = (options: CommonOptions): number =>
  Math.max(1, Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.timeout ?? DEFAULT_TIMEOUT))))

/** The API key, or an `Auth` reason naming the variable that is missing (never a value). */
export const apiKey = (
  option: CommonOptions["apiKey"],
  variable: string
): Effect.Effect<string, ProviderError.Reason> => {
  if (option !== undefined) return Effect.succeed(Redacted.isRedacted(option) ? Redacted.value(option) : option)
  return Effect.mapError(
    Effect.map(Config.Redacted(variable), Redacted.value),
    () => new ProviderError.Auth({ message: `no API key: set ${variable} or pass apiKey` })
  )
}

/** One SDK client per API key, made on first use. */
export const clientCache = <C>(make: (apiKey: string) => C): ((apiKey: string) => C) => {
  const clients = new Map<string, C>()
  return (key) => {
    let client = clients.get(key)
    if (client === undefined) {
      client = make(key)
      clients.set(key, client)
    }
    return client
  }
}

const fnv1a = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0).toString(16).padStart(8, "0")
}

const canonical = (value: unknown): string =>
  JSON.stringify(value, (_, v) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v
  )

/**
 * `<base>/<model>`, plus `:<hash>` of the settings that change what the
 * function computes (system prompt, template, ...) when there are any, so
 * two columns with different settings never share a registered function
 * while the same settings always give the same name.
 */
export const functionName = (base: string, model: string, settings: Record<string, unknown>): string => {
  const safeModel = model.replace(/[^A-Za-z0-9_.:/-]/g, "_")
  const defined = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined))
  return Object.keys(defined).length === 0
    ? `${base}/${safeModel}`
    : `${base}/${safeModel}:${fnv1a(canonical(defined))}`
}

/** Fills `{prompt}` in a template (no template: the prompt itself). */
export const render = (template: string | undefined, prompt: string): string =>
  template === undefined ? prompt : template.split("{prompt}").join(prompt)

/** A rough token count (4 characters a token) for token-per-minute pacing. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4)
