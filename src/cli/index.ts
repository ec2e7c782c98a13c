#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { formatProblem, loadTableFile } from '../config/load';
import { diffTables, summarize } from '../routing/diff';
import { explain } from '../routing/explain';
import { runGateway } from './start';

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

function validate(args: string[]): void {
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

function explainCommand(args: string[]): void {
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

function diff(args: string[]): void {
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

function start(args: string[]): void {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  runGateway(configPath(values.config)).catch((err: Error) => fail(err.message, 1));
}

const [command, ...rest] = process.argv.slice(2);
try {
  switch (command) {
    case 'start':
      start(rest);
      break;
    case 'validate':
      validate(rest);
      break;
    case 'explain':
      explainCommand(rest);
      break;
    case 'diff':
      diff(rest);
      break;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      break;
    default:
      fail(`strangler: unknown command "${command}"\n\n${USAGE}`);
  }
} catch (err) {
  fail(`strangler: ${(err as Error).message}`);
}
