/**
 * Path templates in a route's `path` (`/api/users/{id}`, `/files/{rest*}`,
 * `{id:int}`, `{slug:[a-z0-9-]+}`) and the `{name}` references of a
 * `rewrite`, parsed once when the table loads. Constraints are anchored and
 * must run in linear time: backreferences, lookarounds and nested quantifiers
 * are refused at validation, so no request can make matching slow.
 */

export type Constraint = (value: string) => boolean;

export interface ParamSegment {
  readonly param: string;
  /** `{name*}`: the rest of the path, possibly empty; only last. */
  readonly rest: boolean;
  readonly constraint: string | null;
  readonly test: Constraint | null;
}

export type Segment = { readonly literal: string } | ParamSegment;

export interface PathTemplate {
  readonly source: string;
  /** The segments after the leading `/`. */
  readonly segments: readonly Segment[];
  readonly literalCount: number;
  readonly params: readonly string[];
  readonly rest: boolean;
}

const NAMED: Record<string, RegExp> = {
  int: /^\d+$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
  hex: /^[0-9a-fA-F]+$/,
  alpha: /^[A-Za-z]+$/,
};

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Whether a path has template syntax (a route path without braces is a plain prefix or exact path). */
export function isTemplate(path: string): boolean {
  return path.includes('{');
}

/**
 * A constraint's test, or the reason it is refused. Named ones (`int`, `uuid`,
 * `hex`, `alpha`) or a regular expression matched against the whole value.
 */
export function compileConstraint(spec: string): Constraint | string {
  const named = NAMED[spec];
  if (named !== undefined) return (v) => named.test(v);
  const unsafe = unsafeRegex(spec);
  if (unsafe !== null) return unsafe;
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${spec})$`, 'u');
  } catch (err) {
    return `"${spec}" is not a valid regular expression (${(err as Error).message})`;
  }
  return (v) => re.test(v);
}

/**
 * Why a pattern could take more than linear time, or null: backreferences,
 * lookarounds, and a quantified group that itself contains a quantifier
 * (`(a+)+`, `(?:a|b*)*`), the shapes behind catastrophic backtracking.
 */
export function unsafeRegex(spec: string): string | null {
  if (/\\[1-9]|\\k</.test(spec)) return `"${spec}": backreferences are not allowed (matching must take linear time)`;
  if (/\(\?<?[=!]/.test(spec)) return `"${spec}": lookarounds are not allowed (matching must take linear time)`;
  // Find each group and whether it holds a quantifier; a quantifier right after such a group nests them.
  const stack: boolean[] = [];
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '[') {
      // A character class: quantifier characters inside it are literals.
      const end = classEnd(spec, i);
      i = end;
      continue;
    }
    if (c === '(') stack.push(false);
    else if (c === ')') {
      const quantifiedInside = stack.pop() ?? false;
      const next = spec[i + 1];
      const quantifiedAfter = next === '*' || next === '+' || next === '?' || next === '{';
      if (quantifiedInside && quantifiedAfter) return `"${spec}": nested quantifiers are not allowed (matching must take linear time)`;
      if (stack.length > 0 && (quantifiedInside || quantifiedAfter)) stack[stack.length - 1] = true;
    } else if ((c === '*' || c === '+' || c === '{') && stack.length > 0) stack[stack.length - 1] = true;
  }
  return null;
}

function classEnd(spec: string, start: number): number {
  for (let i = start + 1; i < spec.length; i++) {
    if (spec[i] === '\\') i++;
    else if (spec[i] === ']' && i > start + 1) return i;
  }
  return spec.length;
}

/** Splits `a/{x:[a-z]{2}}/b` on slashes outside braces. */
function splitSegments(path: string): string[] | string {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of path) {
    if (c === '{') depth++;
    else if (c === '}') depth--;
    if (depth < 0) return 'a "}" without its "{"';
    if (c === '/' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  if (depth !== 0) return 'a "{" without its "}"';
  out.push(cur);
  return out;
}

/** Parses a template path; a string is the reason it is refused. */
export function parseTemplate(path: string): PathTemplate | string {
  if (!path.startsWith('/')) return 'must start with "/"';
  const parts = splitSegments(path.slice(1));
  if (typeof parts === 'string') return parts;
  const segments: Segment[] = [];
  const params: string[] = [];
  let literalCount = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (!part.includes('{')) {
      if (part.includes('}')) return `segment "${part}": a "}" without its "{"`;
      segments.push({ literal: part });
      literalCount++;
      continue;
    }
    const m = /^\{([^{}:]+?)(\*)?(?::(.+))?\}$/s.exec(part);
    if (!m) return `segment "${part}": a parameter is a whole segment, {name}, {name:constraint} or {name*}`;
    const [, name, star, constraint] = m;
    if (!PARAM_NAME.test(name!)) return `"${name}" is not a parameter name (letters, digits and _, not starting with a digit)`;
    if (params.includes(name!)) return `parameter "${name}" appears twice`;
    const rest = star === '*';
    if (rest && i !== parts.length - 1) return `{${name}*} takes the rest of the path, so it must be the last segment`;
    if (rest && constraint !== undefined) return `{${name}*} takes the rest of the path and cannot have a constraint`;
    let test: Constraint | null = null;
    if (constraint !== undefined) {
      const compiled = compileConstraint(constraint);
      if (typeof compiled === 'string') return `parameter "${name}": ${compiled}`;
      test = compiled;
    }
    segments.push({ param: name!, rest, constraint: constraint ?? null, test });
    params.push(name!);
  }
  return { source: path, segments, literalCount, params, rest: segments.length > 0 && 'param' in segments[segments.length - 1]! && (segments[segments.length - 1] as ParamSegment).rest };
}

/** A value template (`/v2/users/{id}`, `{tenant}-{id}`): literal text and parameter references. */
export type ValueTemplate = ReadonlyArray<string | { ref: string }>;

/** Parses `{name}` references; a string is the reason it is refused. */
export function parseValueTemplate(text: string): ValueTemplate | string {
  const out: Array<string | { ref: string }> = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{', i);
    if (open === -1) {
      out.push(text.slice(i));
      break;
    }
    if (open > i) out.push(text.slice(i, open));
    const close = text.indexOf('}', open);
    if (close === -1) return `a "{" without its "}" in "${text}"`;
    const name = text.slice(open + 1, close);
    if (!PARAM_NAME.test(name)) return `"{${name}}" in "${text}" is not a parameter reference ({name})`;
    out.push({ ref: name });
    i = close + 1;
  }
  if (out.some((p) => typeof p === 'string' && p.includes('}'))) return `a "}" without its "{" in "${text}"`;
  return out;
}

/** The names a value template refers to. */
export function references(t: ValueTemplate): string[] {
  return t.flatMap((p) => (typeof p === 'string' ? [] : [p.ref]));
}

/** Fills a value template from a lookup (header values: `{requestId}` and the captured parameters). */
export function fillBy(t: ValueTemplate, lookup: (name: string) => string | undefined): string {
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : (lookup(p.ref) ?? '');
  return out;
}

/** Fills a value template from captured parameters (missing ones are empty). */
export function fill(t: ValueTemplate, params: ReadonlyMap<string, string>): string {
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : (params.get(p.ref) ?? '');
  return out;
}

/**
 * Matches a path's segments (after the leading `/`, split on `/`) against a
 * template, capturing parameters into `into`; false when it does not match.
 */
export function matchTemplate(t: PathTemplate, segments: readonly string[], into: Map<string, string>): boolean {
  const ts = t.segments;
  if (t.rest ? segments.length < ts.length - 1 : segments.length !== ts.length) return false;
  for (let i = 0; i < ts.length; i++) {
    const s = ts[i]!;
    if ('literal' in s) {
      if (segments[i] !== s.literal) return false;
      continue;
    }
    if (s.rest) {
      // Empty segments inside the rest (a `;param` segment reads as one when matching) are dropped:
      // a rest never starts with `/`, so `/{rest}` can never become `//host` (a redirect off-site).
      const rest = segments.slice(i);
      into.set(s.param, rest.filter((seg, k) => seg !== '' || k === rest.length - 1).join('/'));
      return true;
    }
    const v = segments[i]!;
    if (v === '' || (s.test !== null && !s.test(v))) return false;
    into.set(s.param, v);
  }
  return true;
}

/**
 * Whether two templates can match the same path with the same precedence
 * (as many literal segments, same length or both taking the rest): a tie the
 * matcher could not decide, refused at validation. Constraints are not
 * compared (two different ones may still both accept a value).
 */
export function ambiguous(a: PathTemplate, b: PathTemplate): boolean {
  if (a.literalCount !== b.literalCount || a.rest !== b.rest) return false;
  if (!a.rest && a.segments.length !== b.segments.length) return false;
  const n = Math.min(a.segments.length, b.segments.length);
  if (a.rest && a.segments.length !== b.segments.length) return false;
  for (let i = 0; i < n; i++) {
    const x = a.segments[i]!;
    const y = b.segments[i]!;
    if ('literal' in x && 'literal' in y && x.literal !== y.literal) return false;
    // Same constraint text on both, or none: the same values.
    if ('param' in x && 'param' in y && x.constraint !== y.constraint && x.constraint !== null && y.constraint !== null) return false;
  }
  return true;
}

/** One header or query condition of a route. */
export interface Condition {
  readonly kind: 'header' | 'query';
  /** Lower-case for headers; as written for query parameters. */
  readonly name: string;
  /** `present`: any value; `exact`: this value; `template`: a constrained value captured as `param`. */
  readonly test: { present: true } | { exact: string } | { param: string; check: Constraint | null };
}


/** A `match` condition's value: `present`, a whole `{name}` or `{name:constraint}` (captured), or an exact value. */
export function parseCondition(kind: 'header' | 'query', name: string, value: string): Condition | string {
  if (value === 'present') return { kind, name: kind === 'header' ? name.toLowerCase() : name, test: { present: true } };
  const m = /^\{([A-Za-z_][A-Za-z0-9_]*)(?::(.+))?\}$/s.exec(value);
  if (m === null) return { kind, name: kind === 'header' ? name.toLowerCase() : name, test: { exact: value } };
  let check: Constraint | null = null;
  if (m[2] !== undefined) {
    const c = compileConstraint(m[2]);
    if (typeof c === 'string') return c;
    check = c;
  }
  return { kind, name: kind === 'header' ? name.toLowerCase() : name, test: { param: m[1]!, check } };
}

