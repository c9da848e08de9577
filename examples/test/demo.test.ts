import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as NodeChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

const demo = NodePath.join(import.meta.dirname, "..", "src", "demo.ts")

describe("examples", () => {
  it.live(
    "the demo runs on a fresh embedded home and prints its search results",
    () =>
      Effect.acquireUseRelease(
        Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "tessera-demo-"))),
        (home) =>
          Effect.sync(() => {
            const env: NodeJS.ProcessEnv = { ...process.env, TESSERA_HOME: home }
            delete env.TESSERA_DATABASE_URL
            const out = NodeChildProcess.execFileSync(process.execPath, [demo], { encoding: "utf8", env })
            assert.include(out, `Tessera demo on the embedded database at ${home}`)
            assert.include(out, "Inserted 2 films into demo/films")
            assert.match(out, /Alien {4}age=\d+ words=8/)
            assert.include(out, "Heat     age=")
            assert.include(out, "words=null (no tagline)")
            assert.include(out, "Inserted 2 films without waiting: 2 cells pending")
            assert.include(out, "demo/films.taglineWords idle 0/6/0")
            assert.include(out, "View demo/classics (films before 1980): Alien, Solaris")
            assert.include(out, "v6 data inserted=0 updated=1 deleted=0")
            assert.include(out, "Time travel: at v5, Stalker's year was 1979")
            assert.include(out, `Thumbnails (3), stored content-addressed under ${home}/media`)
            assert.match(out, /red {4}64x48 [0-9a-f]{64}\.jpg/)
            assert.include(out, "Frames view over pattern.mp4 at 1 fps: 3 frames at 0s, 1s, 2s")
            assert.include(out, "Indexed 4 photos: captions and images, embedded by local models")
            // The paraphrase finds its caption; a smaller copy of the stripes finds the stripes.
            const captions = [...out.matchAll(/^ {2}(\w+)\s+(\d\.\d{3}) {2}.+$/gm)]
            assert.deepStrictEqual(
              captions.map((m) => m[1]),
              ["checkers", "circle"]
            )
            assert.isAbove(Number(captions[0]![2]), Number(captions[1]![2]))
            assert.match(out, /Images closest to stripes-small\.png: stripes \d\.\d{3}, \w+ \d\.\d{3}/)
            // Filtered, the limit is still filled, and the next closest comes first.
            const others = out.match(/^Without the checkers, the closest are: (\w+) \d\.\d{3}, (\w+) \d\.\d{3}$/m)
            assert.isNotNull(others)
            assert.strictEqual(others![1], "circle")
            assert.notInclude([others![1], others![2]], "checkers")
            assert.include(out, 'Hybrid search (keyword "sea" + meaning "a toy to play with"): ')
            const hybrid = out.match(/Hybrid search .*: (.*)$/m)![1]!.split(", ")
            assert.sameMembers(hybrid, ["sunset", "circle"])
            assert.isTrue(NodeFs.existsSync(NodePath.join(home, "pgdata")))
          }),
        (home) => Effect.sync(() => NodeFs.rmSync(home, { recursive: true, force: true }))
      ),
    120_000
  )
})
