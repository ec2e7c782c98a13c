import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './servers';

/**
 * A real redis-server for one test file, on a free loopback port, with no
 * persistence; `stop()` ends it (and `start()` again brings it back on the
 * same port, for outage tests).
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  port = 0;

  /** `cluster`: a one-node Redis Cluster owning every slot (a real cluster protocol: MOVED, CLUSTER SLOTS, slot checks on scripts). */
  constructor(private readonly opts: { cluster?: boolean } = {}) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await closedPort();
    const bin = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
    const cluster = this.opts.cluster ? ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1', '--cluster-config-file', join(mkdtempSync(join(tmpdir(), 'strangler-redis-')), 'nodes.conf')] : [];
    this.child = spawn(bin, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...cluster], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    while (!(await this.answers())) {
      if (Date.now() > deadline) throw new Error(`redis-server did not start on ${this.port} (is it installed? .ci/run installs it)`);
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.opts.cluster) {
      await this.command('CLUSTER ADDSLOTSRANGE 0 16383');
      while (!(await this.command('CLUSTER INFO')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error('the one-node cluster did not become ready');
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private answers(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1', () => s.write('PING\r\n'));
      s.once('data', (d) => {
        resolve(d.toString().startsWith('+PONG'));
        s.destroy();
      });
      s.once('error', () => resolve(false));
    });
  }

  /** One inline command's raw reply (INFO, CONFIG…), read until the server pauses. */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let got = '';
      let quiet: NodeJS.Timeout | undefined;
      const s = connect(this.port, '127.0.0.1', () => s.write(`${line}\r\n`));
      s.on('data', (d) => {
        got += d.toString();
        // A status or error reply is one line.
        if (/^[+-][^\r]*\r\n$/.test(got)) {
          s.destroy();
          resolve(got);
          return;
        }
        // A bulk reply ($len\r\n…\r\n) is whole once its length is in.
        const m = /^\$(\d+)\r\n/.exec(got);
        if (m && Buffer.byteLength(got) >= m[0].length + Number(m[1]) + 2) {
          s.destroy();
          resolve(got);
          return;
        }
        // An array (or a null) reply: whole when the server pauses.
        if (/^[*$]/.test(got)) {
          clearTimeout(quiet);
          quiet = setTimeout(() => {
            s.destroy();
            resolve(got);
          }, 100);
        }
      });
      s.on('error', reject);
    });
  }

  /** How many times Redis ran a command since start (INFO commandstats). */
  async calls(command: string): Promise<number> {
    const info = await this.command('INFO commandstats');
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  }

  async stop(): Promise<void> {
    await killed(this.child);
    this.child = undefined;
  }
}

/** A real Redis Sentinel watching `master` as "mymaster" (quorum 1), on a free loopback port. */
export class TestSentinel {
  private child: ChildProcess | undefined;
  port = 0;

  constructor(private readonly master: TestRedis) {}

  get url(): string {
    return `redis-sentinel://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await closedPort();
    // A sentinel rewrites its configuration file: it gets one of its own.
    const conf = join(mkdtempSync(join(tmpdir(), 'strangler-sentinel-')), 'sentinel.conf');
    writeFileSync(conf, `port ${this.port}\nbind 127.0.0.1\nprotected-mode no\nsentinel monitor mymaster 127.0.0.1 ${this.master.port} 1\n`);
    const bin = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';
    this.child = spawn(bin, [conf, '--sentinel'], { stdio: 'ignore' });
    const probe = new TestRedis();
    probe.port = this.port;
    const deadline = Date.now() + 5000;
    for (;;) {
      const reply = await probe.command('SENTINEL get-master-addr-by-name mymaster').catch(() => '');
      if (reply.includes(String(this.master.port))) return;
      if (Date.now() > deadline) throw new Error(`the sentinel on ${this.port} does not know the master: ${reply}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    await killed(this.child);
  }
}

/** Kills a server process and waits for it to be gone. */
async function killed(c: ChildProcess | undefined): Promise<void> {
  if (c === undefined || c.exitCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await exited;
}
