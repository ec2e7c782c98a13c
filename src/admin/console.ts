import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import type Router from 'koa-router';

/**
 * The migration console: static files built from `web/` into `dist/web/`
 * (see `npm run build`), served at /ui/ by the admin app. They hold no data
 * and need no token; the page asks the admin API with the token the user
 * typed. Every answer carries a strict Content-Security-Policy: scripts and
 * styles only from this origin (styles the editor injects carry a nonce made
 * per page load), no framing, no inline script.
 */

function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const WEB_DIR = join(packageRoot(), 'dist', 'web');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

function securityHeaders(set: (name: string, value: string) => void, nonce?: string): void {
  const style = nonce === undefined ? "'self'" : `'self' 'nonce-${nonce}'`;
  set('Content-Security-Policy', `default-src 'none'; script-src 'self'; style-src ${style}; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`);
  set('X-Frame-Options', 'DENY');
  set('X-Content-Type-Options', 'nosniff');
  set('Referrer-Policy', 'no-referrer');
  set('Cross-Origin-Opener-Policy', 'same-origin');
}

export function serveConsole(router: Router): void {
  /** Read once: the files change only with a new build (and a restart). */
  const cache = new Map<string, Buffer | null>();
  const read = (file: string): Buffer | null => {
    if (!cache.has(file)) cache.set(file, existsSync(file) ? readFileSync(file) : null);
    return cache.get(file)!;
  };

  // koa-router matches /ui and /ui/ alike; the page's relative asset links need the slash.
  router.get('/ui/', (ctx) => {
    if (!ctx.path.endsWith('/')) return ctx.redirect('/ui/');
    const page = read(join(WEB_DIR, 'index.html'));
    if (page === null) {
      ctx.status = 503;
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = 'The console is not built: run `npm run build`.';
      return;
    }
    const nonce = randomBytes(16).toString('base64');
    securityHeaders((n, v) => ctx.set(n, v), nonce);
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = page.toString('utf8').replace(/__CSP_NONCE__/g, nonce);
  });

  router.get('/ui/assets/:file', (ctx) => {
    const name = String(ctx.params.file);
    const file = normalize(join(WEB_DIR, 'assets', name));
    const type = TYPES[name.slice(name.lastIndexOf('.'))];
    // One flat folder of built files: nothing outside it, nothing without a known type.
    if (!file.startsWith(join(WEB_DIR, 'assets') + sep) || type === undefined) return;
    const body = read(file);
    if (body === null) return;
    securityHeaders((n, v) => ctx.set(n, v));
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = type;
    ctx.body = body;
  });
}
