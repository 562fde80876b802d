/** How many sessions each user has open on this gateway: what MAX_CONNECTIONS_PER_USER is checked against. */
export class UserSessions {
  private readonly counts = new Map<string, number>();

  count(userId: string): number {
    return this.counts.get(userId) ?? 0;
  }

  add(userId: string): void {
    this.counts.set(userId, this.count(userId) + 1);
  }

  remove(userId: string): void {
    const left = this.count(userId) - 1;
    if (left > 0) this.counts.set(userId, left);
    else this.counts.delete(userId);
  }
}
