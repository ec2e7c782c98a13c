/**
 * The admin API as the console uses it: the token the user typed is kept in
 * sessionStorage (gone when the tab closes) and sent as a Bearer token.
 */
const KEY = 'strangler-admin-token';

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
  ) {
    super(body?.error?.message ?? `HTTP ${status}`);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, value);
}

export async function api<T = any>(path: string, init: RequestInit & { accept?: number[] } = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const t = token();
  if (t !== null) headers.set('Authorization', `Bearer ${t}`);
  const res = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('the admin token is missing or wrong');
  const type = res.headers.get('content-type') ?? '';
  const body = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok && !(init.accept ?? []).includes(res.status)) throw new ApiError(res.status, body);
  return body as T;
}

/** Downloads a file from the API (the token cannot go in a plain link). */
export async function download(path: string, name: string): Promise<void> {
  const headers = new Headers();
  const t = token();
  if (t !== null) headers.set('Authorization', `Bearer ${t}`);
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (!res.ok) throw new ApiError(res.status, null);
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
