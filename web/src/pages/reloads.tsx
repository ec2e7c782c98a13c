import { usePoll, type PageProps } from '../poll';

interface Reload {
  at: string;
  trigger: string;
  by?: string;
  outcome: string;
  version: string;
  previousVersion?: string;
  changes?: string[];
  problems?: string[];
}

export function Reloads(props: PageProps) {
  const { data, error } = usePoll<{ reloads: Reload[] }>('/reloads', 5000, props);
  if (data === undefined) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  return (
    <>
      <h1>Reloads</h1>
      <p class="muted">The last 50 attempts to load the route table, newest first.</p>
      {data.reloads.length === 0 ? (
        <p class="muted">No reload since the gateway started.</p>
      ) : (
        <ol class="history" aria-label="reloads">
          {data.reloads.map((r) => (
            <li class={r.outcome}>
              <p>
                <time dateTime={r.at}>{new Date(r.at).toLocaleString()}</time> · <strong>{r.outcome}</strong> · {r.trigger}
                {r.by ? ` by ${r.by}` : ''} · {r.previousVersion ? `${r.previousVersion} → ` : ''}
                {r.version}
              </p>
              {r.changes && r.changes.length > 0 && (
                <ul>
                  {r.changes.map((c) => (
                    <li>{c}</li>
                  ))}
                </ul>
              )}
              {r.problems && (
                <ul class="error">
                  {r.problems.map((p) => (
                    <li>{p}</li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}
