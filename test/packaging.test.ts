import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const ROOT = join(__dirname, '..');

/** The Node flags between `node` and the CLI in `npm start`. */
function startFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = /^node((?: --\S+)*) dist\/src\/cli\/index\.js start$/.exec(pkg.scripts.start!);
  expect(m).not.toBeNull();
  return m![1]!.trim().split(' ').filter(Boolean);
}

describe('how the gateway is started', () => {
  test('the Dockerfile runs the CLI with the same Node flags as npm start (and the benchmark)', () => {
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    expect(entry).not.toBeNull();
    const argv = JSON.parse(entry![1]!) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.slice(1, -1)).toEqual(startFlags());
    expect(argv.at(-1)).toBe('dist/src/cli/index.js');
  });

  test('every flag of npm start is one this Node accepts', () => {
    const flags = startFlags();
    expect(flags.length).toBeGreaterThan(0);
    const r = spawnSync(process.execPath, [...flags, '-e', 'process.stdout.write(String(require("v8").getHeapStatistics().total_available_size > 0))']);
    expect(r.stderr.toString()).toBe('');
    expect(r.stdout.toString()).toBe('true');
  });
});
