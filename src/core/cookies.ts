/**
 * The value of cookie `name` in a Cookie header (trimmed), or undefined when
 * absent or empty. Scans in place: no split, no array per request.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const n = header.length;
  let i = 0;
  while (i < n) {
    let end = header.indexOf(';', i);
    if (end === -1) end = n;
    const eq = header.indexOf('=', i);
    if (eq !== -1 && eq < end && trimmedEquals(header, i, eq, name)) {
      const value = header.slice(eq + 1, end).trim();
      return value === '' ? undefined : value;
    }
    i = end + 1;
  }
  return undefined;
}

/** Whether header[from, to), without surrounding spaces and tabs, is exactly `name`. */
function trimmedEquals(header: string, from: number, to: number, name: string): boolean {
  while (from < to && isSpace(header.charCodeAt(from))) from++;
  while (to > from && isSpace(header.charCodeAt(to - 1))) to--;
  return to - from === name.length && header.startsWith(name, from);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}
