/**
 * `npm run bench`: Strangler against the bare library it wraps and the peers,
 * on one machine, in one run. Loopback only; every process it starts is
 * stopped; a few minutes at most.
 *
 *   node dist/bench/run.js [--rounds 3] [--duration 5] [--warmup 5] [--connections 50] [--pairs 32] [--pair-seconds 2] [--quick] [--scale-only] [--shadow-only] [--migration-only] [--replicas-only] [--workers-only] [--tls-only] [--tracing-only]
 *
 * --shadow-only measures the rows of the parallel run's targets alone (bare,
 * full, full + shadow 10% and 100%), for working on the shadow path;
 * --migration-only those of migration counting (bare, full, full with
 * counting off); --replicas-only those of rate limits and Redis (a
 * redis-server is started when installed); --workers-only those of
 * server.workers (one process and two workers, both on every core, with 20
 * reloads during the two workers' measured window); --tls-only those of
 * TLS termination (Strangler, nginx and Caddy when installed, with the same
 * certificate); --tracing-only those of tracing (full, and full with
 * tracing at 10% and 100% sent to a local collector stand-in, also
 * compared with full paired in time: --pairs windows of --pair-seconds
 * each, see paired()). None of these writes bench/results/latest.json.
 *
 * BENCH_NODE_FLAGS='--flag …' starts Strangler with these Node flags instead of npm start's.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const quick = args.includes('--quick');
/** Only the scale checks (route count, swap), for working on the table path. */
const SCALE_ONLY = args.includes('--scale-only');
/** Only the rows the parallel run's targets compare. */
const SHADOW_ONLY = args.includes('--shadow-only');
const SHADOW_ROWS = new Set(['bare http-proxy + keep-alive agent', 'Strangler full', 'Strangler full + shadow 10%', 'Strangler full + shadow 100%']);
/** Only the rows the replicas' targets compare (rate limits, Redis). */
const REPLICAS_ONLY = args.includes('--replicas-only');
const REPLICA_ROWS = new Set(['bare http-proxy + keep-alive agent', 'Strangler full', 'Strangler full + rate limit (local)', 'Strangler full + Redis shared state', 'Strangler full + rate limit (Redis)']);
/** Only the TLS rows (issue #20): Strangler, nginx and Caddy terminating TLS 1.3 with the same ECDSA P-256 certificate. */
const TLS_ONLY = args.includes('--tls-only');
const TLS_SCENARIOS = new Set([
  'Strangler minimal, HTTPS/1.1',
  'Strangler full, HTTPS/1.1',
  'nginx HTTPS/1.1 proxy_pass + keepalive',
  'Caddy HTTPS/1.1 reverse_proxy',
  'Strangler minimal, HTTP/2',
  'Strangler full, HTTP/2',
  'nginx HTTP/2 proxy_pass + keepalive',
  'Caddy HTTP/2 reverse_proxy',
]);
/** h2load (Debian's nghttp2-client) for the HTTP/2 rows: 10 connections of 10 streams each. */
const H2LOAD = ['h2load', '/usr/bin/h2load'].find((c) => spawnSync(c, ['--version']).status === 0);
const TLS_ROWS = new Set(['bare http-proxy + keep-alive agent', ...TLS_SCENARIOS]);
/** Only the rows of tracing's target (issue #21): full without and with tracing, exported to a collector stand-in. */
const TRACING_ONLY = args.includes('--tracing-only');
const TRACING_ROWS = new Set(['bare http-proxy + keep-alive agent', 'Strangler full', 'Strangler full + tracing 10%', 'Strangler full + tracing 100%']);
/** The tracing rows' OTLP collector stand-in (answers every export 200), on the load generator's core. */
let COLLECTOR_PORT = 0;
/** Only the rows of server.workers' targets. */
const WORKERS_ONLY = args.includes('--workers-only');
const WORKERS_ROWS = new Set(['bare http-proxy + keep-alive agent', 'Strangler full', 'Strangler full, every core', 'Strangler full, workers: 2, every core', 'Strangler full, workers: 2, every core, 20 reloads']);
/** The bench's redis-server (rows with state.redis), on the load generator's core. */
let REDIS_PORT = 0;
/** Only the rows the migration counting target compares. */
const MIGRATION_ONLY = args.includes('--migration-only');
const MIGRATION_ROWS = new Set(['bare http-proxy + keep-alive agent', 'Strangler full', 'Strangler full, migration counting off']);
const ROUNDS = opt('rounds', quick ? 1 : 3);
/** Comparisons paired in time (paired()): windows per side, and each window's length in seconds. */
const PAIRS = opt('pairs', quick ? 4 : 32);
const PAIR_SECONDS = opt('pair-seconds', 2);
/** Windows before both processes of a paired comparison are started anew. */
const PAIRS_PER_START = 4;
const DURATION = opt('duration', quick ? 2 : 5);
const CONNECTIONS = opt('connections', 50);
/** JIT compilation, connection pools and the young generation settle before the measured window. */
const WARMUP = opt('warmup', quick ? 2 : 5);
const ROOT = join(__dirname, '..', '..');
const DIST = join(ROOT, 'dist');
const WORK = mkdtempSync(join(tmpdir(), 'strangler-bench-'));

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const CADDY = has('caddy') ? 'caddy' : undefined;

/** The TLS rows' certificate: ECDSA P-256, made once per run by openssl. */
let certMade: { cert: string; key: string } | undefined;
function benchCert(): { cert: string; key: string } {
  if (certMade !== undefined) return certMade;
  const cert = join(WORK, 'tls.crt');
  const key = join(WORK, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  certMade = { cert, key };
  return certMade;
}

/** server.tls for Strangler's TLS rows: the same certificate and version as the peers'. */
function tlsServer(): string {
  const { cert, key } = benchCert();
  return `server: { tls: { certFile: ${cert}, keyFile: ${key}, minVersion: TLSv1.3 } }`;
}
const HAS_TASKSET = has('taskset') && (Number(execFileSync('nproc').toString()) >= 2);
const HAS_WRK = has('wrk');
const NGINX = ['nginx', '/usr/sbin/nginx'].find((c) => spawnSync(c, ['-v']).status === 0);
/** The proxy under test on core 0; load generator and upstream on core 1. */
const PROXY_CPU = '0';
const LOAD_CPU = '1';

/**
 * Strangler is measured the way it ships: with the Node flags of `npm start`
 * (the Dockerfile uses the same; a test keeps them equal).
 */
const START_FLAGS: string[] = process.env.BENCH_NODE_FLAGS !== undefined ? process.env.BENCH_NODE_FLAGS.split(' ').filter(Boolean) : (() => {
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
  const m = /^node((?: --\S+)*) dist\/src\/cli\/index\.js start$/.exec(start);
  if (!m) throw new Error(`package.json "start" is not "node [--flags] dist/src/cli/index.js start": ${start}`);
  return m[1]!.trim().split(' ').filter(Boolean);
})();

const children = new Set<ChildProcess>();
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function pinned(cpu: string, cmd: string, argv: string[]): [string, string[]] {
  return HAS_TASKSET ? ['taskset', ['-c', cpu, cmd, ...argv]] : [cmd, argv];
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function start(cpu: string, cmd: string, argv: string[], env: NodeJS.ProcessEnv = {}, pin = true): ChildProcess {
  const [c, a] = pin ? pinned(cpu, cmd, argv) : [cmd, argv];
  const child = spawn(c, a, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET', body?: string, tls = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const send = tls ? httpsRequest : request;
    const req = send({ host: '127.0.0.1', port, path, headers, method, agent: false, ...(tls ? { rejectUnauthorized: false } : {}) }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function waitReady(port: number, path = '/', headers: Record<string, string> = {}, tls = false): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await get(port, path, headers, 'GET', undefined, tls);
      if (r.status === 200) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`nothing answered 200 on :${port}${path}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Peak resident memory (VmHWM) of a process and its children, in MB. */
function peakRssMb(pid: number): number {
  try {
    // taskset execs the command, so the pid is the proxy itself.
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}

interface Sample {
  /** Requests that failed at the socket (connect, read, write, timeout) or got a non-2xx/3xx answer. */
  errors: number;
  /** What the row did during its window (reloads). */
  note?: string;
  rps: number;
  p50: number;
  p99: number;
  rssMb: number;
  /** CPU time (user + system, all threads) of the proxy per request in the measured window, in µs. */
  cpuUs: number;
}

/** CPU time used so far by a process and its child processes (nginx's workers), all threads, in µs; NaN where /proc is missing. */
function cpuTimeUs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, in clock ticks (100 per second on Linux).
    let us = (Number(fields[11]) + Number(fields[12])) * 10_000;
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean)) us += cpuTimeUs(Number(child));
    return us;
  } catch {
    return NaN;
  }
}

const LUA = join(WORK, 'cookie.lua');
writeFileSync(LUA, `-- Each request carries a sticky cookie of one of 10,000 users, so the canary split sees many users.
-- The requests are formatted once, in init: per request, wrk only picks the next one.
local pool, n, i = {}, 10000, 0
init = function(args)
  for k = 1, n do
    wrk.headers["Cookie"] = "strangler_sticky=u" .. math.random(1, 1000000)
    pool[k] = wrk.format(nil, nil)
  end
end
request = function()
  i = i % n + 1
  return pool[i]
end
`);

function parseWrkMs(s: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(s)!;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function load(url: string, headers: Record<string, string>, randomCookie: boolean, seconds: number, allowErrors = false, h2 = false): Promise<Omit<Sample, 'rssMb' | 'cpuUs'> & { requests: number }> {
  if (h2) {
    // h2load reports no percentiles: p50 and p99 are its mean and mean + 2 sd, marked as such in the notes.
    const hdr = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k.toLowerCase()}: ${v}`]);
    // h2load sends one header set with every request: one portal user's browser, with its sticky cookie (wrk's rows: 10,000 users).
    if (randomCookie) hdr.push('-H', `cookie: strangler_sticky=u${1 + Math.floor(Math.random() * 1_000_000)}`);
    const [c, a] = pinned(LOAD_CPU, H2LOAD!, ['-t1', '-c10', '-m10', '-D', String(seconds), ...hdr, url]);
    const out = await run(c, a);
    const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)![1]);
    const done = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out)!;
    const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)!;
    const lat = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out)!;
    const mean = parseWrkMs(lat[3]!);
    const errors = Number(done[4]) + Number(done[5]) + Number(codes[3]) + Number(codes[4]);
    if (errors && !allowErrors) throw new Error(`${url}: ${errors} failed requests\n${out}`);
    return { rps, p50: mean, p99: mean + 2 * parseWrkMs(lat[4]!), requests: Number(done[2]), errors };
  }
  if (HAS_WRK) {
    const hdr = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
    const lua = randomCookie ? ['-s', LUA] : [];
    const [c, a] = pinned(LOAD_CPU, 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...hdr, ...lua, url]);
    const out = await run(c, a);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)![1]);
    const requests = Number(/(\d+) requests in/.exec(out)![1]);
    const p50 = parseWrkMs(/\s50%\s+(\S+)/.exec(out)![1]!);
    const p99 = parseWrkMs(/\s99%\s+(\S+)/.exec(out)![1]!);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0);
    if (non2xx && !allowErrors) throw new Error(`${url}: ${non2xx} non-2xx responses\n${out}`);
    return { rps, p50, p99, requests, errors };
  }
  const bin = require.resolve('autocannon/autocannon.js');
  const hdr = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]);
  const [c, a] = pinned(LOAD_CPU, process.execPath, [bin, '-j', '-c', String(CONNECTIONS), '-d', String(seconds), ...hdr, url]);
  const j = JSON.parse(await run(c, a)) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number };
  if (j.non2xx && !allowErrors) throw new Error(`${url}: ${j.non2xx} non-2xx responses`);
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, requests: j.requests.total, errors: j.non2xx };
}

function run(cmd: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    child.on('exit', (code) => {
      children.delete(child);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${code}: ${out}`));
    });
  });
}

// ---------------------------------------------------------------- upstream

async function startUpstream(): Promise<{ port: number; kind: string; child: ChildProcess }> {
  const port = await freePort();
  if (NGINX) {
    const dir = join(WORK, `nginx-up-${port}`);
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000; keepalive_timeout 65;
  server { listen 127.0.0.1:${port}; location / { default_type text/plain; return 200 "hello world\\n"; } } }
`,
    );
    const child = start(LOAD_CPU, NGINX, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
    await waitReady(port);
    return { port, kind: 'nginx 1 worker, `return 200` (12 bytes)', child };
  }
  const child = start(LOAD_CPU, process.execPath, [join(DIST, 'bench', 'upstream.js'), String(port)]);
  await waitReady(port);
  return { port, kind: 'minimal Node http server (12 bytes; nginx not installed)', child };
}

// ---------------------------------------------------------------- scenarios

const SECRET = 'bench-secret-of-at-least-32-bytes!!';
function hs256(claims: Record<string, unknown>): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
const TOKEN = hs256({ sub: 'bench-user', email: 'b@example.com', roles: ['user'], iss: 'portal', exp: Math.floor(Date.now() / 1000) + 3600 });
/**
 * Every row of the main table gets the same requests (a portal user's: a
 * bearer token and a sticky cookie, one of many users): the load generator
 * shares a core with the upstream, so different requests per row would
 * measure the load generator's work as well as the proxy's.
 */
const TRAFFIC = { Authorization: `Bearer ${TOKEN}` };

function routes(n: number, hit: string, extra = ''): string {
  const lines: string[] = [];
  for (let i = 0; i < n - 1; i++) lines.push(`  - { name: r${i}, path: /svc${i % 100}/area${i}, upstream: app }`);
  lines.push(`  - { name: hit, path: ${hit}, upstream: app${extra} }`);
  return lines.join('\n');
}

interface Scenario {
  name: string;
  path: string;
  /** Served over TLS (the load generator speaks https). */
  tls?: boolean;
  /** Loaded over HTTP/2 (h2load) instead of HTTP/1.1. */
  h2?: boolean;
  /** Starts the proxy; returns its port and process. `shadowPort`: a second upstream server, the shadow rows' new service. */
  start(upstreamPort: number, shadowPort: number): Promise<{ port: number; child: ChildProcess; during?: (seconds: number) => Promise<string> }>;
}

async function strangler(yaml: string, readyPath: string, readyHeaders: Record<string, string> = {}, cpu = PROXY_CPU, tls = false): Promise<{ port: number; child: ChildProcess; file: string }> {
  const port = await freePort();
  const file = join(WORK, `routes-${port}.yaml`);
  writeFileSync(file, yaml);
  const cli = [...START_FLAGS, join(DIST, 'src', 'cli', 'index.js'), 'start', '--config', file];
  const env = { PORT: String(port), NODE_ENV: 'production', JWT_SECRET: SECRET };
  const child = cpu === 'all' ? start('', process.execPath, cli, env, false) : start(cpu, process.execPath, cli, env);
  await waitReady(port, readyPath, readyHeaders, tls);
  return { port, child, file };
}

/**
 * server.workers: 2 on every core, and during its measured window 20
 * reloads, each a real change (a route added, then removed), each asked of
 * the admin API and checked applied: the load generator must see no error.
 */
async function workersRow(up: number, workers: number, reloads: boolean): Promise<{ port: number; child: ChildProcess; during?: (seconds: number) => Promise<string> }> {
  const adminPort = await freePort();
  const yaml = fullYaml(up, adminPort, undefined, true, { workers });
  const s = await strangler(yaml, '/api/hello', { Authorization: `Bearer ${TOKEN}` }, 'all');
  if (!reloads) return s;
  const during = async (seconds: number): Promise<string> => {
    const gap = (seconds * 1000) / 21;
    let applied = 0;
    for (let i = 1; i <= 20; i++) {
      await new Promise((r) => setTimeout(r, gap));
      writeFileSync(s.file, i % 2 ? yaml.replace('routes:\n', 'routes:\n  - { name: extra, path: /extra, upstream: app }\n') : yaml);
      const r = await get(adminPort, '/reload', {}, 'POST');
      if (r.status === 200 && r.body.includes('"applied"')) applied++;
      else throw new Error(`reload ${i} was not applied: ${r.body}`);
    }
    return `${applied} reloads applied`;
  };
  return { ...s, during };
}

/**
 * 10,000 routes, one in five a path template (`/svc7/t35/{id:int}`, and some
 * under `/api/{group}/…`); the measured request matches the template
 * `/api/{what}`, so it walks the template tree and captures a parameter.
 */
const templatedYaml = (up: number, n: number) => {
  const lines: string[] = [];
  for (let i = 0; i < n - 1; i++) {
    if (i % 5 !== 0) lines.push(`  - { name: r${i}, path: /svc${i % 100}/area${i}, upstream: app }`);
    else if (i % 50 === 0) lines.push(`  - { name: r${i}, path: "/api/{group}/x${i}", upstream: app }`);
    else lines.push(`  - { name: r${i}, path: "/svc${i % 100}/t${i}/{id:int}", upstream: app }`);
  }
  lines.push('  - { name: hit, path: "/api/{what}", upstream: app }');
  return `
log: { access: off }
reload: { watch: false }
upstreams: { app: { url: http://127.0.0.1:${up} } }
routes:
${lines.join('\n')}
`;
};

const minimalYaml = (up: number, n = 1) => `
log: { access: off }
reload: { watch: false }
upstreams: { app: { url: http://127.0.0.1:${up} } }
routes:
${routes(n, '/api/hello')}
`;

/** `shadowPercent`: the measured route also copies this share of its (primary-side) requests to the shadow upstream, a second server. */
/** `extra`: `redis` adds state.redis (the bench's redis-server), `limit` a rate limit on the measured route that never refuses. */
const fullYaml = (up: number, adminPort: number, shadow?: { percent: number; port: number }, counting = true, extra: { redis?: boolean; limit?: boolean; workers?: number; tracing?: number } = {}) => `${extra.workers === undefined ? '' : `\nserver: { workers: ${extra.workers} }\nreload: { watch: false }`}${extra.tracing === undefined ? '' : `\ntracing: { otlp: { endpoint: "http://127.0.0.1:${COLLECTOR_PORT}" }, sampleRatio: ${extra.tracing} }`}
log: { access: ${join(WORK, 'access.log')} }${counting ? '' : '\nmigration: { count: false }'}${extra.redis ? `\nstate: { redis: { url: "redis://127.0.0.1:${REDIS_PORT}" } }` : ''}
admin: { port: ${adminPort} }
upstreams:
  app: { url: http://127.0.0.1:${up}, breaker: { minRequests: 20 } }
  app2: { url: http://127.0.0.1:${up}, breaker: { minRequests: 20 } }
  shadow: { url: http://127.0.0.1:${shadow?.port ?? up} }
auth:
  jwt: { secret: "\${JWT_SECRET}", issuer: portal }
routes:
${routes(1000, '/api/hello', `, auth: required, canary: { upstream: app2, percent: 50, sticky: cookie }${shadow === undefined ? '' : `, shadow: { upstream: shadow, percent: ${shadow.percent} }`}${extra.limit ? ', rateLimit: { key: user, limit: 10000000, windowMs: 1000 }' : ''}`)}
`;

function scenarios(withNginx: boolean, withH2 = true): Scenario[] {
  const list: Scenario[] = [
    {
      name: 'direct (no proxy)',
      path: '/api/hello',
      start: async (up) => ({ port: up, child: undefined as unknown as ChildProcess }),
    },
    {
      name: 'bare http-proxy + keep-alive agent',
      path: '/api/hello',
      start: async (up) => {
        const port = await freePort();
        const child = start(PROXY_CPU, process.execPath, [join(DIST, 'bench', 'bare-proxy.js'), String(port), `http://127.0.0.1:${up}`]);
        await waitReady(port, '/api/hello');
        return { port, child };
      },
    },
    {
      name: 'bare http-proxy, Strangler\'s Node flags',
      path: '/api/hello',
      start: async (up) => {
        const port = await freePort();
        const child = start(PROXY_CPU, process.execPath, [...START_FLAGS, join(DIST, 'bench', 'bare-proxy.js'), String(port), `http://127.0.0.1:${up}`]);
        await waitReady(port, '/api/hello');
        return { port, child };
      },
    },
    { name: 'Strangler minimal', path: '/api/hello', start: (up) => strangler(minimalYaml(up), '/api/hello') },
    {
      name: 'Strangler full',
      path: '/api/hello',
      start: async (up) => strangler(fullYaml(up, await freePort()), '/api/hello', { Authorization: `Bearer ${TOKEN}` }),
    },
    {
      name: 'Strangler full, migration counting off',
      path: '/api/hello',
      start: async (up) => strangler(fullYaml(up, await freePort(), undefined, false), '/api/hello', { Authorization: `Bearer ${TOKEN}` }),
    },
    { name: 'Strangler full + tracing 10%', path: '/api/hello', start: async (up) => strangler(fullYaml(up, await freePort(), undefined, true, { tracing: 0.1 }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }) },
    { name: 'Strangler full + tracing 100%', path: '/api/hello', start: async (up) => strangler(fullYaml(up, await freePort(), undefined, true, { tracing: 1 }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }) },
    { name: 'Strangler full + rate limit (local)', path: '/api/hello', start: async (up) => strangler(fullYaml(up, await freePort(), undefined, true, { limit: true }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }) },
    { name: 'Strangler full + Redis shared state', path: '/api/hello', start: async (up) => strangler(fullYaml(up, await freePort(), undefined, true, { redis: true }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }) },
    { name: 'Strangler full + rate limit (Redis)', path: '/api/hello', start: async (up) => strangler(fullYaml(up, await freePort(), undefined, true, { redis: true, limit: true }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }) },
    { name: 'Strangler minimal, HTTPS/1.1', path: '/api/hello', tls: true, start: (up) => strangler(minimalYaml(up).replace('log:', `${tlsServer()}\nlog:`), '/api/hello', {}, PROXY_CPU, true) },
    {
      name: 'Strangler full, HTTPS/1.1',
      path: '/api/hello',
      tls: true,
      start: async (up) => strangler(fullYaml(up, await freePort()).replace('log:', `${tlsServer()}\nlog:`), '/api/hello', { Authorization: `Bearer ${TOKEN}` }, PROXY_CPU, true),
    },
    {
      name: 'nginx HTTPS/1.1 proxy_pass + keepalive',
      path: '/api/hello',
      tls: true,
      start: (up) => nginxTls(up, false),
    },
    {
      name: 'Caddy HTTPS/1.1 reverse_proxy',
      path: '/api/hello',
      tls: true,
      start: async (up) => {
        const port = await freePort();
        const dir = join(WORK, `caddy-${port}`);
        execFileSync('mkdir', ['-p', dir]);
        const { cert, key } = benchCert();
        // No admin endpoint, no automatic HTTPS (the certificate is given), no access log: the same work as the others.
        writeFileSync(join(dir, 'Caddyfile'), `{\n\tadmin off\n\tauto_https off\n}\nhttps://127.0.0.1:${port} {\n\ttls ${cert} ${key} {\n\t\tprotocols tls1.3\n\t}\n\treverse_proxy 127.0.0.1:${up}\n}\n`);
        const child = start(PROXY_CPU, CADDY!, ['run', '--config', join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], { HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir });
        await waitReady(port, '/api/hello', {}, true);
        return { port, child };
      },
    },
    ...(withH2 ? h2Variants() : []),
    { name: 'Strangler full, every core', path: '/api/hello', start: (up) => workersRow(up, 1, false) },
    { name: 'Strangler full, workers: 2, every core', path: '/api/hello', start: (up) => workersRow(up, 2, false) },
    { name: 'Strangler full, workers: 2, every core, 20 reloads', path: '/api/hello', start: (up) => workersRow(up, 2, true) },
    {
      name: 'Strangler full + shadow 10%',
      path: '/api/hello',
      start: async (up, shadowPort) => strangler(fullYaml(up, await freePort(), { percent: 10, port: shadowPort }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }),
    },
    {
      name: 'Strangler full + shadow 100%',
      path: '/api/hello',
      start: async (up, shadowPort) => strangler(fullYaml(up, await freePort(), { percent: 100, port: shadowPort }), '/api/hello', { Authorization: `Bearer ${TOKEN}` }),
    },
  ];
  if (withNginx) {
    list.push({
      name: 'nginx proxy_pass + keepalive',
      path: '/api/hello',
      start: async (up) => {
        const port = await freePort();
        const dir = join(WORK, `nginx-proxy-${port}`);
        execFileSync('mkdir', ['-p', dir]);
        writeFileSync(
          join(dir, 'nginx.conf'),
          `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; upstream app { server 127.0.0.1:${up}; keepalive 64; }
  server { listen 127.0.0.1:${port}; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
        );
        const child = start(PROXY_CPU, NGINX!, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
        await waitReady(port, '/api/hello');
        return { port, child };
      },
    });
  }
  return list;
}

/** The HTTP/2 rows: the HTTPS/1.1 rows' servers (each offers h2 by ALPN: Strangler and Caddy by default, nginx with http2 on), loaded by h2load. */
function h2Variants(): Scenario[] {
  const https = scenarios(NGINX !== undefined, false).filter((s) => s.tls);
  return https.map((s) => ({
    ...s,
    name: s.name.replace('HTTPS/1.1', 'HTTP/2'),
    h2: true,
    start: s.name.startsWith('nginx') ? (up: number) => nginxTls(up, true) : s.start,
  }));
}

/** nginx terminating TLS 1.3 with the bench's certificate, proxying to the upstream; `http2`: also offering h2. */
async function nginxTls(up: number, http2: boolean): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const dir = join(WORK, `nginx-tls-${port}`);
  execFileSync('mkdir', ['-p', dir]);
  const { cert, key } = benchCert();
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 4096; }
http { access_log off; upstream app { server 127.0.0.1:${up}; keepalive 64; }
  server { listen 127.0.0.1:${port} ssl${http2 ? ' http2' : ''}; ssl_certificate ${cert}; ssl_certificate_key ${key}; ssl_protocols TLSv1.3; keepalive_requests 100000;${http2 ? ' http2_max_requests 100000;' : ''}
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
`,
  );
  const child = start(PROXY_CPU, NGINX!, ['-c', join(dir, 'nginx.conf'), '-p', dir]);
  await waitReady(port, '/api/hello', {}, true);
  return { port, child };
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown CPU';
  } catch {
    return 'unknown CPU';
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function measure(s: Scenario, upstreamPort: number, shadowPort: number, seconds: number): Promise<Sample> {
  const { port, child, during } = await s.start(upstreamPort, shadowPort);
  try {
    const url = `${s.tls ? 'https' : 'http'}://127.0.0.1:${port}${s.path}`;
    await load(url, TRAFFIC, true, WARMUP, false, s.h2);
    const cpu0 = child ? cpuTimeUs(child.pid!) : NaN;
    const [r, note] = await Promise.all([load(url, TRAFFIC, true, seconds, during !== undefined, s.h2), during?.(seconds)]);
    const cpuUs = child ? (cpuTimeUs(child.pid!) - cpu0) / r.requests : NaN;
    return { rps: r.rps, p50: r.p50, p99: r.p99, cpuUs, rssMb: child ? peakRssMb(child.pid!) : NaN, errors: r.errors, ...(note === undefined ? {} : { note }) };
  } finally {
    if (child) await stop(child);
  }
}

/**
 * Two configurations of the same proxy, compared side by side in time: both
 * processes run at once on the proxy's core and are loaded in turn, in short
 * windows (A B, B A, A B, …), never together. On a shared VM the machine's
 * speed drifts by half within seconds: rows measured one after the other
 * (\`measure\`) take that drift into their ratio. Here each window of A is
 * compared with the window of B next to it, and the result is the median of
 * these pairs' ratios, which a burst of slowness in a few windows does not
 * move.
 */
interface Paired {
  a: string;
  b: string;
  windows: number;
  seconds: number;
  /** The median over pairs of B's requests / A's in the adjacent window. */
  ratio: number;
  /** The pairs' lower and upper quartiles. */
  quartiles: [number, number];
  /** B's requests / A's over all windows. */
  totalRatio: number;
  rpsA: number;
  rpsB: number;
  cpuUsA: number;
  cpuUsB: number;
}

async function paired(a: Scenario, b: Scenario, upstreamPort: number, shadowPort: number, windows: number, seconds: number): Promise<Paired> {
  const pairs: number[] = [];
  const total = { a: 0, b: 0, cpuA: 0, cpuB: 0 };
  // New processes every PAIRS_PER_START windows: two starts of the same configuration can differ by several
  // percent for as long as they live (what the JIT chose to optimise, and when); restarts average that out.
  // Which of the two starts (and warms up) first alternates too.
  for (let done = 0; done < windows; done += PAIRS_PER_START) {
    const [first, second] = (done / PAIRS_PER_START) % 2 === 0 ? [a, b] : [b, a];
    const s1 = await first.start(upstreamPort, shadowPort);
    let s2: Awaited<ReturnType<Scenario['start']>> | undefined;
    try {
      s2 = await second.start(upstreamPort, shadowPort);
      const [sa, sb] = first === a ? [s1, s2] : [s2, s1];
      const side = [
        { s: a, p: sa, perWindow: [] as number[] },
        { s: b, p: sb, perWindow: [] as number[] },
      ];
      const url = (x: (typeof side)[number]) => `${x.s.tls ? 'https' : 'http'}://127.0.0.1:${x.p.port}${x.s.path}`;
      for (const x of first === a ? side : [side[1]!, side[0]!]) await load(url(x), TRAFFIC, true, WARMUP, false, x.s.h2);
      for (let w = 0; w < Math.min(PAIRS_PER_START, windows - done); w++) {
        for (const x of w % 2 === 0 ? side : [side[1]!, side[0]!]) {
          const cpu0 = cpuTimeUs(x.p.child.pid!);
          const r = await load(url(x), TRAFFIC, true, seconds, false, x.s.h2);
          const cpu = cpuTimeUs(x.p.child.pid!) - cpu0;
          if (x === side[0]) (total.a += r.requests), (total.cpuA += cpu);
          else (total.b += r.requests), (total.cpuB += cpu);
          x.perWindow.push(r.requests);
        }
      }
      pairs.push(...side[0]!.perWindow.map((n, i) => side[1]!.perWindow[i]! / n));
    } finally {
      if (s2) await stop(s2.child);
      await stop(s1.child);
    }
  }
  pairs.sort((x, y) => x - y);
  const at = (q: number) => pairs[Math.min(pairs.length - 1, Math.floor(q * pairs.length))]!;
  return {
    a: a.name,
    b: b.name,
    windows,
    seconds,
    ratio: median(pairs),
    quartiles: [at(0.25), at(0.75)],
    totalRatio: total.b / total.a,
    rpsA: total.a / (windows * seconds),
    rpsB: total.b / (windows * seconds),
    cpuUsA: total.cpuA / total.a,
    cpuUsB: total.cpuB / total.b,
  };
}

// ---------------------------------------------------------------- scale checks

async function scaleChecks(upstreamPort: number): Promise<Record<string, number>> {
  // Throughput with 10 vs 10,000 routes (interleaved).
  const small: number[] = [];
  const large: number[] = [];
  const templated: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const [yaml, into] of [
      [minimalYaml(upstreamPort, 10), small],
      [minimalYaml(upstreamPort, 10_000), large],
      [templatedYaml(upstreamPort, 10_000), templated],
    ] as const) {
      const { port, child } = await strangler(yaml, '/api/hello');
      try {
        await load(`http://127.0.0.1:${port}/api/hello`, {}, false, WARMUP);
        into.push((await load(`http://127.0.0.1:${port}/api/hello`, {}, false, DURATION)).rps);
      } finally {
        await stop(child);
      }
    }
  }
  // Validate + swap a 10,000-route table under traffic; the event loop's longest stall meanwhile.
  const adminPort = await freePort();
  const file = join(WORK, 'swap.yaml');
  const table = (n: number, marker: string) => `
log: { access: off }
admin: { port: ${adminPort} }
reload: { watch: false }
upstreams: { app: { url: http://127.0.0.1:${upstreamPort} } }
routes:
${routes(n, '/api/hello')}
  - { name: marker-${marker}, path: /marker/${marker}, upstream: app }
`;
  writeFileSync(file, table(10_000, 'a'));
  const port = await freePort();
  const child = start(PROXY_CPU, process.execPath, [...START_FLAGS, join(DIST, 'src', 'cli', 'index.js'), 'start', '--config', file], { PORT: String(port), NODE_ENV: 'production' });
  try {
    await waitReady(port, '/api/hello');
    const traffic = load(`http://127.0.0.1:${port}/api/hello`, {}, false, 4);
    await new Promise((r) => setTimeout(r, 1000));
    await get(adminPort, '/metrics'); // resets the event-loop histogram
    writeFileSync(file, table(10_000, 'b'));
    const t0 = Date.now();
    const reload = await get(adminPort, '/reload', {}, 'POST');
    const swapMs = Date.now() - t0;
    if (reload.status !== 200 || !reload.body.includes('"applied"')) throw new Error(`reload failed: ${reload.body}`);
    const metrics = (await get(adminPort, '/metrics')).body;
    await traffic;
    const stall = Number(/^strangler_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(metrics)?.[1] ?? NaN) * 1000;
    const reported = (JSON.parse(reload.body) as { durationMs?: number }).durationMs ?? NaN;
    return { rps10: median(small), rps10k: median(large), rps10kTemplates: median(templated), swapMs: reported || swapMs, stallMs: stall };
  } finally {
    await stop(child);
  }
}

/**
 * The cost of counting one request for the migration report, measured in
 * process (2 million calls after a warm-up): the end-to-end rows cannot
 * resolve a few hundred nanoseconds on a noisy machine.
 */
function recordCostNs(): Array<{ label: string; ns: number }> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { MigrationInsight } = require(join(DIST, 'src', 'migration', 'insight.js')) as typeof import('../src/migration/insight');
  const m = new MigrationInsight({ legacy: ['app'], templates: [] }, 1000);
  const cases: Array<[string, string, string | undefined]> = [
    ['legacy answer, signed-in user', 'app', 'bench-user'],
    ['new answer, signed-in user', 'app2', 'bench-user'],
  ];
  return cases.map(([label, upstream, user]) => {
    for (let i = 0; i < 200_000; i++) m.record('hit', upstream, 'GET', `/api/orders/${i % 500}`, 200, 12.5, user);
    const n = 2_000_000;
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) m.record('hit', upstream, 'GET', `/api/orders/${i % 500}`, 200, 12.5, user);
    return { label, ns: Number(process.hrtime.bigint() - t) / n };
  });
}

/** One local rate-limit decision with its key, in process (2 million calls). */
function limiterCostNs(): number {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RouteLimiter } = require(join(DIST, 'src', 'ratelimit', 'route.js')) as typeof import('../src/ratelimit/route');
  const l = new RouteLimiter('hit', { key: 'user', limit: 10_000_000, windowMs: 1000, burst: 0 }, undefined);
  const req = { headers: { 'x-forwarded-for': '127.0.0.1' }, socket: { remoteAddress: '127.0.0.1' } } as unknown as import('node:http').IncomingMessage;
  for (let i = 0; i < 200_000; i++) l.decide(l.keyOf(req, `user-${i % 100}`));
  const n = 2_000_000;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) l.decide(l.keyOf(req, `user-${i % 100}`));
  return Number(process.hrtime.bigint() - t) / n;
}

/**
 * Tracing's own CPU, in process, free of the VM's swings: per recorded
 * request (a server span and one attempt span) on the request thread (their
 * values recorded and handed over in batches) and on the span thread (made
 * SDK spans, batched and encoded as OTLP protobuf; the POST itself is left
 * out), and per request not recorded (the trace id and the sampling decision).
 */
function tracingCostUs(): { recorded: number; spanThread: number; unrecorded: number } {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { OtelSink } = require(join(DIST, 'src', 'observability', 'otel.js')) as typeof import('../src/observability/otel');
  const { RecordingTracer, SLOTS } = require(join(DIST, 'src', 'observability', 'spanRecorder.js')) as typeof import('../src/observability/spanRecorder');
  const { newRequestId, newTraceparent } = require(join(DIST, 'src', 'observability', 'requestId.js')) as typeof import('../src/observability/requestId');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const config = { otlp: { endpoint: 'http://127.0.0.1:9', headers: {}, timeoutMs: 5000 }, sampleRatio: 0.1, serviceName: 'strangler', maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMs: 1000 };
  // The request thread's side: the batches it hands over are kept, as a postMessage would clone them (counted as exported).
  const handed: unknown[][] = [];
  const counters = new Int32Array(3);
  const tracer = new RecordingTracer(config, {
    counters,
    add: (records) => {
      handed.push(records);
      counters[0]! += records.length / SLOTS;
    },
    flush: async () => undefined,
    close: () => undefined,
  });
  const one = () => {
    const t = tracer.start(newTraceparent(newRequestId()).slice(3, 35), undefined, performance.now());
    const a = t.child('attempt app', { 'http.request.method': 'GET', 'strangler.upstream': 'app', 'strangler.instance': 'http://127.0.0.1:8080' });
    a.set('http.response.status_code', 200);
    a.end();
    t.end('GET /api/hello', { 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/api/hello', 'network.protocol.version': '1.1', 'client.address': '127.0.0.1', 'strangler.request_id': 'x', 'strangler.route': 'hit', 'strangler.upstream': 'app', 'strangler.auth': 'ok' }, false);
  };
  const n = 50_000;
  const time = (f: () => void, times: number) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < times; i++) f();
    return Number(process.hrtime.bigint() - t0) / times / 1000;
  };
  time(one, 20_000);
  handed.length = 0;
  const recorded = time(one, n);
  // The span thread's side, on what the request thread handed over (structured clones, as the thread receives them).
  const batches = handed.map((b) => structuredClone(b));
  let bytes = 0;
  const sink = new OtelSink(config, undefined, (body, done) => {
    bytes += body.length;
    done(true);
  });
  const t0 = process.hrtime.bigint();
  for (const b of batches) sink.add(b);
  const spanThread = Number(process.hrtime.bigint() - t0) / n / 1000;
  let kept = 0;
  const unrecorded = time(() => {
    if (tracer.sampled(undefined, newTraceparent(newRequestId()).slice(3, 35))) kept++;
  }, n);
  void sink.flush().then(() => sink.close());
  if (bytes === 0 || kept === 0) throw new Error('tracing cost: nothing was encoded or sampled');
  return { recorded, spanThread, unrecorded };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const up = await startUpstream();
  // The shadow rows' new service: a second server of the same kind, on the upstream's core.
  const shadowUp = await startUpstream();
  const HAS_REDIS = has('redis-server');
  const list = scenarios(NGINX !== undefined).filter(
    (s) =>
      (!SHADOW_ONLY || SHADOW_ROWS.has(s.name)) &&
      (!MIGRATION_ONLY || MIGRATION_ROWS.has(s.name)) &&
      (!REPLICAS_ONLY || REPLICA_ROWS.has(s.name)) &&
      (!WORKERS_ONLY || WORKERS_ROWS.has(s.name)) &&
      (!TRACING_ONLY || TRACING_ROWS.has(s.name)) &&
      (!TLS_ONLY || TLS_ROWS.has(s.name)) &&
      // TLS rows only when asked for (they need their own comparison peers), and Caddy only when installed.
      (TLS_ONLY || !TLS_SCENARIOS.has(s.name)) &&
      (CADDY !== undefined || !s.name.startsWith('Caddy')) &&
      (H2LOAD !== undefined || !s.name.includes('HTTP/2')) &&
      (HAS_REDIS || !s.name.includes('Redis')),
  );
  if (HAS_REDIS) {
    REDIS_PORT = await freePort();
    start(LOAD_CPU, 'redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    await new Promise((r) => setTimeout(r, 300));
  }
  if (list.some((s) => s.name.includes('tracing'))) {
    COLLECTOR_PORT = await freePort();
    // Reads each export and answers 200, as a collector does (what it then does with the spans is not the gateway's cost).
    const collector = `require('http').createServer((q, s) => { q.resume(); q.on('end', () => s.writeHead(200, { 'content-type': 'application/json' }).end('{}')); }).listen(${COLLECTOR_PORT}, '127.0.0.1')`;
    start(LOAD_CPU, process.execPath, ['-e', collector]);
    await new Promise((r) => setTimeout(r, 300));
  }
  const samples = new Map<string, Sample[]>(list.map((s) => [s.name, []]));
  process.stdout.write(
    `Strangler benchmark: ${ROUNDS} round(s) x ${DURATION}s, ${CONNECTIONS} connections, load generator ${HAS_WRK ? 'wrk' : 'autocannon (wrk not installed)'}, upstream ${up.kind}\n` +
      (HAS_TASKSET ? `proxy pinned to CPU ${PROXY_CPU}; load generator and upstream to CPU ${LOAD_CPU}\n` : 'taskset not available (or one CPU): processes are NOT pinned\n') +
      `every row gets the same requests: GET /api/hello with a bearer token and a sticky cookie (one of 10,000 users; wrk only)\n` +
      `warm-up ${WARMUP}s before each measured window; Strangler runs with the Node flags of \`npm start\`: ${START_FLAGS.join(' ') || '(none)'}\n` +
      `machine: ${cpuModel()}, ${execFileSync('nproc').toString().trim()} CPUs, Node ${process.version}\n`,
  );
  for (let round = 1; round <= (SCALE_ONLY ? 0 : ROUNDS); round++) {
    // The order turns each round: no row always runs first (a cold start) or last (a warm, or throttled, machine).
    for (let k = 0; k < list.length; k++) {
      const s = list[(k + round - 1) % list.length]!;
      const sample = await measure(s, up.port, shadowUp.port, DURATION);
      samples.get(s.name)!.push(sample);
      process.stdout.write(`  round ${round} ${s.name}: ${Math.round(sample.rps)} req/s, p99 ${sample.p99.toFixed(2)} ms, ${sample.cpuUs.toFixed(1)} µs CPU/request${sample.errors ? `, ${sample.errors} errors` : ''}${sample.note ? `, ${sample.note}` : ''}\n`);
    }
  }
  const bare = median(samples.get('bare http-proxy + keep-alive agent')!.map((x) => x.rps));
  const bareP99 = median(samples.get('bare http-proxy + keep-alive agent')!.map((x) => x.p99));
  const bareRss = Math.max(...samples.get('bare http-proxy + keep-alive agent')!.map((x) => x.rssMb));
  const bareCpu = median(samples.get('bare http-proxy + keep-alive agent')!.map((x) => x.cpuUs));
  const rows = list.map((s) => {
    const xs = samples.get(s.name)!;
    const rps = median(xs.map((x) => x.rps));
    const p99 = median(xs.map((x) => x.p99));
    const rss = Math.max(...xs.map((x) => x.rssMb));
    const cpuUs = median(xs.map((x) => x.cpuUs));
    return { scenario: s.name, rps, p50: median(xs.map((x) => x.p50)), p99, peakRssMb: rss, cpuUs, errors: xs.reduce((n, x) => n + x.errors, 0), rpsRatio: rps / bare, p99Ratio: p99 / bareP99, rssRatio: rss / bareRss, cpuRatio: bareCpu / cpuUs };
  });
  // Tracing's targets compare two configurations of Strangler: also measured paired in time (see paired()).
  const comparisons: Paired[] = [];
  const byName = (name: string) => list.find((s) => s.name === name);
  // Full against itself first: the instrument's own spread on this machine, in this run.
  for (const name of ['Strangler full', 'Strangler full + tracing 10%', 'Strangler full + tracing 100%']) {
    const a = byName('Strangler full');
    const b = byName(name);
    if (a === undefined || b === undefined || byName('Strangler full + tracing 10%') === undefined) continue;
    const c = await paired(a, b, up.port, shadowUp.port, PAIRS, PAIR_SECONDS);
    comparisons.push(c);
    process.stdout.write(`  paired ${c.b} / ${c.a}: median ${c.ratio.toFixed(3)} (quartiles ${c.quartiles[0].toFixed(2)}–${c.quartiles[1].toFixed(2)}, all windows ${c.totalRatio.toFixed(3)}), ${c.cpuUsA.toFixed(1)} → ${c.cpuUsB.toFixed(1)} µs CPU/request\n`);
  }
  const scale = SHADOW_ONLY || MIGRATION_ONLY || REPLICAS_ONLY || WORKERS_ONLY || TLS_ONLY || TRACING_ONLY ? undefined : await scaleChecks(up.port);
  await stop(up.child);
  await stop(shadowUp.child);

  const fmt = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '–');
  let md = `| proxy (one core) | req/s | p50 ms | p99 ms | peak RSS MB | CPU µs/req | req/s vs bare | p99 vs bare | RSS vs bare | requests per CPU-second vs bare |\n|---|---|---|---|---|---|---|---|---|---|\n`;
  for (const r of rows) {
    const vs = r.scenario.startsWith('direct') ? ['', '', '', ''] : [fmt(r.rpsRatio, 2), fmt(r.p99Ratio, 2), fmt(r.rssRatio, 2), fmt(r.cpuRatio, 2)];
    md += `| ${r.scenario} | ${fmt(r.rps)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.peakRssMb)} | ${fmt(r.cpuUs, 1)} | ${vs.join(' | ')} |\n`;
  }
  const row = (name: string) => rows.find((r) => r.scenario === name)!;
  const full = row(TLS_ONLY ? 'Strangler full, HTTPS/1.1' : 'Strangler full');
  const targets: Array<[string, string, boolean]> = [];
  if (scale !== undefined) {
  md += `\n| scale check | value |\n|---|---|\n`;
  md += `| Strangler minimal, 10 routes | ${fmt(scale.rps10!)} req/s |\n| Strangler minimal, 10,000 routes | ${fmt(scale.rps10k!)} req/s (${fmt(scale.rps10k! / scale.rps10!, 2)} x) |\n`;
  md += `| Strangler minimal, 10,000 routes, 20% templates (the request matches a template) | ${fmt(scale.rps10kTemplates!)} req/s (${fmt(scale.rps10kTemplates! / scale.rps10!, 2)} x) |\n`;
  md += `| validate + swap a 10,000-route table | ${fmt(scale.swapMs!)} ms |\n| longest event-loop stall during that swap, under load | ${fmt(scale.stallMs!, 1)} ms |\n`;
  const minimal = row('Strangler minimal');
  targets.push(
    ['Strangler full ≥ 0.90 × bare req/s', fmt(full.rpsRatio, 2), full.rpsRatio >= 0.9],
    ['Strangler minimal ≥ 0.97 × bare req/s', fmt(minimal.rpsRatio, 2), minimal.rpsRatio >= 0.97],
    ['Strangler full p99 ≤ 1.3 × bare p99', fmt(full.p99Ratio, 2), full.p99Ratio <= 1.3],
    ['10,000 routes ≥ 0.95 × 10 routes req/s', fmt(scale.rps10k! / scale.rps10!, 2), scale.rps10k! / scale.rps10! >= 0.95],
    ['10,000 routes with 20% templates ≥ 0.95 × 10 routes req/s', fmt(scale.rps10kTemplates! / scale.rps10!, 2), scale.rps10kTemplates! / scale.rps10! >= 0.95],
    ['10,000-route swap stalls the event loop < 50 ms', `${fmt(scale.stallMs!, 1)} ms`, scale.stallMs! < 50],
    ['Strangler full peak RSS ≤ 1.25 × bare', fmt(full.rssRatio, 2), full.rssRatio <= 1.25],
  );
  }
  // Issue #17: migration counting (on in "full") against the same configuration with it off.
  const off = rows.find((r) => r.scenario === 'Strangler full, migration counting off');
  if (off) {
    targets.push(
      ['full (migration counting on) ≥ 0.97 × counting off req/s', fmt(full.rps / off.rps, 3), full.rps / off.rps >= 0.97],
      ['full CPU µs/request ≤ 1.03 × counting off', fmt(full.cpuUs / off.cpuUs, 3), full.cpuUs / off.cpuUs <= 1.03],
    );
  }
  // Issue #19: rate limits and Redis, against full in the same run.
  const rlLocal = rows.find((r) => r.scenario === 'Strangler full + rate limit (local)');
  const redisOn = rows.find((r) => r.scenario === 'Strangler full + Redis shared state');
  const rlRedis = rows.find((r) => r.scenario === 'Strangler full + rate limit (Redis)');
  if (rlLocal) targets.push(['full + rate limit (local) ≥ 0.95 × full req/s', fmt(rlLocal.rps / full.rps, 2), rlLocal.rps / full.rps >= 0.95]);
  if (redisOn) targets.push(['full + Redis shared state ≥ 0.97 × full req/s', fmt(redisOn.rps / full.rps, 2), redisOn.rps / full.rps >= 0.97]);
  if (rlRedis) targets.push(['full + rate limit (Redis) ≥ 0.85 × full req/s', fmt(rlRedis.rps / full.rps, 2), rlRedis.rps / full.rps >= 0.85]);
  // Issue #20: TLS termination against Caddy (the target) and nginx, the same certificate and TLS 1.3.
  for (const proto of ['HTTPS/1.1', 'HTTP/2']) {
    const caddy = rows.find((r) => r.scenario === `Caddy ${proto} reverse_proxy`);
    const minimal = rows.find((r) => r.scenario === `Strangler minimal, ${proto}`);
    const fullTls = rows.find((r) => r.scenario === `Strangler full, ${proto}`);
    if (caddy && minimal) targets.push([`Strangler minimal ${proto} ≥ 0.8 × Caddy req/s`, fmt(minimal.rps / caddy.rps, 2), minimal.rps / caddy.rps >= 0.8]);
    if (caddy && fullTls) targets.push([`Strangler full ${proto} ≥ 0.8 × Caddy req/s`, fmt(fullTls.rps / caddy.rps, 2), fullTls.rps / caddy.rps >= 0.8]);
  }
  // Issue #19: server.workers, both rows on every core (the load generator and the upstream share them).
  const oneAll = rows.find((r) => r.scenario === 'Strangler full, every core');
  const twoAll = rows.find((r) => r.scenario === 'Strangler full, workers: 2, every core');
  const reloading = rows.find((r) => r.scenario === 'Strangler full, workers: 2, every core, 20 reloads');
  if (oneAll && twoAll && reloading) {
    targets.push(
      ['workers: 2 CPU µs/request ≤ 1.15 × one process', fmt(twoAll.cpuUs / oneAll.cpuUs, 2), twoAll.cpuUs / oneAll.cpuUs <= 1.15],
      ['workers: 2, no request lost across 20 reloads (every round)', `${reloading.errors} errors`, reloading.errors === 0],
    );
    md += `\nworkers: 2 against one process, both on every core: ${fmt(twoAll.rps / oneAll.rps, 2)} × the requests per second (${fmt(twoAll.rps - oneAll.rps)} req/s more)\n`;
  }
  // Issue #21: tracing, exported to a local collector stand-in, against full without it.
  // The target reads the comparison paired in time; the rows, measured one after the other, are shown beside it.
  if (comparisons.length > 0) {
    md += `\n| paired in time (${PAIRS} windows of ${PAIR_SECONDS} s each, taken in turn) | req/s A | req/s B | B / A, median of pairs | quartiles | B / A, all windows | CPU µs/req A → B |\n|---|---|---|---|---|---|---|\n`;
    for (const c of comparisons) md += `| A ${c.a}, B ${c.b} | ${fmt(c.rpsA)} | ${fmt(c.rpsB)} | ${fmt(c.ratio, 3)} | ${fmt(c.quartiles[0], 2)}–${fmt(c.quartiles[1], 2)} | ${fmt(c.totalRatio, 3)} | ${fmt(c.cpuUsA, 1)} → ${fmt(c.cpuUsB, 1)} |\n`;
  }
  const t10 = rows.find((r) => r.scenario === 'Strangler full + tracing 10%');
  const t100 = rows.find((r) => r.scenario === 'Strangler full + tracing 100%');
  const p10 = comparisons.find((c) => c.b === 'Strangler full + tracing 10%');
  const p100 = comparisons.find((c) => c.b === 'Strangler full + tracing 100%');
  if (p10) targets.push(['full + tracing 10% ≥ 0.9 × full req/s (paired in time)', fmt(p10.ratio, 3), p10.ratio >= 0.9]);
  if (t100 && p100) {
    const cost = tracingCostUs();
    md += `\ntracing at 100%: ${fmt(p100.ratio, 2)} × full's req/s paired in time (rows one after the other: ${fmt(t100.rps / full.rps, 2)} ×), ${fmt(p100.cpuUsB - p100.cpuUsA, 1)} µs more CPU per request${p10 ? `; at 10%: ${fmt(p10.ratio, 3)} × (rows: ${t10 ? fmt(t10.rps / full.rps, 2) : '–'} ×), ${fmt(p10.cpuUsB - p10.cpuUsA, 1)} µs` : ''}\n`;
    md += `tracing alone, in process: ${fmt(cost.recorded, 1)} µs per recorded request on its own thread (2 spans recorded and handed over), ${fmt(cost.spanThread, 1)} µs on the span thread (made, batched and encoded), ${fmt(cost.unrecorded * 1000)} ns per request not recorded\n`;
  }
  // Issue #16: the parallel run's cost, against the same configuration without a shadow.
  const s10 = rows.find((r) => r.scenario === 'Strangler full + shadow 10%');
  const s100 = rows.find((r) => r.scenario === 'Strangler full + shadow 100%');
  if (s10 && s100) {
    targets.push(
      ['full + shadow 10% ≥ 0.85 × full req/s', fmt(s10.rps / full.rps, 2), s10.rps / full.rps >= 0.85],
      ['full + shadow 10% p99 ≤ 1.2 × full p99', fmt(s10.p99 / full.p99, 2), s10.p99 / full.p99 <= 1.2],
      ['full + shadow 100% p99 ≤ 1.3 × full p99', fmt(s100.p99 / full.p99, 2), s100.p99 / full.p99 <= 1.3],
      // maxConcurrent (64) × maxBodyBytes (1 MiB) × 2, the shadow's memory bound.
      ['full + shadow 100% peak RSS ≤ full + 128 MB', `${fmt(s100.peakRssMb - full.peakRssMb)} MB more`, s100.peakRssMb <= full.peakRssMb + 128],
    );
  }
  md += `\n| target (issues #7, #16, #17, #18, #19, #20, #21) | this run | met |\n|---|---|---|\n`;
  for (const [name, value, met] of targets) md += `| ${name} | ${value} | ${met ? 'yes' : 'no'} |\n`;
  if (rlLocal) md += `\nthe rate limiter alone, in process: ${limiterCostNs().toFixed(0)} ns per request (key, GCRA decision)\n`;
  if (off) md += `\nmigration counting alone, in process (${recordCostNs().map((x) => `${x.label}: ${x.ns.toFixed(0)} ns`).join(', ')} per request)\n`;
  process.stdout.write(`\n${md}`);
  if (SHADOW_ONLY || MIGRATION_ONLY || REPLICAS_ONLY || WORKERS_ONLY || TLS_ONLY || TRACING_ONLY) return;
  const out = join(ROOT, 'bench', 'results', 'latest.json');
  execFileSync('mkdir', ['-p', join(ROOT, 'bench', 'results')]);
  writeFileSync(
    out,
    JSON.stringify(
      { date: new Date().toISOString(), node: process.version, cpu: cpuModel(), rounds: ROUNDS, durationS: DURATION, warmupS: WARMUP, connections: CONNECTIONS, stranglerNodeFlags: START_FLAGS, loadGenerator: HAS_WRK ? 'wrk' : 'autocannon', upstream: up.kind, pinned: HAS_TASKSET, rows, comparisons, scale, targets: targets.map(([target, value, met]) => ({ target, value, met })) },
      null,
      2,
    ),
  );
  process.stdout.write(`\nJSON: ${out}\n`);
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (err: Error) => {
    process.stderr.write(`bench failed: ${err.stack ?? err.message}\n`);
    cleanup();
    process.exit(1);
  },
);
