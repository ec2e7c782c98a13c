/**
 * Builds the migration console (web/) into static files in dist/web/, served
 * by the admin app at /ui/. One bundle of scripts and one of styles, no CDN:
 * the gateway may run without internet. Run by `npm run build` and before the tests.
 */
const { buildSync } = require('esbuild');
const { copyFileSync, mkdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const out = join(root, 'dist', 'web');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
buildSync({
  entryPoints: { app: join(root, 'web', 'src', 'main.tsx'), style: join(root, 'web', 'src', 'style.css') },
  outdir: join(out, 'assets'),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(root, 'web', 'index.html'), join(out, 'index.html'));
