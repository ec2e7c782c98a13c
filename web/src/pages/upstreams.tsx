import { num, usePoll, type PageProps } from '../poll';
import { DataTable, type Column } from '../table';

interface Instance {
  url: string;
  inFlight: number;
  ejected: boolean;
  ejectedForMs: number;
  consecutiveFailures: number;
}

interface Upstream {
  name: string;
  inFlight: number;
  openConnections: number;
  breaker: { enabled: boolean; state: string; failures?: number; requests?: number };
  instances: Instance[];
  ejections: number;
}

interface Transition {
  at: string;
  upstream: string;
  from: string;
  to: string;
}

const COLUMNS: Column<Upstream>[] = [
  { label: 'Upstream', value: (u) => u.name },
  { label: 'Breaker', value: (u) => u.breaker.state, render: (u) => <span class={`breaker ${u.breaker.state}`}>{u.breaker.enabled ? u.breaker.state : 'off'}</span> },
  {
    label: 'Instances',
    value: (u) => u.instances.length,
    render: (u) => (
      <ul class="plain">
        {u.instances.map((i) => (
          <li>
            <code>{i.url}</code> {i.ejected ? <strong class="error">ejected for {Math.ceil(i.ejectedForMs / 1000)} s</strong> : 'in rotation'}, {i.inFlight} in flight
          </li>
        ))}
      </ul>
    ),
  },
  { label: 'Ejections', value: (u) => u.ejections, render: (u) => num(u.ejections), numeric: true },
  { label: 'In flight', value: (u) => u.inFlight, numeric: true },
  { label: 'Connections', value: (u) => u.openConnections, numeric: true },
];

export function Upstreams(props: PageProps) {
  const { data, error } = usePoll<{ upstreams: Upstream[]; breakerHistory: Transition[] }>('/upstreams', 5000, props);
  if (data === undefined) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  return (
    <>
      <h1>Upstreams</h1>
      <DataTable label="upstreams" rows={data.upstreams} columns={COLUMNS} rowKey={(u) => u.name} />
      <h2>Breaker history</h2>
      {data.breakerHistory.length === 0 ? (
        <p class="muted">No breaker has changed state since the gateway started.</p>
      ) : (
        <ol class="history">
          {data.breakerHistory.map((t) => (
            <li>
              <time dateTime={t.at}>{new Date(t.at).toLocaleString()}</time> <strong>{t.upstream}</strong>: {t.from} → <span class={`breaker ${t.to}`}>{t.to}</span>
            </li>
          ))}
        </ol>
      )}
    </>
  );
}
