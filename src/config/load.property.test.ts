/**
 * The loader over generated input: random text and random edits of a valid
 * table never make it throw, and every rejection points at a line and column.
 */
import fc from 'fast-check';
import { loadTableText } from './load';

// A fixed seed in CI (reproducible); FC_SEED=<n> explores others.
fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261201) });

const VALID = `server:
  port: 8080
upstreams:
  monolith:
    url: http://127.0.0.1:3000
  users:
    urls: [http://127.0.0.1:4001, http://127.0.0.1:4002]
    breaker: { errorPercent: 50, minRequests: 10 }
routes:
  - name: users
    path: /api/users
    methods: [GET, POST]
    upstream: users
    stripPrefix: /api
    fallback: monolith
    canary: { upstream: monolith, percent: 5, rollback: { maxErrorPercent: 5 } }
  - { name: legacy, path: /, upstream: monolith, auth: none }
`;

const lines = VALID.split('\n');

function expectWellFormed(text: string): void {
  let result: ReturnType<typeof loadTableText>;
  expect(() => (result = loadTableText(text, 'routes.yaml', { PORT: '8080' }))).not.toThrow();
  if (result!.ok) return;
  expect(result!.problems.length).toBeGreaterThan(0);
  for (const p of result!.problems) {
    expect(Number.isInteger(p.line) && p.line >= 1).toBe(true);
    expect(Number.isInteger(p.col) && p.col >= 1).toBe(true);
    expect(p.message.length).toBeGreaterThan(0);
  }
}

describe('loadTableText', () => {
  test('the table the edits start from is valid', () => {
    expect(loadTableText(VALID, 'routes.yaml', {}).ok).toBe(true);
  });

  // Found by the properties below: each threw (an alias without its anchor; an upstream with no
  // settings; a URL broken by an edit) instead of being reported.
  test.each([
    ['*a', 1, 1],
    ['upstreams:\n  a: { url: http://h }\nroutes:\n  - { name: r, path: /, upstream: a }\nx: *missing\n', 5, 4],
    [VALID.replace('    url: http://127.0.0.1:3000\n', ''), 4, 12],
    [VALID.replace('urls: [http://127.0.0.1:4001', 'urls: [http://127.0.0.1 :4001'), 7, 12],
  ])('%j is reported at %i:%i, not thrown', (text, line, col) => {
    const result = loadTableText(text, 'routes.yaml', {});
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]).toMatchObject({ line, col });
  });

  test('random text never throws; rejections have a line and a column', () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (text) => expectWellFormed(text)), { numRuns: 500 });
  });

  test('random YAML-ish text never throws', () => {
    const token = fc.constantFrom('routes:', 'upstreams:', '  - ', 'name: x', 'path: /', '{', '}', '[', ']', ': ', '\n', '  ', '${X}', '${', '&a', '*a', '!!str', '"', "'", '#', 'url: http://h', '- ', '? ', '|', '>');
    fc.assert(fc.property(fc.array(token, { maxLength: 40 }), (tokens) => expectWellFormed(tokens.join(''))), { numRuns: 500 });
  });

  test('random edits of a valid table (lines deleted, duplicated, characters inserted) never throw', () => {
    const edit = fc.record({ at: fc.nat({ max: lines.length - 1 }), kind: fc.constantFrom('delete', 'duplicate', 'insert'), text: fc.string({ maxLength: 6 }), col: fc.nat({ max: 40 }) });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const out = [...lines];
        for (const e of edits) {
          const i = Math.min(e.at, out.length - 1);
          if (i < 0) break;
          if (e.kind === 'delete') out.splice(i, 1);
          else if (e.kind === 'duplicate') out.splice(i, 0, out[i]!);
          else out[i] = out[i]!.slice(0, e.col) + e.text + out[i]!.slice(e.col);
        }
        expectWellFormed(out.join('\n'));
      }),
      { numRuns: 800 },
    );
  });
});
