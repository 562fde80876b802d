/** This gateway's holders that want to hear of a takeover, by holder id: what both engines call on one. */
export class Watchers {
  private readonly byHolder = new Map<string, () => void>();

  watch(holder: string, onTakenOver: () => void): () => void {
    this.byHolder.set(holder, onTakenOver);
    return () => {
      if (this.byHolder.get(holder) === onTakenOver) this.byHolder.delete(holder);
    };
  }

  tell(holder: string): void {
    this.byHolder.get(holder)?.();
  }

  clear(): void {
    this.byHolder.clear();
  }
}
