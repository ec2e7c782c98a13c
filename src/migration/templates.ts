/**
 * Path templates: `/orders/48213/items/9` -> `/orders/{int}/items/{int}`, so
 * the legacy inventory counts endpoints, not URLs. Explicit patterns from
 * `migration.templates` win; otherwise each segment that looks like an id
 * becomes a placeholder.
 */

const INT = /^\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** 12 or more hex digits with at least one digit (object ids, hashes; not a word like `facade`). */
const HEX = /^(?=[a-f]*\d)[0-9a-f]{12,}$/i;
const DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;
const EMAIL = /^[^@\s/]+(?:@|%40)[^@\s/]+\.[^@\s/.]+$/i;
/** 20 or more URL-safe characters mixing letters and digits: API keys, session ids, base64url blobs, JWTs. */
const TOKEN = /^(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_.~+=-]{20,}$/;

/** The placeholder for one path segment, or the segment itself when it looks like a name. */
export function templateSegment(segment: string): string {
  if (segment === '') return segment;
  const c = segment.charCodeAt(0);
  const digitFirst = c >= 48 && c <= 57;
  if (digitFirst && INT.test(segment)) return '{int}';
  if (segment.length === 36 && UUID.test(segment)) return '{uuid}';
  if (digitFirst && DATE.test(segment)) return '{date}';
  if (segment.length >= 12 && HEX.test(segment)) return '{hex}';
  if (segment.includes('@') || segment.includes('%40')) return EMAIL.test(segment) ? '{email}' : segment;
  if (segment.length >= 20 && TOKEN.test(segment)) return '{token}';
  return segment;
}

/** One `migration.templates` pattern, split into segments; `{name}` matches any one segment. */
interface Pattern {
  readonly text: string;
  readonly segments: ReadonlyArray<string | null>;
}

/**
 * Turns normalised paths into templates. Built once per table; `template()`
 * runs for each request answered by a legacy upstream.
 */
export class PathTemplater {
  /** Explicit patterns by segment count, in the order they were listed. */
  private readonly bySize = new Map<number, Pattern[]>();

  constructor(patterns: readonly string[] = []) {
    for (const text of patterns) {
      const segments = text.split('/').map((s) => (/^\{[^{}/]+\}$/.test(s) ? null : s));
      const list = this.bySize.get(segments.length) ?? [];
      list.push({ text, segments });
      this.bySize.set(segments.length, list);
    }
  }

  template(path: string): string {
    const parts = path.split('/');
    const explicit = this.bySize.get(parts.length);
    if (explicit !== undefined) {
      for (const p of explicit) if (matches(p, parts)) return p.text;
    }
    let changed = false;
    for (let i = 1; i < parts.length; i++) {
      const t = templateSegment(parts[i]!);
      if (t !== parts[i]) {
        parts[i] = t;
        changed = true;
      }
    }
    return changed ? parts.join('/') : path;
  }
}

function matches(p: Pattern, parts: string[]): boolean {
  for (let i = 0; i < parts.length; i++) {
    const want = p.segments[i];
    if (want !== null && want !== parts[i]) return false;
    // A placeholder matches one non-empty segment.
    if (want === null && parts[i] === '') return false;
  }
  return true;
}
