/**
 * Properties of path normalisation and matching, over generated paths built
 * from the pieces attackers use (dot segments, their encodings, encoded
 * slashes and backslashes, `;parameters`, malformed escapes).
 */
import fc from 'fast-check';
import { normalizePath, pathForMatching } from '../core/path';
import { RouteTableSchema } from '../config/schema';
import { forwardedPath, RouteMatcher, upstreamPathFor } from './compile';

// A fixed seed in CI (reproducible); FC_SEED=<n> explores others.
fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261201) });

const PIECES = ['/', '/', '/', 'a', 'b', 'api', 'users', '.', '..', '%2e', '%2E', '%2e%2e', '.%2e', '%2f', '%2F', '%5c', '\\', ';', ';x=1', '%3B', '%41', '%', '%zz', '%00', '~', '-', '7'];
const rawPath = fc.array(fc.constantFrom(...PIECES), { minLength: 0, maxLength: 14 }).map((parts) => '/' + parts.join(''));

/** Percent-decodes unreserved characters only, as the normaliser does (the form an upstream could read a dot in). */
const decodeDots = (segment: string) => segment.replace(/%2e/gi, '.');

describe('normalizePath', () => {
  test('is idempotent: a normalised path normalises to itself', () => {
    fc.assert(
      fc.property(rawPath, fc.boolean(), (p, decodeSlashes) => {
        const n = normalizePath(p, decodeSlashes);
        if (n !== null) expect(normalizePath(n, decodeSlashes)).toBe(n);
      }),
      { numRuns: 3000 },
    );
  });

  test('its result has no empty, dot or dot-dot segment in any encoding, no backslash and (by default) no encoded slash', () => {
    fc.assert(
      fc.property(rawPath, (p) => {
        const n = normalizePath(p);
        if (n === null) return;
        expect(n.startsWith('/')).toBe(true);
        expect(n).not.toMatch(/\\|%5c|%2f|%00/i);
        const segments = n.split('/').slice(1, -1);
        for (const s of segments) expect(s).not.toBe('');
        for (const s of n.split('/').slice(1)) expect(['.', '..']).not.toContain(decodeDots(s.split(';')[0]!));
      }),
      { numRuns: 3000 },
    );
  });
});

/** Route prefixes made of plain segments, some of them nested in others. */
const routePaths = fc.uniqueArray(fc.array(fc.constantFrom('a', 'b', 'api', 'users', '7'), { minLength: 0, maxLength: 3 }).map((s) => '/' + s.join('/')), { minLength: 1, maxLength: 8 });

function isSegmentPrefix(prefix: string, path: string): boolean {
  return prefix === '/' || path === prefix || path.startsWith(prefix + '/');
}

describe('matching a normalised path', () => {
  test('picks the route with the longest segment-prefix, which the forwarded path stays under', () => {
    fc.assert(
      fc.property(routePaths, rawPath, fc.boolean(), (paths, p, strip) => {
        const table = RouteTableSchema.parse({
          upstreams: { app: { url: 'http://127.0.0.1:1' } },
          routes: paths.map((path, i) => ({ name: `r${i}`, path, upstream: 'app', ...(strip && path !== '/' ? { stripPrefix: path } : {}) })),
        });
        const matcher = new RouteMatcher(table);
        const n = normalizePath(p);
        if (n === null) return;
        const matchPath = pathForMatching(n);
        const route = matcher.match('GET', '', matchPath);
        const candidates = paths.filter((rp) => isSegmentPrefix(rp, matchPath));
        if (candidates.length === 0) return void expect(route).toBeUndefined();
        const longest = candidates.reduce((a, b) => (b.length > a.length ? b : a));
        expect(route?.path).toBe(longest);
        // What is forwarded is the matched path's rest under the route: never a path the route does not cover.
        const sent = forwardedPath(route!, n, matchPath);
        const upstreamPath = upstreamPathFor(route!, sent, '');
        expect(upstreamPath.startsWith('/')).toBe(true);
        if (route!.stripLength === 0) expect(isSegmentPrefix(longest, pathForMatching(upstreamPath))).toBe(true);
        else expect(longest + (upstreamPath === '/' && sent === longest ? '' : upstreamPath)).toBe(sent);
      }),
      { numRuns: 1500 },
    );
  });
});
