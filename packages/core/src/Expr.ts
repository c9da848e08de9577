/**
 * Expr: the immutable, serialisable expression tree that computed columns,
 * filters and projections are made of, and the typed builders users write
 * (`c.x.plus(1)`, `c.name.lower().contains("a")`, `c.meta.a.b`).
 *
 * A tree is plain data (`Node`), so it persists in the catalog; `Expr<T>`
 * wraps a node with its static column type and the TypeScript type `T` of
 * its values. The SQL compiler (in `@tessera/sql`) and the engine evaluator
 * (`Evaluate`) give the same answers for every node, following SQL's rules:
 * null propagates, comparisons with null are null, and/or are three-valued.
 */
import * as ColumnType from "./ColumnType.ts"
import * as Media from "./Media.ts"

export type ArithmeticOp = "+" | "-" | "*" | "/" | "%"
export type ComparisonOp = "=" | "!=" | "<" | "<=" | ">" | ">="
export type BinaryOp = ArithmeticOp | ComparisonOp | "and" | "or"
export type StringFn =
  | "length"
  | "lower"
  | "upper"
  | "trim"
  | "contains"
  | "startsWith"
  | "endsWith"
  | "replace"
  | "concat"
export type ErrorProp = "errorType" | "errorMessage"
export type Metric = "cosine" | "ip" | "l2"
export type Precision = "vector" | "halfvec"
/** What a similarity query value is: embedded with the index's function for that modality. */
export type Modality = "text" | "image"

export type Node =
  | { readonly _tag: "Column"; readonly id: number; readonly name: string }
  | { readonly _tag: "Literal"; readonly value: unknown; readonly type: ColumnType.ColumnType }
  | { readonly _tag: "Binary"; readonly op: BinaryOp; readonly left: Node; readonly right: Node }
  | { readonly _tag: "Not"; readonly expr: Node }
  | { readonly _tag: "Neg"; readonly expr: Node }
  | { readonly _tag: "IsNull"; readonly expr: Node }
  | { readonly _tag: "IsIn"; readonly expr: Node; readonly values: ReadonlyArray<Node> }
  | { readonly _tag: "String"; readonly fn: StringFn; readonly args: ReadonlyArray<Node> }
  | { readonly _tag: "JsonPath"; readonly expr: Node; readonly path: ReadonlyArray<string | number> }
  | { readonly _tag: "Cast"; readonly expr: Node; readonly to: ColumnType.ColumnType }
  | {
      readonly _tag: "Call"
      readonly fn: string
      readonly version: number
      readonly args: ReadonlyArray<Node>
      readonly type: ColumnType.ColumnType
    }
  | { readonly _tag: "ErrorProp"; readonly id: number; readonly name: string; readonly prop: ErrorProp }
  | {
      /** Similarity to `query` under an embedding index of column `id` (resolved before evaluation). */
      readonly _tag: "Similarity"
      readonly id: number
      readonly name: string
      readonly index: string | undefined
      /** The query's modality; by default a text for a string, unless the index embeds images only. */
      readonly modality?: Modality | undefined
      readonly query: Node
      /** The HNSW search breadth (`hnsw.ef_search`) for a query ordered by this similarity. */
      readonly efSearch?: number | undefined
    }
  | {
      /** The vectors an embedding index of column `id` stores (resolved before evaluation). */
      readonly _tag: "Embedding"
      readonly id: number
      readonly name: string
      readonly index: string | undefined
    }
  | {
      /** Full-text search of column `id` (PostgreSQL text search): a match test, or a rank. */
      readonly _tag: "TextSearch"
      readonly id: number
      readonly name: string
      readonly mode: "match" | "rank"
      readonly language: string
      readonly query: Node
    }
  | {
      /** A resolved similarity: the stored vector column `id` scored against a query vector. */
      readonly _tag: "VectorScore"
      readonly id: number
      readonly name: string
      readonly metric: Metric
      readonly precision: Precision
      readonly vector: Float32Array
      /** The HNSW search breadth (`hnsw.ef_search`) when a scan is ordered by this score. */
      readonly efSearch?: number | undefined
    }

/** Resolves a column id to its type (and tells whether it is computed). */
export type ColumnTypes = (id: number) => ColumnType.ColumnType | undefined

type Nullish<A, B = never> = null extends A ? null : null extends B ? null : never
type Value<A> = A | Expr<A>
type NonNull<A> = Exclude<A, null>

/** Anything a builder accepts in place of an expression: an Expr or a plain value. */
export type Input<A> = Value<A> | Value<NonNull<A>>

/**
 * What a function argument of type `A` accepts: `Input`; for a media parameter
 * any string expression or value (a path or URL), a URL or a handle.
 */
export type Arg<A> = [NonNull<A>] extends [Media.Uri<infer K extends Media.Kind>]
  ? Input<string | null> | URL | Media.MediaRef<K>
  : Input<A | null>

/** An expression of values `T`, with the methods of its media kind when it has them (`c.img.resize(...)`). */
export type Of<T> = Media.WithMethods<Expr<T>, T>

const jsonProxyHandler: ProxyHandler<Expr<unknown>> = {
  get(target, prop, receiver) {
    if (typeof prop === "symbol" || prop in target) return Reflect.get(target, prop, receiver)
    if (prop === "then") return undefined
    const key = /^(0|[1-9]\d*)$/.test(prop) ? Number(prop) : prop
    return target.get(key)
  }
}

/** The typed view of a JSON value: `c.meta.a.b`, `c.list[0]`. */
export type JsonExpr<T> = Expr<T> &
  (NonNull<T> extends ReadonlyArray<infer E>
    ? { readonly [index: number]: JsonExpr<E | Nullish<T>> }
    : NonNull<T> extends Record<string, unknown>
      ? { readonly [K in Exclude<keyof NonNull<T>, keyof Expr<T>> & string]-?: JsonExpr<NonNull<T>[K] | Nullish<T>> }
      : unknown extends T
        ? { readonly [key: string]: JsonExpr<unknown> }
        : {})

export class Expr<T> {
  declare readonly "~type": T
  readonly node: Node
  readonly type: ColumnType.ColumnType

  constructor(node: Node, type: ColumnType.ColumnType) {
    this.node = node
    this.type = type
    // biome-ignore lint/correctness/noConstructorReturn: JSON values support property access paths.
    if (type.kind === "Json") return new Proxy(this, jsonProxyHandler as ProxyHandler<this>)
    if (methodsByKind.has(type.kind)) Object.setPrototypeOf(this, prototypeWithMethods(new.target.prototype, type.kind))
  }

  // arithmetic -----------------------------------------------------------------
  plus<U extends number | null>(this: Expr<number | null>, other: Input<U>): Expr<number | Nullish<T, U>> {
    return arithmetic("+", this, other)
  }
  minus<U extends number | null>(this: Expr<number | null>, other: Input<U>): Expr<number | Nullish<T, U>> {
    return arithmetic("-", this, other)
  }
  times<U extends number | null>(this: Expr<number | null>, other: Input<U>): Expr<number | Nullish<T, U>> {
    return arithmetic("*", this, other)
  }
  /** Division; between two Int values it is integer division (truncating), as in SQL. */
  div<U extends number | null>(this: Expr<number | null>, other: Input<U>): Expr<number | Nullish<T, U>> {
    return arithmetic("/", this, other)
  }
  mod<U extends number | null>(this: Expr<number | null>, other: Input<U>): Expr<number | Nullish<T, U>> {
    return arithmetic("%", this, other)
  }
  neg(this: Expr<number | null>): Expr<T> {
    return new Expr({ _tag: "Neg", expr: this.node }, this.type)
  }

  // comparison -----------------------------------------------------------------
  eq<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare("=", this, other)
  }
  ne<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare("!=", this, other)
  }
  lt<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare("<", this, other)
  }
  le<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare("<=", this, other)
  }
  gt<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare(">", this, other)
  }
  ge<U extends T>(other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return compare(">=", this, other)
  }

  // boolean --------------------------------------------------------------------
  and<U extends boolean | null>(this: Expr<boolean | null>, other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return logical("and", this, other)
  }
  or<U extends boolean | null>(this: Expr<boolean | null>, other: Input<U>): Expr<boolean | Nullish<T, U>> {
    return logical("or", this, other)
  }
  not(this: Expr<boolean | null>): Expr<T> {
    return new Expr({ _tag: "Not", expr: this.node }, ColumnType.Bool)
  }

  // nulls and sets -------------------------------------------------------------
  isNull(): Expr<boolean> {
    return new Expr({ _tag: "IsNull", expr: this.node }, ColumnType.Bool)
  }
  isNotNull(): Expr<boolean> {
    return new Expr({ _tag: "Not", expr: { _tag: "IsNull", expr: this.node } }, ColumnType.Bool)
  }
  isIn(values: ReadonlyArray<Input<NonNull<T>>>): Expr<boolean | Nullish<T>> {
    return new Expr(
      { _tag: "IsIn", expr: this.node, values: values.map((v) => toExpr(v, this.type).node) },
      ColumnType.Bool
    )
  }

  // strings --------------------------------------------------------------------
  /** Number of characters (code points). */
  length(this: Expr<string | null>): Expr<number | Nullish<T>> {
    return stringFn("length", ColumnType.Int, [this])
  }
  lower(this: Expr<string | null>): Expr<T> {
    return stringFn("lower", ColumnType.String, [this])
  }
  upper(this: Expr<string | null>): Expr<T> {
    return stringFn("upper", ColumnType.String, [this])
  }
  /** Removes leading and trailing spaces, tabs and line breaks. */
  trim(this: Expr<string | null>): Expr<T> {
    return stringFn("trim", ColumnType.String, [this])
  }
  contains<U extends string | null>(this: Expr<string | null>, s: Input<U>): Expr<boolean | Nullish<T, U>> {
    return stringFn("contains", ColumnType.Bool, [this, toExpr(s, ColumnType.String)])
  }
  startsWith<U extends string | null>(this: Expr<string | null>, s: Input<U>): Expr<boolean | Nullish<T, U>> {
    return stringFn("startsWith", ColumnType.Bool, [this, toExpr(s, ColumnType.String)])
  }
  endsWith<U extends string | null>(this: Expr<string | null>, s: Input<U>): Expr<boolean | Nullish<T, U>> {
    return stringFn("endsWith", ColumnType.Bool, [this, toExpr(s, ColumnType.String)])
  }
  /** Replaces every occurrence of `search` with `replacement`. */
  replace(this: Expr<string | null>, search: Input<string>, replacement: Input<string>): Expr<T> {
    return stringFn("replace", ColumnType.String, [
      this,
      toExpr(search, ColumnType.String),
      toExpr(replacement, ColumnType.String)
    ])
  }
  /** Concatenation; null if any part is null. */
  concat<U extends string | null>(
    this: Expr<string | null>,
    ...parts: ReadonlyArray<Input<U>>
  ): Expr<string | Nullish<T, U>> {
    return stringFn("concat", ColumnType.String, [this, ...parts.map((p) => toExpr(p, ColumnType.String))])
  }

  // JSON -------------------------------------------------------------------------
  /** The value at `key` (object field) or index (array element) of a JSON value. */
  get(key: string | number): JsonExpr<unknown> {
    if (this.node._tag === "JsonPath") {
      return new Expr(
        { _tag: "JsonPath", expr: this.node.expr, path: [...this.node.path, key] },
        ColumnType.Json()
      ) as JsonExpr<unknown>
    }
    return new Expr({ _tag: "JsonPath", expr: this.node, path: [key] }, ColumnType.Json()) as JsonExpr<unknown>
  }

  // casts ------------------------------------------------------------------------
  cast<K extends "String" | "Int" | "Float" | "Bool" | "Json">(
    to: K
  ): Expr<
    (K extends "String" ? string : K extends "Bool" ? boolean : K extends "Json" ? unknown : number) | Nullish<T>
  > {
    return new Expr({ _tag: "Cast", expr: this.node, to: { kind: to } as ColumnType.ColumnType }, {
      kind: to
    } as ColumnType.ColumnType)
  }

  toJSON(): unknown {
    return encode(this.node)
  }
}

/** A reference to a column of a table: an expression with the column's error properties. */
export class ColumnRef<T> extends Expr<T> {
  readonly id: number
  readonly name: string
  readonly computed: boolean

  constructor(id: number, name: string, type: ColumnType.ColumnType, computed: boolean) {
    super({ _tag: "Column", id, name }, type)
    this.id = id
    this.name = name
    this.computed = computed
  }

  /** The type of the error that the cell's computation failed with (null when it did not fail). */
  get errorType(): Expr<string | null> {
    return new Expr({ _tag: "ErrorProp", id: this.id, name: this.name, prop: "errorType" }, ColumnType.String)
  }
  /**
   * Similarity to `query` (a text, an image, or a vector) under the column's
   * embedding index (`options.index` names it when there are several). Higher
   * is closer for cosine and inner product; for l2 it is the distance.
   *
   * The query is embedded once, with the index's function for its modality: a
   * string is a text when the index embeds texts, otherwise an image's path
   * or URL; `modality: "image"` makes a string an image reference.
   */
  similarity(
    query: string | Float32Array | ReadonlyArray<number> | Expr<unknown>,
    options?: {
      readonly index?: string
      readonly modality?: Modality
      /**
       * How many candidates the HNSW index search keeps (`hnsw.ef_search`, pgvector's default 40)
       * when the query is ordered by this similarity: more finds more of the true nearest rows, slower.
       */
      readonly efSearch?: number
    }
  ): Expr<number> {
    const efSearch = options?.efSearch
    if (efSearch !== undefined && !(Number.isInteger(efSearch) && efSearch >= 1 && efSearch <= 1000)) {
      throw new RangeError(`similarity: efSearch must be an integer from 1 to 1000 (got ${efSearch})`)
    }
    // A vector is copied (the caller may reuse its array); `slice` copies a Float32Array in one step.
    const q = isExpr(query)
      ? query.node
      : lit(
          query instanceof Float32Array
            ? query.slice()
            : Array.isArray(query)
              ? Float32Array.from(query as ReadonlyArray<number>)
              : query
        ).node
    return new Expr(
      {
        _tag: "Similarity",
        id: this.id,
        name: this.name,
        index: options?.index,
        ...(options?.modality === undefined ? {} : { modality: options.modality }),
        query: q,
        ...(efSearch === undefined ? {} : { efSearch })
      },
      ColumnType.Float
    )
  }

  /**
   * The vectors the column's embedding index stores (`options.index` names it
   * when there are several): null where the embedding is missing or failed.
   */
  embedding(options?: { readonly index?: string }): Expr<Float32Array | null> {
    return new Expr(
      { _tag: "Embedding", id: this.id, name: this.name, index: options?.index },
      {
        kind: "Vector",
        dim: 0
      }
    )
  }

  /**
   * Whether the text matches a full-text query (web-search syntax: words,
   * "quoted phrases", OR, -excluded), in `language` (default english). A
   * text index (`addTextIndex`) makes it fast. Evaluated by the database.
   */
  matches(query: Input<string>, options?: { readonly language?: string }): Expr<boolean> {
    return this.textSearch("match", query, options?.language)
  }

  /** The full-text rank of the text for a query (higher is better; 0 when it does not match). */
  textRank(query: Input<string>, options?: { readonly language?: string }): Expr<number> {
    return this.textSearch("rank", query, options?.language)
  }

  private textSearch(mode: "match" | "rank", query: Input<string>, language = "english"): Expr<any> {
    return new Expr(
      {
        _tag: "TextSearch",
        id: this.id,
        name: this.name,
        mode,
        language,
        query: toExpr(query, ColumnType.String).node
      },
      mode === "match" ? ColumnType.Bool : ColumnType.Float
    )
  }

  /** The message of the error that the cell's computation failed with (null when it did not fail). */
  get errorMessage(): Expr<string | null> {
    return new Expr({ _tag: "ErrorProp", id: this.id, name: this.name, prop: "errorMessage" }, ColumnType.String)
  }
}

export const isExpr = (u: unknown): u is Expr<unknown> => u instanceof Expr

/** A method of the expressions of one column type; `this` is the expression it is called on. */
export type Method = (this: Expr<any>, ...args: Array<any>) => unknown

const methodsByKind = new Map<ColumnType.Kind, Readonly<Record<string, Method>>>()
// The prototype of an Expr (or ColumnRef) of a kind with methods: the class's, extended by them.
const prototypes = new Map<object, Map<ColumnType.Kind, object>>()

const prototypeWithMethods = (base: object, kind: ColumnType.Kind): object => {
  let byKind = prototypes.get(base)
  if (byKind === undefined) prototypes.set(base, (byKind = new Map()))
  let prototype = byKind.get(kind)
  if (prototype === undefined) {
    const descriptors: PropertyDescriptorMap = {}
    for (const [name, method] of Object.entries(methodsByKind.get(kind)!)) {
      descriptors[name] = { value: method, writable: true, configurable: true, enumerable: false }
    }
    prototype = Object.create(base, descriptors) as object
    byKind.set(kind, prototype)
  }
  return prototype
}

/**
 * Gives the expressions of one column type methods, e.g. `c.img.resize(...)`:
 * a library installs them when it is imported and declares their types by
 * augmenting the matching interface (`Media.ImageMethods`). Expressions of
 * other types never have them (a JSON path may use the same names).
 */
export const installMethods = (kind: ColumnType.Kind, methods: Readonly<Record<string, Method>>): void => {
  methodsByKind.set(kind, { ...methodsByKind.get(kind), ...methods })
  prototypes.clear()
}

/** The column type of a JavaScript literal. */
export const literalType = (value: unknown, hint?: ColumnType.ColumnType): ColumnType.ColumnType => {
  if (typeof value === "number") {
    if (hint !== undefined && hint.kind === "Float") return ColumnType.Float
    return Number.isInteger(value) ? ColumnType.Int : ColumnType.Float
  }
  if (typeof value === "bigint") return ColumnType.Int
  if (typeof value === "string") {
    return hint !== undefined && (hint.kind === "UUID" || hint.kind === "Date" || ColumnType.isMedia(hint))
      ? hint
      : ColumnType.String
  }
  if (typeof value === "boolean") return ColumnType.Bool
  if (Media.isMediaRef(value)) return { kind: value.kind }
  if (value instanceof URL) return hint !== undefined && ColumnType.isMedia(hint) ? hint : ColumnType.String
  if (value instanceof Date) return ColumnType.Timestamp
  if (value instanceof Float32Array) return ColumnType.Vector(value.length)
  if (value instanceof Uint8Array) return ColumnType.Binary
  if (value === null && hint !== undefined) return hint
  return ColumnType.Json()
}

/** A literal expression. */
export const lit = <A>(value: A, type?: ColumnType.ColumnType): Expr<A> => {
  const t = type ?? literalType(value)
  // A handle or URL stands for its reference (a string, what functions receive).
  const v =
    typeof value === "bigint"
      ? Number(value)
      : Media.isMediaRef(value)
        ? value.uri
        : value instanceof URL
          ? value.href
          : value
  return new Expr({ _tag: "Literal", value: v, type: t }, t)
}

/** An expression from an Expr or a plain value (typed after `hint` when it is a literal). */
export const toExpr = <A>(value: Input<A>, hint?: ColumnType.ColumnType): Expr<A> =>
  isExpr(value) ? (value as Expr<A>) : lit(value as A, literalType(value, hint))

const arithmeticType = (a: ColumnType.ColumnType, b: ColumnType.ColumnType): ColumnType.ColumnType =>
  a.kind === "Int" && b.kind === "Int" ? ColumnType.Int : ColumnType.Float

const arithmetic = (op: ArithmeticOp, left: Expr<unknown>, right: Input<unknown>): Expr<any> => {
  const r = toExpr(right, left.type)
  return new Expr({ _tag: "Binary", op, left: left.node, right: r.node }, arithmeticType(left.type, r.type))
}

const compare = (op: ComparisonOp, left: Expr<unknown>, right: Input<unknown>): Expr<any> => {
  const r = toExpr(right, left.type)
  return new Expr({ _tag: "Binary", op, left: left.node, right: r.node }, ColumnType.Bool)
}

const logical = (op: "and" | "or", left: Expr<unknown>, right: Input<unknown>): Expr<any> =>
  new Expr({ _tag: "Binary", op, left: left.node, right: toExpr(right, ColumnType.Bool).node }, ColumnType.Bool)

const stringFn = (fn: StringFn, type: ColumnType.ColumnType, args: ReadonlyArray<Expr<unknown>>): Expr<any> =>
  new Expr({ _tag: "String", fn, args: args.map((a) => a.node) }, type)

/** `and` of several conditions (true when there are none). */
export const and = (...conditions: ReadonlyArray<Expr<boolean | null>>): Expr<boolean | null> =>
  conditions.length === 0 ? lit(true) : conditions.reduce((acc, c) => acc.and(c))

/** `or` of several conditions (false when there are none). */
export const or = (...conditions: ReadonlyArray<Expr<boolean | null>>): Expr<boolean | null> =>
  conditions.length === 0 ? lit(false) : conditions.reduce((acc, c) => acc.or(c))

export const not = (condition: Expr<boolean | null>): Expr<boolean | null> => condition.not()

// ---------------------------------------------------------------------------
// Analysis
// ---------------------------------------------------------------------------

/** The static type of a node, given the types of the columns it refers to. */
export const typeOf = (node: Node, columns: ColumnTypes): ColumnType.ColumnType => {
  switch (node._tag) {
    case "Column":
      return columns(node.id) ?? ColumnType.Json()
    case "Literal":
      return node.type
    case "Binary":
      if (node.op === "+" || node.op === "-" || node.op === "*" || node.op === "/" || node.op === "%") {
        return arithmeticType(typeOf(node.left, columns), typeOf(node.right, columns))
      }
      return ColumnType.Bool
    case "Neg":
      return typeOf(node.expr, columns)
    case "Not":
    case "IsNull":
    case "IsIn":
      return ColumnType.Bool
    case "String":
      return node.fn === "length"
        ? ColumnType.Int
        : node.fn === "contains" || node.fn === "startsWith" || node.fn === "endsWith"
          ? ColumnType.Bool
          : ColumnType.String
    case "JsonPath":
      return ColumnType.Json()
    case "Cast":
      return node.to
    case "Call":
      return node.type
    case "ErrorProp":
      return ColumnType.String
    case "Similarity":
    case "VectorScore":
      return ColumnType.Float
    case "Embedding":
      return { kind: "Vector", dim: 0 }
    case "TextSearch":
      return node.mode === "match" ? ColumnType.Bool : ColumnType.Float
  }
}

/** Rebuilds a typed expression from a node (e.g. one read from the catalog). */
export const fromNode = (node: Node, columns: ColumnTypes): Expr<unknown> => new Expr(node, typeOf(node, columns))

/** Every direct child of a node. */
export const children = (node: Node): ReadonlyArray<Node> => {
  switch (node._tag) {
    case "Column":
    case "Literal":
    case "ErrorProp":
    case "VectorScore":
    case "Embedding":
      return []
    case "Similarity":
    case "TextSearch":
      return [node.query]
    case "Binary":
      return [node.left, node.right]
    case "Not":
    case "Neg":
    case "IsNull":
    case "JsonPath":
    case "Cast":
      return [node.expr]
    case "IsIn":
      return [node.expr, ...node.values]
    case "String":
    case "Call":
      return node.args
  }
}

/** Visits every node of a tree, parents before children. */
export const walk = (node: Node, visit: (node: Node) => void): void => {
  visit(node)
  for (const child of children(node)) walk(child, visit)
}

/** The ids of the columns a tree reads (including through error properties). */
export const columnIds = (node: Node): ReadonlySet<number> => {
  const ids = new Set<number>()
  walk(node, (n) => {
    if (
      n._tag === "Column" ||
      n._tag === "ErrorProp" ||
      n._tag === "Similarity" ||
      n._tag === "VectorScore" ||
      n._tag === "Embedding" ||
      n._tag === "TextSearch"
    ) {
      ids.add(n.id)
    }
  })
  return ids
}

/** Whether the tree calls a user function (and so cannot be evaluated by SQL alone). */
export const hasCall = (node: Node): boolean => {
  let found = false
  walk(node, (n) => {
    if (n._tag === "Call") found = true
  })
  return found
}

/** The names of the functions a tree calls. */
export const calls = (node: Node): ReadonlyArray<Extract<Node, { _tag: "Call" }>> => {
  const out: Array<Extract<Node, { _tag: "Call" }>> = []
  walk(node, (n) => {
    if (n._tag === "Call") out.push(n)
  })
  return out
}

/**
 * Whether evaluating the tree can fail on some row: division or modulo by
 * zero, a cast of bad input, multiplication or Float overflow, a JSON value
 * used as a number or boolean, a user function. A tree that cannot fail may
 * be computed in bulk by SQL without losing per-cell error semantics.
 */
export const canFail = (node: Node, columns: ColumnTypes): boolean => {
  let found = false
  walk(node, (n) => {
    if (found) return
    switch (n._tag) {
      case "Call":
      case "Cast":
        found = true
        return
      case "Binary": {
        const left = typeOf(n.left, columns).kind
        const right = typeOf(n.right, columns).kind
        if (left === "Json" || right === "Json") found = true
        else if (n.op === "/" || n.op === "%" || n.op === "*") found = true
        else if ((n.op === "+" || n.op === "-") && (left === "Float" || right === "Float")) found = true
        return
      }
      case "Neg":
      case "Not":
        if (typeOf(n.expr, columns).kind === "Json") found = true
        return
      default:
        return
    }
  })
  return found
}

/** Whether the tree reads error properties. */
export const readsErrors = (node: Node): boolean => {
  let found = false
  walk(node, (n) => {
    if (n._tag === "ErrorProp") found = true
  })
  return found
}

/** A readable rendering of a tree, for messages and `describe`. */
export const show = (node: Node): string => {
  switch (node._tag) {
    case "Column":
      return node.name
    case "Literal":
      return node.value instanceof Date
        ? node.value.toISOString()
        : node.value instanceof Float32Array
          ? `[${Array.from(node.value).join(", ")}]`
          : JSON.stringify(node.value)
    case "Binary":
      return `(${show(node.left)} ${node.op} ${show(node.right)})`
    case "Not":
      return `not ${show(node.expr)}`
    case "Neg":
      return `-${show(node.expr)}`
    case "IsNull":
      return `${show(node.expr)} is null`
    case "IsIn":
      return `${show(node.expr)} in (${node.values.map(show).join(", ")})`
    case "String":
      return `${show(node.args[0]!)}.${node.fn}(${node.args.slice(1).map(show).join(", ")})`
    case "JsonPath":
      return `${show(node.expr)}${node.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("")}`
    case "Cast":
      return `${show(node.expr)}::${ColumnType.show(node.to)}`
    case "Call":
      return `${node.fn}(${node.args.map(show).join(", ")})`
    case "ErrorProp":
      return `${node.name}.${node.prop}`
    case "Similarity":
      return `${node.name}.similarity(${show(node.query)}${node.index === undefined ? "" : `, ${node.index}`})`
    case "VectorScore":
      return `${node.name}.similarity(<vector>)`
    case "Embedding":
      return `${node.name}.embedding(${node.index ?? ""})`
    case "TextSearch":
      return `${node.name}.${node.mode === "match" ? "matches" : "textRank"}(${show(node.query)})`
  }
}

// ---------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------

type Encoded = { readonly $date: string } | { readonly $f32: ReadonlyArray<number> } | { readonly $bytes: string }

const encodeValue = (value: unknown): unknown => {
  if (value instanceof Date) return { $date: value.toISOString() } satisfies Encoded
  if (value instanceof Float32Array) return { $f32: Array.from(value) } satisfies Encoded
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") } satisfies Encoded
  return value
}

const decodeValue = (value: unknown, type: ColumnType.ColumnType): unknown => {
  if (value !== null && typeof value === "object") {
    if (type.kind === "Timestamp" && "$date" in value) return new Date((value as { $date: string }).$date)
    if (type.kind === "Vector" && "$f32" in value) return Float32Array.from((value as { $f32: Array<number> }).$f32)
    if (type.kind === "Binary" && "$bytes" in value) {
      return new Uint8Array(Buffer.from((value as { $bytes: string }).$bytes, "base64"))
    }
  }
  return value
}

const mapNode = (node: Node, f: (literal: Extract<Node, { _tag: "Literal" }>) => Node): Node => {
  switch (node._tag) {
    case "Literal":
      return f(node)
    case "Column":
    case "ErrorProp":
    case "VectorScore":
    case "Embedding":
      return node
    case "Similarity":
    case "TextSearch":
      return { ...node, query: mapNode(node.query, f) }
    case "Binary":
      return { ...node, left: mapNode(node.left, f), right: mapNode(node.right, f) }
    case "Not":
    case "Neg":
    case "IsNull":
    case "JsonPath":
    case "Cast":
      return { ...node, expr: mapNode(node.expr, f) }
    case "IsIn":
      return { ...node, expr: mapNode(node.expr, f), values: node.values.map((v) => mapNode(v, f)) }
    case "String":
    case "Call":
      return { ...node, args: node.args.map((a) => mapNode(a, f)) }
  }
}

/** A JSON-safe form of a tree, for the catalog. */
export const encode = (node: Node): unknown => mapNode(node, (l) => ({ ...l, value: encodeValue(l.value) }))

/** The inverse of `encode`. */
export const decode = (json: unknown): Node =>
  mapNode(json as Node, (l) => ({ ...l, value: decodeValue(l.value, l.type) }))
