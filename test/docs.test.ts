/**
 * The docs are tested like code: the route tables they show validate, their
 * links and anchors resolve, and the references list exactly what the code
 * has (route-table keys from the schema, metrics from the registry, admin
 * endpoints from the router, error codes from the catalogue, CLI commands
 * from its usage). A docs page that drifts from the code fails here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { formatProblem, loadTableText } from '../src/config/load';
import { ErrorCatalogue } from '../src/core/errors';
import { GatewayMetrics } from '../src/observability/metrics';
import { createAdminApp, type AdminControl } from '../src/admin/app';
import { readDocs, type MarkdownPage, type Table } from './helpers/markdown';
import { ancestors, routeTableKeys } from './helpers/schemaKeys';

const ROOT = resolve(__dirname, '..');
const pages = readDocs(ROOT);
const page = (name: string): MarkdownPage => {
  const found = pages.find((p) => p.name === name);
  if (!found) throw new Error(`${name} is missing`);
  return found;
};

/** Values for the `${VAR}`s the examples use; a new variable in the docs must be added here. */
const DOC_ENV: Record<string, string> = {
  JWT_SECRET: 'documentation-secret-0123456789',
  ADMIN_TOKEN: 'documentation-admin-token',
  PORT: '8080',
  MONOLITH_URL: 'http://10.0.0.10:8080',
};

/** A block whose first line starts with `# fragment` is part of a table, shown alone. */
const isFragment = (text: string): boolean => /^#\s*fragment\b/.test(text);
const isRouteTable = (text: string): boolean => /^(routes|upstreams):/m.test(text);

const yamlBlocks = pages.flatMap((p) =>
  p.fences.filter((f) => f.lang === 'yaml' || f.lang === 'yml').map((f) => ({ file: p.name, line: f.line, where: `${p.name}:${f.line}`, text: f.text })),
);
const tables = yamlBlocks.filter((b) => !isFragment(b.text) && isRouteTable(b.text));

describe('YAML in the docs', () => {
  test('there are route tables to check (the parser finds the blocks)', () => {
    expect(tables.length).toBeGreaterThanOrEqual(10);
  });

  test.each(tables.map((b) => [b.where, b] as const))('route table at %s validates', (_where, { file, line, text }) => {
    const vars = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
    const missing = vars.filter((v) => !(v in DOC_ENV));
    expect(missing).toEqual([]);
    const result = loadTableText(text, file, DOC_ENV);
    // Problems at their line in the markdown file, so the message points at the docs.
    expect(result.ok ? [] : result.problems.map((p) => formatProblem({ ...p, line: p.line + line - 1 }))).toEqual([]);
  });

  test('the route tables shipped in the repository validate (routes.yaml, examples/*.yaml)', () => {
    const files = ['routes.yaml', ...readdirSync(join(ROOT, 'examples')).filter((f) => /\.ya?ml$/.test(f)).map((f) => `examples/${f}`)];
    expect(files.length).toBeGreaterThanOrEqual(2);
    const problems = files.flatMap((f) => {
      const result = loadTableText(readFileSync(join(ROOT, f), 'utf8'), f, DOC_ENV);
      return result.ok ? [] : result.problems.map(formatProblem);
    });
    expect(problems).toEqual([]);
  });

  test('every other YAML block (fragments too) is well-formed YAML', () => {
    const broken = yamlBlocks
      .filter((b) => !tables.includes(b))
      .flatMap((b) => parseDocument(b.text).errors.map((e) => `${b.where}: ${e.message.split('\n')[0]}`));
    expect(broken).toEqual([]);
  });
});

describe('links', () => {
  test('every relative link and #anchor resolves', () => {
    const broken: string[] = [];
    for (const p of pages) {
      for (const { href, line } of p.links) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(href)) continue; // http:, https:, mailto:
        const [target = '', anchor] = href.split('#', 2);
        const file = target === '' ? p.file : resolve(dirname(p.file), decodeURI(target));
        const where = `${p.name}:${line} ${href}`;
        if (!file.startsWith(ROOT + '/') && file !== ROOT) broken.push(`${where}: leaves the repository`);
        else if (!existsSync(file)) broken.push(`${where}: no such file`);
        else if (anchor !== undefined) {
          const linked = pages.find((q) => q.file === file);
          if (!linked) broken.push(`${where}: an anchor into a file the docs test does not read`);
          else if (!linked.anchors.has(anchor)) broken.push(`${where}: no heading with anchor #${anchor} in ${linked.name}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  test('every manual page is linked from the manual index, docs/README.md', () => {
    const index = page('docs/README.md');
    const linked = new Set(index.links.map((l) => resolve(join(ROOT, 'docs'), l.href.split('#')[0]!)));
    const orphans = pages.filter((p) => p.name.startsWith('docs/') && p !== index && !linked.has(p.file)).map((p) => p.name);
    expect(orphans).toEqual([]);
  });

  test('the README links to the manual index', () => {
    expect(page('README.md').links.map((l) => l.href)).toContain('docs/README.md');
  });
});

describe('the README is a front page', () => {
  test('at most 250 lines: the manual is docs/', () => {
    expect(page('README.md').lines).toBeLessThanOrEqual(250);
  });

  test('it shows the two commands', () => {
    const shell = page('README.md').fences.map((f) => f.text).join('\n');
    expect(shell).toMatch(/^npm ci && npm run demo\b/m);
    expect(shell).toMatch(/^npm test\b/m);
  });
});

/** Rows of the tables whose first column is headed `key`, as full paths under the nearest code heading. */
function documentedKeys(tables: Table[]): { key: string; line: number }[] {
  const out: { key: string; line: number }[] = [];
  for (const t of tables) {
    if (t.header[0]?.trim().toLowerCase() !== 'key') continue;
    const prefix = t.heading?.code ?? '';
    for (const row of t.rows) {
      for (const key of row.cells[0]?.code ?? []) out.push({ key: prefix ? `${prefix}.${key}` : key, line: row.line });
    }
  }
  return out;
}

describe('references match the code', () => {
  test('the route-table reference documents every key of the schema, and no other', () => {
    const schema = routeTableKeys();
    const documented = documentedKeys(page('docs/reference/route-table.md').tables);
    const covered = new Set(documented.flatMap((d) => [d.key, ...ancestors(d.key)]));
    expect(schema.length).toBeGreaterThan(100);
    expect(schema.filter((k) => !covered.has(k))).toEqual([]);
    const known = new Set(schema);
    expect(documented.filter((d) => !known.has(d.key)).map((d) => `line ${d.line}: ${d.key}`)).toEqual([]);
    const counts = new Map<string, number>();
    for (const d of documented) counts.set(d.key, (counts.get(d.key) ?? 0) + 1);
    expect([...counts].filter(([, n]) => n > 1).map(([k]) => k)).toEqual([]);
  });

  test('the metrics reference lists every metric the gateway registers, and no other', async () => {
    const metrics = new GatewayMetrics(() => [], () => 0, () => []);
    const registered = (await metrics.registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((n) => !/^strangler_(process|nodejs)_/.test(n)); // prom-client's default metrics, described as a group
    const documented = page('docs/reference/metrics.md')
      .tables.filter((t) => t.header[0]?.trim().toLowerCase() === 'metric')
      .flatMap((t) => t.rows.flatMap((r) => r.cells[0]?.code ?? []));
    expect(registered.length).toBeGreaterThan(10);
    expect([...documented].sort()).toEqual([...registered].sort());
  });

  test('the admin API reference lists every endpoint of the admin router, and no other', () => {
    // Only the router is read: a control whose table has no admin block is enough to build it.
    const app = createAdminApp({ table: { config: {} } } as unknown as AdminControl);
    type RouterStack = { stack: { methods: string[]; path: string }[] };
    // koa-router marks the middleware it returns with the router it dispatches to.
    const routers = app.middleware.map((m) => (m as unknown as { router?: RouterStack }).router).filter((r): r is RouterStack => r !== undefined);
    const served = routers
      .flatMap((r) => r.stack)
      .flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${layer.path.replace(/:(\w+)/g, '<$1>')}`));
    const table = page('docs/reference/admin-api.md').tables.find((t) => t.header[0]?.trim().toLowerCase() === 'endpoint');
    const documented = (table?.rows ?? []).flatMap((r) => r.cells[0]?.code ?? []);
    expect(served.length).toBeGreaterThan(5);
    expect([...documented].sort()).toEqual([...served].sort());
  });

  test('the errors reference lists every code of the catalogue with its status', () => {
    const documented = page('docs/reference/errors.md')
      .tables.filter((t) => t.header[0]?.trim().toLowerCase() === 'code')
      .flatMap((t) => t.rows.map((r) => `${r.cells[0]?.code[0]} ${r.cells[1]?.text.trim()}`));
    const catalogue = Object.entries(ErrorCatalogue).map(([code, { status }]) => `${code} ${status}`);
    expect([...documented].sort()).toEqual([...catalogue].sort());
  });

  test('the CLI reference describes every command of the CLI, and no other', () => {
    const usage = execFileSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'index.js'), '--help'], { encoding: 'utf8' });
    const commands = [...usage.matchAll(/^\s+strangler (\w+)/gm)].map((m) => m[1]!);
    const documented = page('docs/reference/cli.md')
      .headings.filter((h) => h.level === 2 && h.code?.startsWith('strangler '))
      .map((h) => h.code!.split(' ')[1]!);
    expect(commands.length).toBeGreaterThanOrEqual(4);
    expect([...documented].sort()).toEqual([...commands].sort());
  });
});
