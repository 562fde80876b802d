import type { Takeover } from './takeover.ts';
import { Watchers } from './watchers.ts';

/** The embedded engine: one process, so every holder is local. */
export class MemoryTakeover implements Takeover {
  private readonly holders = new Map<string, string>();
  private readonly watchers = new Watchers();

  async claim(historyId: string, holder: string): Promise<void> {
    const previous = this.holders.get(historyId);
    this.holders.set(historyId, holder);
    if (previous !== undefined && previous !== holder) this.watchers.tell(previous);
  }

  async renew(): Promise<void> {
    // Nothing expires in one process: a holder that goes away releases.
  }

  async release(historyId: string, holder: string): Promise<void> {
    if (this.holders.get(historyId) === holder) this.holders.delete(historyId);
  }

  watch(holder: string, onTakenOver: () => void): () => void {
    return this.watchers.watch(holder, onTakenOver);
  }

  async close(): Promise<void> {
    this.holders.clear();
    this.watchers.clear();
  }
}
