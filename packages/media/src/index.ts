/**
 * @tessera/media: media as first-class columns: documents (PDF, HTML,
 * Markdown, text) and their splitters; images, video and audio follow.
 */
export * as Document from "./Document.ts"
export * as Splitter from "./Splitter.ts"
