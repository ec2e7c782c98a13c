import { useState } from 'preact/hooks';
import { api } from '../api';
import { num, pct, usePoll, type PageProps } from '../poll';

interface SideStats {
  requests: number;
  failures: number;
  errorPercent?: number | null;
  p95Ms?: number | null;
}

interface Canary {
  route: string;
  primary: string;
  canary: string;
  percent: number;
  effectivePercent: number;
  sticky: string;
  rolledBack: { at: string; reason: string } | null;
  ramp: { steps: number[]; step: number; current: number; nextStepAt: string | null; paused: unknown } | null;
  health: { primary: SideStats; canary: SideStats };
}

function Side(props: { name: string; s: SideStats }) {
  return (
    <td>
      {props.name}: {num(props.s.requests)} requests, {num(props.s.failures)} failed{props.s.errorPercent !== undefined ? ` (${pct(props.s.errorPercent)})` : ''}
      {props.s.p95Ms !== undefined && props.s.p95Ms !== null ? `, p95 ${num(props.s.p95Ms, 1)} ms` : ''}
    </td>
  );
}

export function Canaries(props: PageProps) {
  const { data, error, refresh } = usePoll<{ canaries: Canary[] }>('/canaries', 5000, props);
  const [message, setMessage] = useState<string | undefined>(undefined);
  if (data === undefined) return <p class={error ? 'error' : 'muted'}>{error ?? 'Loading…'}</p>;
  const reset = async (route: string) => {
    if (!confirm(`Reset the canary of ${route}? Its rollback is cleared and its ramp starts again at the first step.`)) return;
    try {
      await api(`/canaries/${encodeURIComponent(route)}/reset`, { method: 'POST' });
      setMessage(`Canary of ${route} reset.`);
      refresh();
    } catch (e) {
      setMessage(`Reset failed: ${(e as Error).message}`);
    }
  };
  return (
    <>
      <h1>Canaries</h1>
      {message && <p role="status">{message}</p>}
      {data.canaries.length === 0 ? (
        <p class="muted">No route has a canary.</p>
      ) : (
        <div class="scroll">
          <table aria-label="canaries">
            <thead>
              <tr>
                <th scope="col">Route</th>
                <th scope="col">Share</th>
                <th scope="col">Ramp</th>
                <th scope="col">Primary side</th>
                <th scope="col">Canary side</th>
                <th scope="col">State</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {data.canaries.map((c) => (
                <tr key={c.route}>
                  <td>{c.route}</td>
                  <td class="num">{c.effectivePercent}% → {c.canary}</td>
                  <td>{c.ramp === null ? 'no ramp' : `step ${c.ramp.step + 1} of ${c.ramp.steps.length} (${c.ramp.steps.join(', ')}%)${c.ramp.nextStepAt ? `, next ${new Date(c.ramp.nextStepAt).toLocaleTimeString()}` : ''}`}</td>
                  <Side name={c.primary} s={c.health.primary} />
                  <Side name={c.canary} s={c.health.canary} />
                  <td>{c.rolledBack ? <strong class="error">rolled back: {c.rolledBack.reason}</strong> : 'healthy'}</td>
                  <td>
                    <button type="button" onClick={() => void reset(c.route)} aria-label={`Reset the canary of ${c.route}`}>
                      Reset
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
