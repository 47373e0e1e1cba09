// Builds the web pages into dist/web: type-checks web/*.ts (DOM types), bundles each page's script with
// esbuild (uPlot inside, nothing fetched at run time), and copies the HTML, the stylesheet and uPlot's CSS.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'web');
const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'web')], {
  stdio: 'inherit',
});
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['playground', 'dashboard'].map((p) => path.join(root, 'web', `${p}.ts`)),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outdir: out,
  logLevel: 'warning',
});
for (const f of ['playground.html', 'dashboard.html', 'style.css'])
  copyFileSync(path.join(root, 'web', f), path.join(out, f));
copyFileSync(path.join(path.dirname(require.resolve('uplot')), 'uPlot.min.css'), path.join(out, 'uplot.css'));
