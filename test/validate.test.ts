/**
 * The `validate` and `explain` commands, run as the real CLI (dist/, built by
 * `npm run build` / the jest globalSetup) in a child process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'index.js');
const UNSET_VAR = 'STRANGLER_VALIDATE_TEST_UNSET_URL';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  lines: string[];
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Run {
  const childEnv: NodeJS.ProcessEnv = { ...process.env };
  delete childEnv[UNSET_VAR];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, env: childEnv, encoding: 'utf8', timeout: 15_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stdout.split('\n').filter((l) => l !== '') };
}

let dir: string;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  dir = mkdtempSync(join(tmpdir(), 'strangler-validate-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function fixture(text: string): string {
  const file = join(dir, `table-${++counter}.yaml`);
  writeFileSync(file, text);
  return file;
}

const GOOD_UPSTREAMS = `upstreams:
  users:
    url: http://127.0.0.1:4001
  monolith:
    url: http://127.0.0.1:3000
`;

/** Expected problems: [line, col, text the message must contain]. */
type Problem = [line: number, col: number, message: string];

interface BadCase {
  label: string;
  yaml: string;
  problems: Problem[];
  env?: Record<string, string | undefined>;
}

const badCases: BadCase[] = [
  {
    label: 'a canary gate without a shadow on the route',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: monolith
    canary: { upstream: users, percent: 50, gate: { maxMismatchPercent: 1 } }
`,
    problems: [[10, 51, 'canary.gate needs a shadow on the route']],
  },
  {
    label: 'a whole-request timeout shorter than the header timeout (Node would refuse to start)',
    yaml: `server:
  requestTimeoutMs: 60000
${GOOD_UPSTREAMS}routes: []
`,
    problems: [[2, 21, 'server.requestTimeoutMs: 60000 is shorter than server.headersTimeoutMs (66000)']],
  },
  {
    label: 'YAML syntax: nested mapping in a compact mapping',
    yaml: `upstreams:
  users:
    url: a: b
routes: []
`,
    problems: [[3, 10, 'YAML: Nested mappings are not allowed in compact mappings']],
  },
  {
    label: 'YAML syntax: duplicate key',
    yaml: `upstreams:
  users:
    url: http://127.0.0.1:4001
    url: http://127.0.0.1:4002
routes: []
`,
    problems: [[4, 5, 'YAML: Map keys must be unique']],
  },
  {
    label: 'YAML syntax: tab indentation',
    yaml: `upstreams:
\tusers:
    url: http://127.0.0.1:4001
routes: []
`,
    problems: [[2, 1, 'YAML: Tabs are not allowed as indentation']],
  },
  {
    label: 'unknown key (typo) inside a route points at the key',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: users
    stripPrefx: /api
`,
    problems: [[10, 5, 'routes[0].stripPrefx: unknown key']],
  },
  {
    label: 'unknown top-level key',
    yaml: `${GOOD_UPSTREAMS}routs: []
routes: []
`,
    problems: [[6, 1, 'routs: unknown key']],
  },
  {
    label: 'wrong type: timeoutMs: fast',
    yaml: `upstreams:
  users:
    url: http://127.0.0.1:4001
    timeoutMs: fast
routes: []
`,
    problems: [[4, 16, 'upstreams.users.timeoutMs: expected number, got string']],
  },
  {
    label: 'instances of one upstream with different paths',
    yaml: `upstreams:
  users:
    urls: [http://10.0.0.5:8080/api, http://10.0.0.6:8080/v2]
routes: []
`,
    problems: [[3, 11, 'upstreams.users.urls: every instance must have the same path']],
  },
  {
    label: 'instances of one upstream mixing http and https',
    yaml: `upstreams:
  users:
    urls: [http://10.0.0.5:8080, https://10.0.0.6:8443]
routes: []
`,
    problems: [[3, 11, 'upstreams.users.urls: every instance must use the same scheme (all http:// or all https://)']],
  },
  {
    label: 'missing required key',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
`,
    problems: [[7, 5, 'routes[0] (users): give exactly one of upstream, redirect or respond']],
  },
  {
    label: 'unknown upstream with a suggestion',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: usres
`,
    problems: [[9, 15, 'routes[0] (users): unknown upstream "usres" (did you mean "users"?); declared: users, monolith']],
  },
  {
    label: 'unknown upstream without a close name gets no suggestion',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: billing
`,
    problems: [[9, 15, 'routes[0] (users): unknown upstream "billing"; declared: users, monolith']],
  },
  {
    label: 'duplicate route names',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: users
  - name: users
    path: /api/orders
    upstream: monolith
`,
    problems: [[10, 11, 'routes[1] (users): duplicate route name "users" (first used by routes[0])']],
  },
  {
    label: 'two routes with identical match (methods in another order)',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: a
    path: /api/users
    methods: [GET, POST]
    upstream: users
  - name: b
    path: /api/users
    methods: [POST, GET]
    upstream: monolith
`,
    problems: [[12, 11, 'routes[1] (b): matches exactly the same requests as routes[0] (a)']],
  },
  {
    label: 'bad upstream URL (ftp://)',
    yaml: `upstreams:
  users:
    url: ftp://x
routes: []
`,
    problems: [[3, 10, 'upstreams.users.url: must be an absolute http:// or https:// URL']],
  },
  {
    label: 'bad method FETCH',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    methods: [GET, FETCH]
    upstream: users
`,
    problems: [[9, 20, 'routes[0].methods[1]: \"FETCH\" is not an HTTP method; use one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT']],
  },
  {
    label: 'unset ${ENV_VAR} is reported once, at the value',
    yaml: `upstreams:
  users:
    url: \${${UNSET_VAR}}
routes: []
`,
    problems: [[3, 10, `environment variable ${UNSET_VAR} is not set`]],
  },
  {
    label: 'unset ${ENV_VAR} set to the empty string counts as unset',
    yaml: `upstreams:
  users:
    url: \${${UNSET_VAR}}
routes: []
`,
    env: { [UNSET_VAR]: '' },
    problems: [[3, 10, `environment variable ${UNSET_VAR} is not set`]],
  },
  {
    label: 'several schema problems are all reported, in file order',
    yaml: `upstreams:
  users:
    url: http://127.0.0.1:4001
    timeoutMs: fast
routes:
  - name: users
    path: /api/users
    upstream: users
    stripPrefx: /api
  - name: orders
    path: /api/orders
    methods: [FETCH]
    upstream: users
`,
    problems: [
      [4, 16, 'upstreams.users.timeoutMs: expected number, got string'],
      [9, 5, 'routes[0].stripPrefx: unknown key'],
      [12, 15, 'routes[1].methods[0]: \"FETCH\" is not an HTTP method'],
    ],
  },
  {
    label: 'several semantic problems are all reported, in file order',
    yaml: `${GOOD_UPSTREAMS}routes:
  - name: users
    path: /api/users
    upstream: usres
  - name: users
    path: /api/users
    upstream: users
`,
    problems: [
      [9, 15, 'unknown upstream "usres" (did you mean "users"?)'],
      [10, 11, 'routes[1] (users): duplicate route name "users"'],
      [11, 11, 'routes[1] (users): matches exactly the same requests as routes[0] (users)'],
    ],
  },
  {
    label: 'an empty file',
    yaml: '',
    problems: [[1, 1, 'the route table is empty']],
  },
];

describe('strangler validate FILE', () => {
  test.each(badCases.map((c) => [c.label, c] as const))('%s', (_label, c) => {
    const file = fixture(c.yaml);
    const r = cli(['validate', file], c.env);
    expect(r.status).toBe(1);
    expect(r.lines).toHaveLength(c.problems.length);
    c.problems.forEach(([line, col, message], i) => {
      const out = r.lines[i]!;
      const prefix = `${file}:${line}:${col} `;
      expect(out.slice(0, prefix.length)).toBe(prefix);
      expect(out.slice(prefix.length)).toContain(message);
    });
    // The verdict line, not a substring: the temporary folder's random name can contain "OK".
    expect(r.stdout.split('\n')).not.toContain('OK');
  });

  test('the file name is printed as given on the command line (relative)', () => {
    const name = relative(ROOT, fixture(`upstreams:\n  users:\n    url: ftp://x\nroutes: []\n`));
    expect(name.startsWith('/')).toBe(false);
    const r = cli(['validate', name]);
    expect(r.status).toBe(1);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]!.startsWith(`${name}:3:10 `)).toBe(true);
  });

  test('a file that does not exist', () => {
    const file = join(dir, 'does-not-exist.yaml');
    const r = cli(['validate', file]);
    expect(r.status).toBe(1);
    expect(r.lines).toEqual([`${file}:1:1 cannot read the route table: file not found`]);
  });

  test('${VAR:-default} uses the default when VAR is unset, and VAR when set', () => {
    const file = fixture(`server:
  port: \${STRANGLER_VALIDATE_TEST_PORT:-9090}
upstreams:
  users:
    url: \${${UNSET_VAR}:-http://127.0.0.1:4001}
routes:
  - name: users
    path: /api/users
    upstream: users
`);
    const ok = cli(['validate', file], { STRANGLER_VALIDATE_TEST_PORT: undefined });
    expect({ status: ok.status, stdout: ok.stdout }).toEqual({ status: 0, stdout: 'OK\n' });

    const byDefault = cli(['explain', '--config', file, 'GET', '/api/users/1'], { STRANGLER_VALIDATE_TEST_PORT: undefined });
    expect(byDefault.status).toBe(0);
    expect(JSON.parse(byDefault.stdout).upstream).toEqual({ name: 'users', urls: ['http://127.0.0.1:4001'] });

    const fromEnv = cli(['explain', '--config', file, 'GET', '/api/users/1'], { [UNSET_VAR]: 'http://127.0.0.1:4555' });
    expect(fromEnv.status).toBe(0);
    expect(JSON.parse(fromEnv.stdout).upstream).toEqual({ name: 'users', urls: ['http://127.0.0.1:4555'] });
  });

  test('a bad value from the environment is reported at the ${...} reference', () => {
    const file = fixture(`upstreams:
  users:
    url: \${${UNSET_VAR}}
routes: []
`);
    const r = cli(['validate', file], { [UNSET_VAR]: 'ftp://x' });
    expect(r.status).toBe(1);
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]!.startsWith(`${file}:3:10 `)).toBe(true);
    expect(r.lines[0]).toContain('upstreams.users.url: must be an absolute http:// or https:// URL');
  });

  test("the repo's own routes.yaml is OK", () => {
    const r = cli(['validate', 'routes.yaml']);
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: 'OK\n' });
  });

  test('a file name is required', () => {
    const r = cli(['validate']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('strangler validate: which file?');
  });
});

describe('strangler explain --config routes.yaml', () => {
  test('GET /api/users/7?x=1 goes to the users route with the prefix stripped', () => {
    const r = cli(['explain', '--config', 'routes.yaml', 'GET', '/api/users/7?x=1']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.outcome).toBe('proxy');
    expect(out.route.name).toBe('users');
    expect(out.upstream.name).toBe('users');
    expect(out.normalizedPath).toBe('/api/users/7');
    expect(out.upstreamPath).toBe('/users/7?x=1');
    expect(out.upstreamUrl).toBe('http://127.0.0.1:4001/users/7?x=1');
  });

  test('DELETE on /api/users falls through to the legacy route', () => {
    const r = cli(['explain', '--config', 'routes.yaml', 'DELETE', '/api/users/7']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.route.name).toBe('legacy');
    expect(out.upstream.name).toBe('monolith');
    expect(out.upstreamPath).toBe('/api/users/7');
  });

  test('a lower-case method is treated as upper-case', () => {
    const out = JSON.parse(cli(['explain', '--config', 'routes.yaml', 'get', '/api/users']).stdout);
    expect(out.request.method).toBe('GET');
    expect(out.route.name).toBe('users');
  });

  test("-H 'Host: x' is accepted and shown", () => {
    const r = cli(['explain', '--config', 'routes.yaml', 'GET', '/api/users/7?x=1', '-H', 'Host: x']);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.request.host).toBe('x');
    expect(out.route.name).toBe('users');
  });

  test('a header without a colon is refused', () => {
    const r = cli(['explain', '--config', 'routes.yaml', 'GET', '/', '-H', 'Host']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('header "Host" is not "Name: value"');
  });

  test('a path that goes above the root is a 400', () => {
    const out = JSON.parse(cli(['explain', '--config', 'routes.yaml', 'GET', '/api/../../etc/passwd']).stdout);
    expect(out.outcome).toBe('bad-path');
    expect(out.status).toBe(400);
  });

  test('a traversal is matched and forwarded in normal form', () => {
    const out = JSON.parse(cli(['explain', '--config', 'routes.yaml', 'GET', '/api/users/%2e%2e/admin']).stdout);
    expect(out.normalizedPath).toBe('/api/admin');
    expect(out.route.name).toBe('legacy');
    expect(out.upstreamPath).toBe('/api/admin');
  });

  test('a broken --config prints its problems on stderr and exits 1', () => {
    const file = fixture(`upstreams:\n  users:\n    url: ftp://x\nroutes: []\n`);
    const r = cli(['explain', '--config', file, 'GET', '/']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`${file}:3:10 `)).toBe(true);
  });
});
