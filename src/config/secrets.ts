import { isPair, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Scalar } from 'yaml';
import type { ConfigProblem } from './problem';
import { CREDENTIAL_URL, isSecretPath, SECRET_KEY } from './secretKeys';

/**
 * Secrets in a route table's YAML text, for the console: shown as `"***"`,
 * and put back from the file when an edit leaves them as `***`. The text is
 * spliced at the secret scalars' positions, so every other byte (comments,
 * layout, quoting) stays as written.
 */

export const MASK = '***';

interface SecretScalar {
  /** Where it sits: `auth.jwt.secret`, `routes.3.token`. */
  path: string;
  start: number;
  end: number;
  value: unknown;
  line: number;
  col: number;
}

function secretScalars(text: string): { doc: Document; secrets: SecretScalar[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  const secrets: SecretScalar[] = [];
  visit(doc, {
    // A secret is the value of a secret-named key, or a URL with a password in it (state.redis.url, an upstream's url).
    Scalar(_key, node: Scalar, ancestors) {
      if (node.range === undefined || node.range === null) return;
      const parent = ancestors[ancestors.length - 1];
      if (isPair(parent) && parent.key === node) return;
      const path: string[] = [];
      let child: unknown = node;
      // Ancestors run from the document down: each map pair adds its key, each sequence the item's index.
      for (let i = ancestors.length - 1; i >= 0; i--) {
        const a = ancestors[i];
        if (isPair(a) && isScalar(a.key)) path.unshift(String(a.key.value));
        else if (isSeq(a)) path.unshift(String(a.items.indexOf(child as never)));
        child = a;
      }
      const named = (isPair(parent) && parent.value === node && isScalar(parent.key) && SECRET_KEY.test(String(parent.key.value))) || isSecretPath(path);
      // (A `***` anywhere is a masked one, to put back.)
      if (!named && node.value !== MASK && !(typeof node.value === 'string' && CREDENTIAL_URL.test(node.value))) return;
      const [start, end] = node.range;
      const at = lines.linePos(start);
      secrets.push({ path: path.join('.'), start, end, value: node.value, line: at.line, col: at.col });
    },
  });
  return { doc, secrets };
}

/** `${ENV}` references are names, not secrets: they stay visible. */
function isReference(value: unknown): boolean {
  return typeof value === 'string' && /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(value);
}

/** The text with every literal secret value replaced by `"***"`. */
export function maskSecrets(text: string): string {
  let secrets: SecretScalar[];
  try {
    secrets = secretScalars(text).secrets;
  } catch {
    return text;
  }
  let out = text;
  for (const s of [...secrets].reverse()) {
    if (isReference(s.value) || s.value === MASK) continue;
    out = out.slice(0, s.start) + `"${MASK}"` + out.slice(s.end);
  }
  return out;
}

/**
 * An edited text whose secrets may still be `***`: each is put back from the
 * same place (key path) in `original`; one with no original value is a problem.
 */
export function restoreSecrets(edited: string, original: string, file: string): { ok: true; text: string } | { ok: false; problems: ConfigProblem[] } {
  let mine: SecretScalar[];
  try {
    mine = secretScalars(edited).secrets;
  } catch {
    // Not YAML: the load that follows reports it at its place.
    return { ok: true, text: edited };
  }
  if (!mine.some((s) => s.value === MASK)) return { ok: true, text: edited };
  let theirs: Map<string, SecretScalar>;
  try {
    theirs = new Map(secretScalars(original).secrets.map((s) => [s.path, s]));
  } catch {
    theirs = new Map();
  }
  const problems: ConfigProblem[] = [];
  let out = edited;
  for (const s of [...mine].reverse()) {
    if (s.value !== MASK) continue;
    const was = theirs.get(s.path);
    if (was === undefined || was.value === MASK) {
      problems.push({ file, line: s.line, col: s.col, message: `${s.path} is masked (***) and the saved table has no value there to keep: type the value, or better \${AN_ENV_VAR}` });
      continue;
    }
    out = out.slice(0, s.start) + original.slice(was.start, was.end) + out.slice(s.end);
  }
  return problems.length > 0 ? { ok: false, problems: problems.reverse() } : { ok: true, text: out };
}
