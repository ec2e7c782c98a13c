import { watch, statSync, type FSWatcher, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Calls `onChange` (debounced) when the file may have changed. Editors and
 * deploy tools change a file in three ways, all covered:
 * - in-place write: a change event for the file;
 * - rename-into-place (vim, `mv`, Kubernetes ConfigMaps swapping a `..data` symlink):
 *   an event in the directory, so the directory is watched, not the inode;
 * - delete then create: rename events in the directory.
 * A slow stat poll catches what file events miss (network and container mounts).
 * The caller decides whether anything really changed (by content hash).
 */
export class TableWatcher {
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastStat: string;
  private stopped = false;

  constructor(
    private readonly file: string,
    private readonly onChange: () => void,
    private readonly debounceMs: number,
    private readonly pollIntervalMs: number,
  ) {
    this.lastStat = this.statKey();
  }

  start(): void {
    this.startWatch();
    if (this.pollIntervalMs > 0) {
      this.poller = setInterval(() => {
        if (this.statKey() !== this.lastStat) this.schedule();
      }, this.pollIntervalMs);
      this.poller.unref();
    }
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
  }

  private startWatch(): void {
    const name = basename(this.file);
    try {
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, changed) => {
        // Some platforms omit the name; ConfigMaps change `..data`, not the file itself.
        if (!changed || changed === name || changed.startsWith('..')) this.schedule();
      });
      this.watcher.on('error', () => {
        // e.g. the directory was replaced: watch again shortly, the poll covers the gap.
        this.watcher?.close();
        this.watcher = undefined;
        setTimeout(() => this.stopped || this.startWatch(), 1000).unref();
      });
    } catch {
      // Directory not watchable: the poll still works.
    }
  }

  private schedule(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.lastStat = this.statKey();
      this.onChange();
    }, this.debounceMs);
    this.debounce.unref();
  }

  private statKey(): string {
    let s: Stats;
    try {
      s = statSync(this.file);
    } catch {
      return 'missing';
    }
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  }
}

/**
 * Several files watched for one purpose (certificates and keys): `watch`
 * sets which ones, starting watchers for new files and stopping those no
 * longer named; a change to any calls `onChange` (each file debounced).
 */
export class FileSetWatcher {
  private readonly watchers = new Map<string, TableWatcher>();

  constructor(
    private readonly onChange: () => void,
    private readonly debounceMs: number,
    private readonly pollIntervalMs: number,
  ) {}

  watch(files: Iterable<string>): void {
    const wanted = new Set(files);
    for (const [file, w] of this.watchers) {
      if (wanted.has(file)) continue;
      w.stop();
      this.watchers.delete(file);
    }
    for (const file of wanted) {
      if (this.watchers.has(file)) continue;
      const w = new TableWatcher(file, this.onChange, this.debounceMs, this.pollIntervalMs);
      w.start();
      this.watchers.set(file, w);
    }
  }

  stop(): void {
    for (const w of this.watchers.values()) w.stop();
    this.watchers.clear();
  }
}
