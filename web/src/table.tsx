import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';

export interface Column<R> {
  label: string;
  /** What the column sorts and filters by. */
  value: (row: R) => string | number | null;
  /** How a cell shows (text by default); never HTML. */
  render?: (row: R) => ComponentChildren;
  numeric?: boolean;
}

/**
 * A table for thousands of rows: filtered by a text box, sorted by any
 * column (click or Enter on its header), and shown a page at a time so the
 * page stays fast with a large route table.
 */
export function DataTable<R>(props: { rows: R[]; columns: Column<R>[]; label: string; pageSize?: number; initialSort?: number; initialDesc?: boolean; rowKey: (r: R) => string }) {
  const size = props.pageSize ?? 50;
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState(props.initialSort ?? 0);
  const [desc, setDesc] = useState(props.initialDesc ?? false);
  const [page, setPage] = useState(0);
  const rows = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const kept = f === '' ? props.rows : props.rows.filter((r) => props.columns.some((c) => String(c.value(r) ?? '').toLowerCase().includes(f)));
    const col = props.columns[sort]!;
    return [...kept].sort((a, b) => {
      const x = col.value(a);
      const y = col.value(b);
      const cmp = x === y ? 0 : x === null ? 1 : y === null ? -1 : typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return desc ? -cmp : cmp;
    });
  }, [props.rows, props.columns, filter, sort, desc]);
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const at = Math.min(page, pages - 1);
  const shown = rows.slice(at * size, at * size + size);
  const sortBy = (i: number) => {
    if (i === sort) setDesc(!desc);
    else {
      setSort(i);
      setDesc(props.columns[i]!.numeric === true);
    }
  };
  return (
    <div class="datatable">
      <div class="toolbar">
        <label>
          Filter {props.label}
          <input type="search" value={filter} onInput={(e) => { setFilter((e.target as HTMLInputElement).value); setPage(0); }} />
        </label>
        <span class="muted" aria-live="polite">{rows.length} of {props.rows.length}</span>
      </div>
      <div class="scroll">
        <table aria-label={props.label}>
          <thead>
            <tr>
              {props.columns.map((c, i) => (
                <th scope="col" class={c.numeric ? 'num' : ''} aria-sort={i === sort ? (desc ? 'descending' : 'ascending') : 'none'}>
                  <button type="button" class="sort" onClick={() => sortBy(i)}>
                    {c.label}
                    {i === sort ? (desc ? ' ▼' : ' ▲') : ''}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={props.rowKey(r)}>
                {props.columns.map((c) => (
                  <td class={c.numeric ? 'num' : ''}>{c.render ? c.render(r) : String(c.value(r) ?? '–')}</td>
                ))}
              </tr>
            ))}
            {shown.length === 0 && (
              <tr>
                <td colSpan={props.columns.length} class="muted">Nothing to show.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {pages > 1 && (
        <nav class="pager" aria-label={`${props.label} pages`}>
          <button type="button" disabled={at === 0} onClick={() => setPage(at - 1)}>Previous</button>
          <span>Page {at + 1} of {pages}</span>
          <button type="button" disabled={at >= pages - 1} onClick={() => setPage(at + 1)}>Next</button>
        </nav>
      )}
    </div>
  );
}
