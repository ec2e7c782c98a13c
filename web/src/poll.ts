import { useEffect, useState } from 'preact/hooks';
import { api, Unauthorized } from './api';

export interface PageProps {
  onUnauthorized: () => void;
}

/** Asks the admin API now and every `ms` after (live pages), keeping the last good answer. */
export function usePoll<T>(path: string, ms: number, props: PageProps): { data: T | undefined; error: string | undefined; refresh: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let alive = true;
    const load = () =>
      api<T>(path).then(
        (d) => {
          if (!alive) return;
          setData(d);
          setError(undefined);
        },
        (err: Error) => {
          if (!alive) return;
          if (err instanceof Unauthorized) props.onUnauthorized();
          else setError(err.message);
        },
      );
    void load();
    const timer = ms > 0 ? setInterval(load, ms) : undefined;
    return () => {
      alive = false;
      if (timer) clearInterval(timer);
    };
  }, [path, ms, tick]);
  return { data, error, refresh: () => setTick((t) => t + 1) };
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `${v.toFixed(v >= 10 ? 0 : 1)}%`;
}

export function num(v: number | null | undefined, digits = 0): string {
  return v === null || v === undefined ? '–' : v.toLocaleString('en', { maximumFractionDigits: digits });
}
