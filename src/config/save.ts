import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, open, readdir, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Saves a route table file the way an editor should: the previous version is
 * copied into `<file>.history/` (the last `keep` are kept), the new text is
 * written to a temporary file beside the target, flushed, given the original's
 * mode and owner, and renamed over it. A reader (the gateway's watcher, an
 * operator's `cat`) sees the old file or the new one, never half of one.
 */
export async function saveTableFile(file: string, text: string, keep: number): Promise<{ historyFile: string }> {
  // A symlinked table (a mounted config) is written where it really lives; the link stays.
  const target = await realpath(file);
  const before = await stat(target);
  const dir = dirname(target);
  const history = join(dir, `${basename(target)}.history`);
  await mkdir(history, { recursive: true, mode: 0o700 });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const historyFile = join(history, `${basename(target)}.${stamp}`);
  await copyFile(target, historyFile);
  await prune(history, basename(target), keep);

  const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', before.mode & 0o777);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // The umask may have narrowed the mode; the owner matters when the gateway runs as root.
    await chmod(tmp, before.mode & 0o777);
    await chown(tmp, before.uid, before.gid).catch(() => undefined);
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return { historyFile };
}

/** Keeps the `keep` newest copies (their names sort by time). */
async function prune(history: string, name: string, keep: number): Promise<void> {
  const copies = (await readdir(history)).filter((f) => f.startsWith(`${name}.`)).sort();
  for (const old of copies.slice(0, Math.max(0, copies.length - keep))) await unlink(join(history, old)).catch(() => undefined);
}
