/** Test helpers over the files a media store holds. */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

/** Every file under a directory (none when it does not exist), unfinished writes (`.tmp`) aside. */
export const filesIn = (root: string): ReadonlySet<string> => {
  if (!NodeFs.existsSync(root)) return new Set()
  return new Set(
    (NodeFs.readdirSync(root, { recursive: true, withFileTypes: true }) as Array<NodeFs.Dirent>)
      .filter((d) => d.isFile() && !d.name.endsWith(".tmp"))
      .map((d) => NodePath.join(d.parentPath, d.name))
  )
}

/** The files in `after` that were not in `before`. */
export const added = (before: ReadonlySet<string>, after: ReadonlySet<string>) =>
  [...after].filter((f) => !before.has(f))
