import { useState } from 'preact/hooks';
import { download } from '../api';
import { num, usePoll, type PageProps } from '../poll';
import { DataTable, type Column } from '../table';

interface Template {
  method: string;
  template: string;
  route: string;
  count: number;
  maxOvercount: number;
  share: number;
  lastSeen: string;
  statuses: Record<string, number>;
  p95Ms: number | null;
}

interface Inventory {
  capacity: number;
  tracked: number;
  total: number;
  other: number;
  templates: Template[];
}

const COLUMNS: Column<Template>[] = [
  { label: 'Method', value: (t) => t.method },
  { label: 'Template', value: (t) => t.template, render: (t) => <code>{t.template}</code> },
  { label: 'Route', value: (t) => t.route },
  { label: 'Requests', value: (t) => t.count, render: (t) => num(t.count), numeric: true },
  { label: 'Share', value: (t) => t.share, render: (t) => `${t.share}%`, numeric: true },
  { label: '2xx', value: (t) => t.statuses['2xx'] ?? 0, render: (t) => num(t.statuses['2xx']), numeric: true },
  { label: '4xx', value: (t) => t.statuses['4xx'] ?? 0, render: (t) => num(t.statuses['4xx']), numeric: true },
  { label: '5xx', value: (t) => t.statuses['5xx'] ?? 0, render: (t) => num(t.statuses['5xx']), numeric: true },
  { label: 'p95 ms', value: (t) => t.p95Ms, render: (t) => num(t.p95Ms, 1), numeric: true },
  { label: 'Last seen', value: (t) => t.lastSeen, render: (t) => <time dateTime={t.lastSeen}>{new Date(t.lastSeen).toLocaleString()}</time> },
];

export function Inventory(props: PageProps) {
  const { data, error } = usePoll<Inventory>('/migration/inventory', 10_000, props);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  if (data === undefined) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  return (
    <>
      <h1>Legacy inventory</h1>
      <p>
        What the legacy upstreams still answer, as path templates (ids become <code>{'{int}'}</code>, <code>{'{uuid}'}</code>…): the most requested are the next candidates to carve out; ones
        not seen for long may be deleted. {num(data.total)} requests, {num(data.tracked)} templates tracked (at most {num(data.capacity)}), {num(data.other)} requests not attributed.
      </p>
      <p>
        <button type="button" onClick={() => download('/migration/inventory.csv', 'legacy-inventory.csv').catch((e: Error) => setFailed(e.message))}>
          Download CSV
        </button>
        {failed && <span role="alert" class="error"> {failed}</span>}
      </p>
      <DataTable label="templates" rows={data.templates} columns={COLUMNS} rowKey={(t) => `${t.method} ${t.template}`} initialSort={3} initialDesc />
    </>
  );
}
