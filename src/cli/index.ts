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
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const { runGateway } = await import('./start');
  await runGateway(configPath(values.config)).catch((err: Error) => fail(err.message, 1));
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = { start, validate, explain: explainCommand, diff };

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
else if (!Object.hasOwn(COMMANDS, command)) fail(`strangler: unknown command "${command}"\n\n${USAGE}`);
else COMMANDS[command]!(rest).catch((err: Error) => fail(`strangler: ${err.message}`));
