import { ShareChart } from '../chart';
import { num, pct, usePoll, type PageProps } from '../poll';
import { DataTable, type Column } from '../table';

interface Traffic {
  legacy: number;
  new: number;
  errors: number;
  legacyPercent: number | null;
  perSecond?: number;
}

interface RouteRow {
  route: string;
  path: string;
  upstream: string;
  side: 'legacy' | 'new';
  canary: { upstream: string; side: string; percent: number; rolledBack: boolean } | null;
  shadow: { upstream: string; mismatchPercent: number | null; compared: number } | null;
  breakers: Array<{ upstream: string; state: string }>;
  now: Traffic | null;
  last24h: Traffic | null;
  p95Ms: number | null;
}

interface Migration {
  version: string;
  legacyUpstreams: string[];
  now: Traffic & { windowMinutes: number };
  last24h: Traffic & { users: { legacy: number; new: number } };
  hourly: Array<Traffic & { hour: string }>;
  routes: RouteRow[];
}

const errorPercent = (t: Traffic | null) => (t === null || t.legacy + t.new === 0 ? null : (t.errors / (t.legacy + t.new)) * 100);

const COLUMNS: Column<RouteRow>[] = [
  { label: 'Route', value: (r) => r.route },
  { label: 'Path', value: (r) => r.path, render: (r) => <code>{r.path}</code> },
  { label: 'Upstream', value: (r) => `${r.upstream} ${r.side}`, render: (r) => <span class={`side ${r.side}`}>{r.upstream} ({r.side})</span> },
  {
    label: 'Canary',
    value: (r) => (r.canary === null ? null : r.canary.percent),
    render: (r) => (r.canary === null ? '–' : r.canary.rolledBack ? `rolled back (${r.canary.upstream})` : `${r.canary.percent}% → ${r.canary.upstream}`),
    numeric: true,
  },
  { label: 'Shadow mismatch', value: (r) => r.shadow?.mismatchPercent ?? null, render: (r) => (r.shadow === null ? '–' : `${pct(r.shadow.mismatchPercent)} of ${num(r.shadow.compared)}`), numeric: true },
  { label: 'Breakers', value: (r) => r.breakers.map((b) => `${b.upstream}:${b.state}`).join(' '), render: (r) => r.breakers.map((b) => <span class={`breaker ${b.state}`}>{b.upstream}: {b.state}</span>) },
  { label: 'Legacy share', value: (r) => r.now?.legacyPercent ?? null, render: (r) => pct(r.now?.legacyPercent), numeric: true },
  { label: 'req/s', value: (r) => r.now?.perSecond ?? 0, render: (r) => num(r.now?.perSecond, 2), numeric: true },
  { label: 'Errors', value: (r) => errorPercent(r.now), render: (r) => pct(errorPercent(r.now)), numeric: true },
  { label: 'p95 ms', value: (r) => r.p95Ms, render: (r) => num(r.p95Ms, 1), numeric: true },
];

export function Overview(props: PageProps) {
  const { data, error } = usePoll<Migration>('/migration?inventory=none', 5000, props);
  if (data === undefined) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const all24 = data.last24h.legacy + data.last24h.new;
  return (
    <>
      <h1>Migration overview</h1>
      {error && <p role="alert" class="error">Last update failed: {error}</p>}
      <section class="cards" aria-label="Migration share">
        <div class="card">
          <h2>Legacy share now</h2>
          <p class="big" data-testid="share-now">{pct(data.now.legacyPercent)}</p>
          <p class="muted">of {num(data.now.legacy + data.now.new)} requests in the last {data.now.windowMinutes} minutes</p>
        </div>
        <div class="card">
          <h2>Last 24 hours</h2>
          <p class="big" data-testid="share-24h">{pct(data.last24h.legacyPercent)}</p>
          <p class="muted">{num(data.last24h.legacy)} legacy, {num(data.last24h.new)} new of {num(all24)}</p>
        </div>
        <div class="card">
          <h2>Users (24 h, estimated)</h2>
          <p class="big">{num(data.last24h.users.new)}</p>
          <p class="muted">on new services; {num(data.last24h.users.legacy)} on legacy</p>
        </div>
        <div class="card">
          <h2>Legacy upstreams</h2>
          <p>{data.legacyUpstreams.length === 0 ? 'none (set migration.legacy)' : data.legacyUpstreams.join(', ')}</p>
          <p class="muted">table version {data.version}</p>
        </div>
      </section>
      <section aria-labelledby="chart-title">
        <h2 id="chart-title">Requests per hour</h2>
        <ShareChart hours={data.hourly} />
      </section>
      <section aria-labelledby="routes-title">
        <h2 id="routes-title">Routes</h2>
        <DataTable label="routes" rows={data.routes} columns={COLUMNS} rowKey={(r) => r.route} initialSort={7} initialDesc />
      </section>
    </>
  );
}
