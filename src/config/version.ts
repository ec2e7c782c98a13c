import { createHash } from 'node:crypto';

/** A table's version: a hash of its text (so a version names exactly one file content). */
export function versionOf(source: string): string {
  return createHash('sha256').update(source).digest('hex').slice(0, 12);
}
