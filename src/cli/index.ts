#!/usr/bin/env node
import { parseArgs } from 'node:util';

// Each command loads only what it uses: `start` never loads the YAML parser or
// the schema library on the gateway's thread (tables are read on a worker), so
// they take no memory in the running gateway.

const USAGE = `Usage:
  strangler start [--config FILE]            run the gateway (default ./routes.yaml, or $STRANGLER_CONFIG)
  strangler validate FILE                    check a route table: OK, or FILE:LINE:COL problems
  strangler explain --config FILE METHOD PATH [-H 'Name: value']... [--user ID]
                                             show which route, upstream and canary side would serve a request
  strangler diff OLD.yaml NEW.yaml           what an edit changes, in words (exit 1 if NEW is invalid)
  strangler pull [--redis URL | --config LOCAL] [--prefix P]
                                             print the table published in Redis (source: redis), first line "# strangler-version: V"
  strangler push FILE [--redis URL | --config LOCAL] [--prefix P] [--base VERSION]
                                             validate FILE and publish it if the live version is still the one it was
                                             pulled at (its first line, or --base); exit 1 with what changed meanwhile if not
  (the Redis: --config's state.redis (also a cluster or sentinels), --redis, or $REDIS_URL; --prefix: "strangler:")
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function configPath(flag: string | undefined): string {
  return flag ?? process.env.STRANGLER_CONFIG ?? 'routes.yaml';
}

async function validate(args: string[]): Promise<void> {
  const { formatProblem, loadTableFile } = await import('../config/load');
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string', short: 'c' } } });
  const file = positionals[0] ?? values.config;
  if (!file) fail(`strangler validate: which file?\n\n${USAGE}`);
  const result = loadTableFile(file, process.env);
  if (result.ok) {
    process.stdout.write('OK\n');
    const tls = result.table.config.server.tls;
    if (tls !== undefined) {
      // Checked (they load); a certificate near its end is worth a warning, not a failure.
      const { loadContexts } = await import('../tls/certificates');
      for (const c of loadContexts(tls).certificates) {
        const days = Math.floor((c.notAfter.getTime() - Date.now()) / 86_400_000);
        if (days < 14) process.stderr.write(`warning: ${c.name}: the certificate ${c.subject} ${days < 0 ? 'expired' : 'expires'} on ${c.notAfter.toISOString()}${days < 0 ? '' : ` (in ${days} days)`}\n`);
      }
    }
    return;
  }
  process.stdout.write(result.problems.map(formatProblem).join('\n') + '\n');
  process.exitCode = 1;
}

async function explainCommand(args: string[]): Promise<void> {
  const { formatProblem, loadTableFile } = await import('../config/load');
  const { explain } = await import('../routing/explain');
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, header: { type: 'string', short: 'H', multiple: true }, user: { type: 'string', short: 'u' } },
  });
  const [method, target] = positionals;
  if (!method || !target) fail(`strangler explain: METHOD and PATH are required\n\n${USAGE}`);
  const file = configPath(values.config);
  const result = loadTableFile(file, process.env);
  if (!result.ok) {
    process.stderr.write(result.problems.map(formatProblem).join('\n') + '\n');
    process.exit(1);
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':');
    if (colon <= 0) fail(`strangler explain: header "${h}" is not "Name: value"`);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  process.stdout.write(JSON.stringify(explain(result.table.config, method, target, headers, undefined, values.user), null, 2) + '\n');
}

async function diff(args: string[]): Promise<void> {
  const { formatProblem, loadTableFile } = await import('../config/load');
  const { diffTables, summarize } = await import('../routing/diff');
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const [oldFile, newFile] = positionals;
  if (!oldFile || !newFile) fail(`strangler diff: OLD and NEW files are required\n\n${USAGE}`);
  const before = loadTableFile(oldFile, process.env);
  const after = loadTableFile(newFile, process.env);
  if (!after.ok || !before.ok) {
    const problems = [...(before.ok ? [] : before.problems), ...(after.ok ? [] : after.problems)];
    process.stdout.write(problems.map(formatProblem).join('\n') + '\n');
    process.exitCode = 1;
    return;
  }
  const lines = summarize(diffTables(before.table.config, after.table.config));
  process.stdout.write(lines.length ? lines.join('\n') + '\n' : 'no changes\n');
}

async function start(args: string[]): Promise<void> {
  if (process.env.STRANGLER_WORKER !== undefined) {
    // A worker of server.workers: its primary sends the table.
    const { runWorker } = await import('../cluster/worker');
    return runWorker();
  }
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const { runGateway } = await import('./start');
  await runGateway(configPath(values.config)).catch((err: Error) => fail(err.message, 1));
}

/** The Redis a pull or push talks to: --config's state.redis (a cluster, sentinels), else --redis, else $REDIS_URL. */
async function tableStore(values: { redis?: string; prefix?: string; config?: string }): Promise<import('../state/tableStore').RedisTableStore> {
  if (values.config !== undefined) {
    const { formatProblem, peekLocal } = await import('../config/load');
    const local = peekLocal(values.config, process.env);
    if (!local.ok) fail(local.problems.map(formatProblem).join('\n'), 1);
    if (local.redis === undefined) fail(`${values.config} has no state.redis: which Redis?`, 1);
    const { RedisTableStore } = await import('../state/tableStore');
    return new RedisTableStore(values.prefix === undefined ? local.redis : { ...local.redis, keyPrefix: values.prefix });
  }
  const url = values.redis ?? process.env.REDIS_URL;
  if (!url) fail('which Redis? pass --redis URL, --config FILE (its state.redis) or set REDIS_URL');
  const { StateSchema } = await import('../config/schema');
  const parsed = StateSchema.safeParse({ redis: { url, ...(values.prefix === undefined ? {} : { keyPrefix: values.prefix }) } });
  if (!parsed.success || parsed.data.redis === undefined) fail(`--redis/--prefix: ${parsed.error?.issues.map((i) => i.message).join('; ') ?? 'invalid'}`);
  const { RedisTableStore } = await import('../state/tableStore');
  return new RedisTableStore(parsed.data.redis);
}

const VERSION_LINE = /^# strangler-version: (\S*)\r?\n/;

async function pull(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { redis: { type: 'string' }, prefix: { type: 'string' }, config: { type: 'string', short: 'c' } } });
  const store = await tableStore(values);
  try {
    const live = await store.get();
    if (live === undefined) {
      process.stderr.write(`nothing is published in ${store.where} yet: publish a table with strangler push FILE\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`# strangler-version: ${live.version}\n${live.text}`);
  } finally {
    store.close();
  }
}

async function push(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { redis: { type: 'string' }, prefix: { type: 'string' }, config: { type: 'string', short: 'c' }, base: { type: 'string' } } });
  const file = positionals[0];
  if (!file) fail(`strangler push: which file?\n\n${USAGE}`);
  const { readFileSync } = await import('node:fs');
  const { checkPublishable, formatProblem, loadTableText } = await import('../config/load');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    fail(`strangler push: cannot read ${file}: ${(err as Error).message}`);
  }
  // Every rule of a file reload, and no process-level keys; checked as written (the version line is a comment), so lines match the file.
  const loaded = loadTableText(text, file, process.env);
  const problems = [...(loaded.ok ? [] : loaded.problems), ...checkPublishable(text, file)];
  // The version it was pulled at is its first line (kept out of what is published), unless --base says otherwise.
  const line = VERSION_LINE.exec(text);
  if (line) text = text.slice(line[0].length);
  const base = values.base ?? line?.[1] ?? '';
  if (problems.length) {
    process.stdout.write(problems.map(formatProblem).join('\n') + '\n');
    process.exitCode = 1;
    return;
  }
  const store = await tableStore(values);
  try {
    const { userInfo, hostname } = await import('node:os');
    const r = await store.push(text, base, `${userInfo().username}@${hostname()}`);
    if (r.ok) {
      process.stdout.write(`published version ${r.version} to ${store.where}${base ? ` (was ${base})` : ''}\n`);
      return;
    }
    process.stdout.write(`refused: the live table is version ${r.current || '(none)'}, not ${base || '(none)'}: it changed since this file was pulled.\n`);
    if (r.baseText !== undefined && r.currentText !== undefined) {
      const { diffTables, summarize } = await import('../routing/diff');
      const before = loadTableText(r.baseText, 'base', process.env);
      const after = loadTableText(r.currentText, 'live', process.env);
      if (before.ok && after.ok) {
        const lines = summarize(diffTables(before.table.config, after.table.config));
        process.stdout.write(`published meanwhile:\n${lines.length ? lines.map((l) => `  ${l}`).join('\n') : '  no routing change'}\n`);
      }
    }
    process.stdout.write('pull the live table (strangler pull), make the edit again, and push that.\n');
    process.exitCode = 1;
  } finally {
    store.close();
  }
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { start, validate, explain: explainCommand, diff, pull, push };

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
else if (!Object.hasOwn(COMMANDS, command)) fail(`strangler: unknown command "${command}"\n\n${USAGE}`);
else COMMANDS[command]!(rest).catch((err: Error) => fail(`strangler: ${err.message}`));
