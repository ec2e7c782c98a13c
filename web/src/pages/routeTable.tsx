import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, Unauthorized } from '../api';
import { TableEditor, type Problem } from '../editor';
import type { PageProps } from '../poll';

interface Table {
  version: string;
  file: string;
  allowEdit: boolean;
  text: string;
}

type Result =
  | { kind: 'valid'; changes: string[]; version: string }
  | { kind: 'problems'; problems: Array<Problem & { text: string }> }
  | { kind: 'applied'; changes: string[]; version: string }
  | { kind: 'conflict'; changes: string[]; version: string; knownBase: boolean }
  | { kind: 'error'; message: string };

/**
 * The route table: the served YAML (secrets masked), an editor, Validate
 * (problems at their line and column), Preview (the change summary) and
 * Apply (saves the file and reloads, only with admin.allowEdit). An edit
 * carries the version it was based on; if the table changed meanwhile the
 * gateway refuses it (409) and the page shows what changed.
 */
export function RouteTable(props: PageProps) {
  const box = useRef<HTMLDivElement>(null);
  const editor = useRef<TableEditor | null>(null);
  const [table, setTable] = useState<Table | undefined>(undefined);
  const [result, setResult] = useState<Result | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [dirty, setDirty] = useState(false);

  const load = async () => {
    try {
      const t = await api<Table>('/table');
      setTable(t);
      setDirty(false);
      if (editor.current) editor.current.text = t.text;
      editor.current?.showProblems([]);
    } catch (e) {
      if (e instanceof Unauthorized) props.onUnauthorized();
      else setResult({ kind: 'error', message: (e as Error).message });
    }
  };
  useEffect(() => {
    void load();
    return () => editor.current?.destroy();
  }, []);
  useEffect(() => {
    if (table === undefined || editor.current !== null || box.current === null) return;
    editor.current = new TableEditor(box.current, table.text, !table.allowEdit, () => setDirty(true));
  }, [table]);

  const send = async (method: 'POST' | 'PUT', path: string, extra: Record<string, string> = {}) =>
    api<any>(path, { method, body: editor.current!.text, headers: { 'Content-Type': 'application/yaml', ...extra }, accept: [409, 422] });

  const check = async (showChanges: boolean) => {
    setBusy(true);
    try {
      const r = await send('POST', '/table/check');
      if (r.valid) {
        editor.current!.showProblems([]);
        setResult({ kind: 'valid', changes: showChanges ? r.changes : [], version: r.version });
      } else {
        editor.current!.showProblems(r.problems);
        setResult({ kind: 'problems', problems: r.problems });
      }
    } catch (e) {
      if (e instanceof Unauthorized) props.onUnauthorized();
      else setResult({ kind: 'error', message: (e as Error).message });
    } finally {
      setBusy(false);
    }
  };

  const apply = async () => {
    if (!confirm('Save this route table and apply it now?')) return;
    setBusy(true);
    try {
      const r = await send('PUT', '/table', { 'If-Match': table!.version });
      if (r.error?.code === 'STALE_EDIT') setResult({ kind: 'conflict', changes: r.changes, version: r.version, knownBase: r.knownBase });
      else if (r.valid === false || r.outcome === 'failed') {
        editor.current!.showProblems(r.problems);
        setResult({ kind: 'problems', problems: r.problems });
      } else {
        setResult({ kind: 'applied', changes: r.changes ?? [], version: r.version });
        await load();
      }
    } catch (e) {
      if (e instanceof Unauthorized) props.onUnauthorized();
      else setResult({ kind: 'error', message: e instanceof ApiError ? e.message : (e as Error).message });
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1>Route table</h1>
      {table && (
        <p class="muted">
          <code>{table.file}</code>, version <code data-testid="table-version">{table.version}</code>.{' '}
          {table.allowEdit ? 'Edits are saved to this file (the previous version is kept in its .history folder) and applied at once.' : 'Read-only: set admin.allowEdit: true to edit here.'} Secrets are shown as
          "***"; leave them so to keep them.
        </p>
      )}
      <div class="actions">
        <button type="button" disabled={busy || !table} onClick={() => void check(false)}>Validate</button>
        <button type="button" disabled={busy || !table} onClick={() => void check(true)}>Preview changes</button>
        {table?.allowEdit && (
          <button type="button" class="primary" disabled={busy || !dirty} onClick={() => void apply()}>Apply</button>
        )}
        <button type="button" disabled={busy} onClick={() => void load()}>Reload from gateway</button>
      </div>
      <div role="status" aria-live="polite" class="result" data-testid="result">
        {result?.kind === 'valid' && (
          <div class="ok">
            <p>Valid (would be version {result.version}).</p>
            {result.changes.length > 0 ? <ul>{result.changes.map((c) => <li>{c}</li>)}</ul> : <p class="muted">{dirty ? 'No routing change.' : ''}</p>}
          </div>
        )}
        {result?.kind === 'problems' && (
          <div class="error">
            <p>{result.problems.length} problem(s); nothing was saved:</p>
            <ul>{result.problems.map((p) => <li>line {p.line}, column {p.col}: {p.message}</li>)}</ul>
          </div>
        )}
        {result?.kind === 'applied' && (
          <div class="ok">
            <p>Saved and applied: now serving version {result.version}.</p>
            <ul>{result.changes.map((c) => <li>{c}</li>)}</ul>
          </div>
        )}
        {result?.kind === 'conflict' && (
          <div class="error">
            <p>
              Not saved: the route table changed since you loaded it (now version {result.version}). Copy your edit, use "Reload from gateway", and edit again.
            </p>
            {result.changes.length > 0 ? (
              <>
                <p>Changed meanwhile:</p>
                <ul>{result.changes.map((c) => <li>{c}</li>)}</ul>
              </>
            ) : (
              <p class="muted">{result.knownBase ? 'Only comments or layout changed.' : 'The version your edit was based on is too old to compare.'}</p>
            )}
          </div>
        )}
        {result?.kind === 'error' && <p class="error">{result.message}</p>}
      </div>
      <div ref={box} class="editor" />
    </>
  );
}
