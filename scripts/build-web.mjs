// Builds the web pages into dist/web: type-checks web/*.ts (DOM types), bundles each page's script with
// esbuild (uPlot inside, nothing fetched at run time), writes the two pages with their shared header, and
// copies the stylesheet, uPlot's CSS and uPlot's licence (MIT: its notice goes wherever its code does).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'web');
const out = path.join(root, 'dist', 'web');
const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', web], { stdio: 'inherit' });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ['playground', 'dashboard'].map((p) => path.join(web, `${p}.ts`)),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outdir: out,
  logLevel: 'warning',
});
// one header for both pages, each marking its own link as the current page
const header = readFileSync(path.join(web, 'header.html'), 'utf8')
  .replace(/^<!--.*-->\n/, '')
  .trim();
for (const [page, href] of [
  ['playground.html', './'],
  ['dashboard.html', 'runs'],
]) {
  const own = header.replace(`<a href="${href}">`, `<a href="${href}" aria-current="page">`);
  writeFileSync(path.join(out, page), readFileSync(path.join(web, page), 'utf8').replace('<!-- header -->', own));
}
copyFileSync(path.join(web, 'style.css'), path.join(out, 'style.css'));
const uplotDir = path.join(path.dirname(require.resolve('uplot')), '..');
copyFileSync(path.join(uplotDir, 'dist', 'uPlot.min.css'), path.join(out, 'uplot.css'));
copyFileSync(path.join(uplotDir, 'LICENSE'), path.join(out, 'uplot.LICENSE.txt'));
