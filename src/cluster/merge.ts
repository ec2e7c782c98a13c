/**
 * Sums the admin API's per-worker answers (server.workers) into one, entry by
 * entry: counts add up; settings, percentages and latency quantiles take the
 * largest (a quantile cannot be summed: the largest is an upper bound);
 * breaker states take the worst; decisions every worker holds alike (a
 * rollback, the ramp position) are taken once; ratios are computed again
 * from the summed counts.
 */

/** Numbers that are settings, shares or quantiles, not counts. */
const NOT_SUMMED = /(percent|Percent|^p\d+$|Ms$|^step$|^current$|^share$|^port$|^max|^limit$|^burst$)/;
/** Values every worker holds alike (broadcast decisions): the first one is the answer. */
const SAME_EVERYWHERE = new Set(['rolledBack', 'ramp', 'urls', 'steps']);
/** Keys that name an entry of a list, to merge lists entry by entry. */
const IDENTITY = ['route', 'name', 'url', 'field', 'upstream'];
const STATE_ORDER = ['closed', 'half-open', 'open'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergeValues(key: string, values: unknown[]): unknown {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length === 0) return values.length > 0 && values.every((v) => v === null) ? null : values[0];
  if (SAME_EVERYWHERE.has(key)) return present[0];
  const first = present[0];
  if (typeof first === 'number') {
    const nums = present.filter((v): v is number => typeof v === 'number');
    return NOT_SUMMED.test(key) ? Math.max(...nums) : nums.reduce((a, b) => a + b, 0);
  }
  if (typeof first === 'boolean') return present.some((v) => v === true);
  if (typeof first === 'string') {
    if (key === 'state') return present.reduce((worst: string, v) => (STATE_ORDER.indexOf(String(v)) > STATE_ORDER.indexOf(worst) ? String(v) : worst), 'closed');
    return first;
  }
  if (Array.isArray(first)) return mergeLists(present.filter((v): v is unknown[] => Array.isArray(v)));
  if (isRecord(first)) return mergeRecords(present.filter(isRecord));
  return first;
}

function mergeRecords(records: Array<Record<string, unknown>>): Record<string, unknown> {
  const keys = new Set(records.flatMap((r) => Object.keys(r)));
  const out: Record<string, unknown> = {};
  for (const k of keys) out[k] = mergeValues(k, records.map((r) => r[k]));
  // Ratios again from the sums.
  if (typeof out.requests === 'number' && typeof out.failures === 'number' && 'errorPercent' in out) {
    out.errorPercent = out.requests === 0 ? 0 : Math.round((out.failures / out.requests) * 10_000) / 100;
  }
  if (typeof out.match === 'number' && typeof out.mismatch === 'number' && 'mismatchPercent' in out) {
    const decided = out.match + out.mismatch;
    out.mismatchPercent = decided === 0 ? null : Math.round((out.mismatch / decided) * 10_000) / 100;
  }
  return out;
}

function identityOf(list: unknown[]): string | undefined {
  const sample = list.find(isRecord);
  if (sample === undefined) return undefined;
  return IDENTITY.find((k) => typeof sample[k] === 'string' && list.every((e) => isRecord(e) && typeof e[k] === 'string'));
}

function mergeLists(lists: unknown[][]): unknown[] {
  const all = lists.flat();
  const id = identityOf(all);
  if (id === undefined) {
    // Lists of plain values (settings) are alike everywhere; lists of records without a name (samples) are joined.
    return all.some(isRecord) ? all : lists[0]!;
  }
  const groups = new Map<string, Array<Record<string, unknown>>>();
  for (const e of all as Array<Record<string, unknown>>) {
    const k = String(e[id]);
    const g = groups.get(k);
    if (g === undefined) groups.set(k, [e]);
    else g.push(e);
  }
  return [...groups.values()].map(mergeRecords);
}

/** One admin list (upstreams, canaries, shadows) from every worker's: entries merged by name, with how many workers answered for each. */
export function mergeStates(perWorker: Array<Array<Record<string, unknown>>>): Array<Record<string, unknown>> {
  return mergeLists(perWorker) as Array<Record<string, unknown>>;
}
