import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');

/** Runs a script in a fresh Node process against the built gateway (dist/, built by the test setup). */
function run(script: string): void {
  const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' });
  expect(r.stderr).toBe('');
}

describe('batched log lines', () => {
  test.each([
    ['process.exit() right after logging', 'process.exit(3);', false],
    ['the event loop running out', '', true],
  ])('nothing is lost on %s', (_how, ending, inOrder) => {
    const file = join(mkdtempSync(join(tmpdir(), 'strangler-log-')), 'access.log');
    run(`
      const { createLoggers } = require('./dist/src/observability/logger');
      const { RequestState } = require('./dist/src/core/state');
      const { LogSchema } = require('./dist/src/config/schema');
      const loggers = createLoggers(LogSchema.parse({ format: 'json', access: ${JSON.stringify(file)} }));
      for (let i = 0; i < 500; i++) loggers.access.request(new RequestState('id-' + i, 0, 'GET', '/p', undefined, 0), { status: 200, durationMs: 1, bytes: 10, aborted: false, client: '127.0.0.1' });
      ${ending}
    `);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(500);
    const ids = lines.map((l) => (JSON.parse(l) as { reqId: string }).reqId);
    expect(new Set(ids).size).toBe(500);
    expect([...ids].sort()).toEqual(Array.from({ length: 500 }, (_, i) => `id-${i}`).sort());
    // An abrupt exit cannot wait for a batch already being written asynchronously: the last
    // batch may land before it. Every line is there either way.
    if (inOrder) expect(ids).toEqual(Array.from({ length: 500 }, (_, i) => `id-${i}`));
  });
});

describe('the access log file', () => {
  test('a path that cannot be written is a clear error at startup', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { createLoggers } = require('./logger') as typeof import('./logger');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { LogSchema } = require('../config/schema') as typeof import('../config/schema');
    // A directory that would have to be made inside a regular file.
    const file = join(mkdtempSync(join(tmpdir(), 'strangler-log-')), 'plain-file');
    writeFileSync(file, '');
    expect(() => createLoggers(LogSchema.parse({ format: 'json', access: `${file}/logs/access.log` }))).toThrow(/cannot open the access log .*plain-file\/logs\/access\.log: E[A-Z]+/);
  });
});
