// Rebuilds dist/ (the demo page that `sealkit backend` embeds and serves) from src/:
//   npm ci --prefix web && npm run build --prefix web
// The output is deterministic (no timestamps, no absolute paths, sorted inputs), so CI checks
// that the committed dist/ is current with `git diff --exit-code web/dist` after a rebuild.
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/app.js'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  legalComments: 'eof',
  charset: 'utf8',
  sourcemap: false,
  define: { global: 'globalThis' },
  // e3kit-browser imports its .wasm files for their URLs: emit them beside app.js, unhashed.
  loader: { '.wasm': 'file' },
  assetNames: '[name]',
  outfile: 'dist/app.js',
  logLevel: 'warning',
});

for (const file of ['index.html', 'style.css']) {
  writeFileSync(join(dist, file), readFileSync(join(here, 'src', file)));
}
console.log('web/dist rebuilt');
