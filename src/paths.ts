// Where the package's own files are (package.json, proto/, bin/), from
// wherever this code runs: compiled into dist/src/..., or inside the one-file
// bundle bin/countd loads (dist/countd.mjs, see scripts/bundle.ts). Found by
// walking up to package.json, so moving code between the two needs no
// relative path fixed by hand.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findPackageRoot (from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

export const packageRoot = findPackageRoot(dirname(fileURLToPath(import.meta.url)))
