/**
 * What every row-at-a-time provider function shares: the API key resolved
 * per call (never captured in the definition, so it is in no name or hash),
 * one request per row, the failure's reason recorded on the cell, and pool,
 * retries and concurrency from the common options.
 */
import { type Column, Fn, type Media, type Pool } from "@tessera/core"
import { Effect } from "effect"
import * as ProviderError from "../ProviderError.ts"
import * as Client from "./client.ts"
import * as Request from "./request.ts"

type ParamSpecs = Record<string, Column.Any>

/** What a function's code receives: the values, a media value being its path or URL. */
export type ArgsOf<P extends ParamSpecs> = { readonly [K in keyof P]: Column.ValueOf<P[K]> }

/** What a function's code returns for a result column `C` (a media result is the path of the file it made). */
export type ResultOf<C extends Column.Any> = Media.Plain<Column.ValueOf<C>>

/** The API key (option, else `variable`), or an `Auth` failure of `endpoint` naming the variable. */
export const apiKey = (
  endpoint: Request.Endpoint,
  options: Client.CommonOptions,
  variable: string
): Effect.Effect<string, ProviderError.ProviderError> =>
  Effect.catch(Client.apiKey(options.apiKey, variable), (reason) => Request.fail(endpoint, reason))

export interface RowFunction<P extends ParamSpecs, C extends Column.Any> {
  readonly endpoint: Request.Endpoint
  readonly options: Client.CommonOptions
  /** The environment variable of the provider's API key. */
  readonly keyVariable: string
  /** The function's name unless `options.name` says otherwise. */
  readonly name: string
  readonly params: P
  readonly returns: C
  readonly deterministic: boolean
  /** The tokens one call is expected to use, for token-per-minute pacing. */
  readonly tokens?: ((args: ArgsOf<P>) => number) | undefined
  readonly run: (
    args: ArgsOf<P>,
    apiKey: string
  ) => Effect.Effect<ResultOf<C>, ProviderError.ProviderError, Pool.CurrentPool>
}

/** A provider function calling the API once per row; its pool defaults to `<provider>/<model>`. */
export const rowFunction = <P extends ParamSpecs, C extends Column.Any>(
  spec: RowFunction<P, C>
): Fn.Fn<P, Column.ValueOf<C>> => {
  const { endpoint, options, tokens } = spec
  return Fn.effect({
    rateLimitHeaders: true,
    name: options.name ?? spec.name,
    version: options.version,
    params: spec.params,
    returns: spec.returns,
    deterministic: spec.deterministic,
    concurrency: options.concurrency,
    pool: options.pool ?? `${endpoint.provider}/${endpoint.model}`,
    retry: options.retry ?? ProviderError.retry(),
    estimateTokens: tokens === undefined ? undefined : (rows) => rows.reduce((sum, row) => sum + tokens(row), 0),
    run: Effect.fnUntraced(
      function* (args: ArgsOf<P>) {
        const key = yield* apiKey(endpoint, options, spec.keyVariable)
        return yield* spec.run(args, key)
      },
      // The cell records the reason (errorType `BadRequest`, ...), not the wrapper.
      Effect.mapError((error: ProviderError.ProviderError) => error.reason)
    )
  })
}

/** Fails `endpoint` with a reason met outside the request (a file to read or write, an answer to parse). */
export const orFail =
  (endpoint: Request.Endpoint, secret: string) =>
  <A>(effect: Effect.Effect<A, ProviderError.Reason>): Effect.Effect<A, ProviderError.ProviderError> =>
    Effect.catch(effect, (reason) => Request.fail(endpoint, reason, secret))
