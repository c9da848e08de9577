/**
 * @tessera/providers: model providers (OpenAI, Anthropic) as Tessera
 * functions for computed columns, over the official SDKs, with typed errors,
 * retries and rate-limit pacing.
 */
export * as Anthropic from "./Anthropic.ts"
export * as OpenAI from "./OpenAI.ts"
export * as ProviderError from "./ProviderError.ts"
