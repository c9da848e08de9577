/**
 * @tessera/media: media as first-class columns. Images (sharp), video and
 * audio (ffmpeg/ffprobe), documents (PDF, HTML, Markdown, text) and their
 * splitters, image tiles, a content-addressed media store and a download cache.
 */
export * as Audio from "./Audio.ts"
export * as Document from "./Document.ts"
export * as Ffmpeg from "./Ffmpeg.ts"
export * as Image from "./Image.ts"
export * as Ingest from "./Ingest.ts"
export * as MediaStore from "./MediaStore.ts"
export * as Splitter from "./Splitter.ts"
export * as Tiles from "./Tiles.ts"
export * as Video from "./Video.ts"
