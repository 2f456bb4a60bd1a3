#!/usr/bin/env node
// Builds the web page (server/web) into static files with esbuild: one JS bundle (uPlot included)
// and one CSS file, names carrying a content hash so the collector can let browsers cache them,
// and index.html from server/web/page.html naming them. Nothing is fetched at run time.
// Usage: node scripts/build-web.mjs [--out dir]   (default dist/server/web)
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function buildWeb(outDir = join(repo, 'dist', 'server', 'web')) {
  const assets = join(outDir, 'assets');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(assets, { recursive: true });
  const result = await build({
    entryPoints: [join(repo, 'server', 'web', 'src', 'main.ts')],
    bundle: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    outdir: assets,
    entryNames: '[name]-[hash]',
    metafile: true,
    logLevel: 'warning',
    legalComments: 'linked',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const js = outputs.find((n) => /^main-[A-Z0-9]+\.js$/i.test(n));
  const css = outputs.find((n) => /^main-[A-Z0-9]+\.css$/i.test(n));
  if (!js || !css) throw new Error(`esbuild did not produce main.js and main.css: ${outputs.join(', ')}`);
  const page = readFileSync(join(repo, 'server', 'web', 'page.html'), 'utf8').replace('{{JS}}', js).replace('{{CSS}}', css);
  writeFileSync(join(outDir, 'index.html'), page);
  return { outDir, js, css };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? resolve(process.argv[i + 1] ?? '') : undefined;
  buildWeb(out).then(
    (r) => console.log(`web page built in ${r.outDir} (${r.js}, ${r.css})`),
    (err) => {
      console.error(`web build failed: ${err.message}`);
      process.exit(1);
    },
  );
}
