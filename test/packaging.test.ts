import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

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

/** The Dockerfile's last stage: its instructions, continuation lines joined. */
function runtimeStage(): string[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const stages = text.split(/^FROM /m);
  return stages[stages.length - 1]!.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('the Docker image, checked without a container engine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'strangler-image-'));
  let gateway: ChildProcess | undefined;
  let upstream: Server | undefined;
  afterAll(async () => {
    gateway?.kill('SIGKILL');
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('runs as a non-root user, with a HEALTHCHECK, from a production-only install', () => {
    const stage = runtimeStage();
    const user = stage.find((l) => l.startsWith('USER '));
    expect(user).toBeDefined();
    expect(user!.slice(5).trim()).not.toMatch(/^(root|0)(:|$)/);
    expect(stage.some((l) => l.startsWith('HEALTHCHECK '))).toBe(true);
    const install = stage.find((l) => l.startsWith('RUN ') && l.includes('npm ci'));
    expect(install).toMatch(/--omit=dev/);
    // Only the compiled gateway is copied from the build stage.
    expect(stage.filter((l) => l.startsWith('COPY --from=build')).map((l) => l.split(/\s+/)[2])).toEqual(['/app/dist/src']);
  });

  test('the production install the Dockerfile makes starts the CLI, serves, and passes the image\'s health check', async () => {
    const stage = runtimeStage();
    // The Dockerfile's own install command (its cache clean-up aside), in a clean folder holding only the manifests.
    const install = stage.find((l) => l.startsWith('RUN ') && l.includes('npm ci'))!.slice(4).split('&&')[0]!.trim();
    cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    cpSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
    const npm = spawnSync('sh', ['-c', `${install} --prefer-offline`], { cwd: dir, encoding: 'utf8', timeout: 240_000, env: { ...process.env, NODE_ENV: 'production' } });
    expect(npm.status).toBe(0);
    for (const dev of ['typescript', 'jest', 'ts-jest', '@types/node', 'playwright-core']) expect(existsSync(join(dir, 'node_modules', dev))).toBe(false);
    for (const dep of ['http-proxy', 'koa', 'yaml', 'pino', 'opossum', '@opentelemetry/sdk-trace-base']) expect(existsSync(join(dir, 'node_modules', dep))).toBe(true);
    cpSync(join(ROOT, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
    const du = spawnSync('du', ['-sm', join(dir, 'node_modules'), join(dir, 'dist')], { encoding: 'utf8' });
    const mb = du.stdout.split('\n').filter(Boolean).reduce((sum, l) => sum + Number(l.split(/\s+/)[0]), 0);
    // The gateway's layer above the base image (stated in docs/operations.md#docker).
    process.stdout.write(`image layer: production node_modules + dist/src = ${mb} MB\n`);
    expect(mb).toBeLessThan(80);

    upstream = createServer((_req, res) => res.end('from the upstream'));
    await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
    const port = await freePort();
    writeTable(dir, (upstream.address() as AddressInfo).port);
    // ENTRYPOINT and CMD as the image runs them, with its environment.
    const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(stage.join('\n'))![1]!) as string[];
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(stage.join('\n'))![1]!) as string[];
    const env = { ...process.env, NODE_ENV: 'production', STRANGLER_CONFIG: join(dir, 'routes.yaml'), PORT: String(port) };
    gateway = spawn(process.execPath, [...entry.slice(1), ...cmd], { cwd: dir, env, stdio: 'ignore' });
    const healthcheck = stage.find((l) => l.startsWith('HEALTHCHECK '))!.replace(/^HEALTHCHECK .*?CMD /, '');
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      await new Promise((r) => setTimeout(r, 100));
      healthy = spawnSync('sh', ['-c', healthcheck], { env, timeout: 5000 }).status === 0;
    }
    expect(healthy).toBe(true);
    const body = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/hello' }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(body).toBe('from the upstream');
    // And the health check fails once the gateway is gone.
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway!.once('exit', r));
    expect(spawnSync('sh', ['-c', healthcheck], { env, timeout: 5000 }).status).not.toBe(0);
  }, 300_000);
});

function writeTable(dir: string, upstreamPort: number): void {
  writeFileSync(join(dir, 'routes.yaml'), `upstreams: { app: { url: "http://127.0.0.1:${upstreamPort}" } }\nroutes: [ { name: all, path: /, upstream: app } ]\n`);
}
