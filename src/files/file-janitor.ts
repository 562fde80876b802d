import type { Logger } from '../logger.ts';
import type { FileRecordStore, StoredFile } from '../store/files.ts';
import type { FileStore } from './file-store.ts';

export interface FileJanitorOptions {
  /** An upload no live message references is removed once it is this old. */
  orphanTtlMs: number;
  /** How often the sweep runs. */
  sweepMs: number;
  /** Files removed per sweep statement; the sweep repeats until fewer are found. */
  batch: number;
  log: Logger;
  /** Injectable for tests. */
  now?: () => number;
  setInterval?: (run: () => void, ms: number) => { unref?: () => void };
  clearInterval?: (timer: unknown) => void;
}

/**
 * Removes files nobody can reach: the file of a deleted RESOURCE message, and uploads no message references
 * within UPLOAD_ORPHAN_TTL_S. Bytes go first, then rows: should a gateway stop in between, the row is still there
 * and the next sweep finishes the job. Every gateway sweeps; removing twice is harmless (both steps are idempotent).
 */
export class FileJanitor {
  private timer: unknown;
  private sweeping: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly records: FileRecordStore,
    private readonly store: FileStore,
    private readonly o: FileJanitorOptions,
  ) {
    this.now = o.now ?? Date.now;
  }

  /** After message `messageId` was deleted: remove its file unless another live message still references it. */
  async releaseFileOf(messageId: string): Promise<void> {
    // The delete itself is done; a failure here leaves an orphan for the sweep, not an error for the client.
    await this.remove(await this.records.releasedBy(messageId)).catch((err: unknown) =>
      this.o.log.warn({ err, messageId }, 'could not remove the file of a deleted message; the sweep will'),
    );
  }

  /** One sweep: every orphan older than the TTL, in batches. */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepAll().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  start(): void {
    const timer = (this.o.setInterval ?? setInterval)(() => {
      this.sweep().catch((err: unknown) => this.o.log.warn({ err }, 'file orphan sweep failed'));
    }, this.o.sweepMs);
    timer.unref?.();
    this.timer = timer;
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) (this.o.clearInterval ?? clearInterval)(this.timer as NodeJS.Timeout);
    this.timer = undefined;
    await this.sweeping?.catch(() => {});
  }

  private async sweepAll(): Promise<void> {
    const before = new Date(this.now() - this.o.orphanTtlMs);
    for (;;) {
      const found = await this.records.orphans(before, this.o.batch);
      await this.remove(found);
      if (found.length < this.o.batch) return;
    }
  }

  private async remove(files: StoredFile[]): Promise<void> {
    for (const f of files) await this.store.delete(f.storageKey);
    await this.records.remove(files.map((f) => f.id));
  }
}
