// Build step after tsc: the CLI and daemon as one ES module, dist/countd.mjs,
// which bin/countd loads. Resolving and reading the ~870 files of the
// libp2p module graph took 0.9-1.3 s of every start (a restart with 1M names
// was ready in 2.3-2.4 s; 1.7 s from the bundle, same data dir, same sitting).
//
// Left outside the bundle, loaded from node_modules as before: packages that
// find files of their own at run time (classic-level's native binding, pino's
// and pino-pretty's worker threads, grpc-js and proto-loader).
import { build } from 'esbuild'
import { join } from 'node:path'
import { packageRoot } from '../src/paths.js'

const EXTERNAL = ['classic-level', 'pino', 'pino-pretty', '@grpc/grpc-js', '@grpc/proto-loader']

await build({
  entryPoints: [join(packageRoot, 'dist', 'src', 'cli', 'main.js')],
  outfile: join(packageRoot, 'dist', 'countd.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: EXTERNAL,
  // CommonJS dependencies inside an ES module bundle still call require().
  banner: { js: "import { createRequire as __countdRequire } from 'node:module'; const require = __countdRequire(import.meta.url);" },
  logLevel: 'warning'
})
