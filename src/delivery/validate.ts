import type { DeliveryKey } from './history.ts';

/** Both engines accept the same inputs: the Redis engine does arithmetic on seqs in Lua doubles. */
export function assertKeys(keys: readonly DeliveryKey[]): void {
  for (const k of keys) {
    if (k.receiver === '' || k.sender === '' || !Number.isSafeInteger(k.seq)) {
      throw new TypeError(`invalid delivery key ${JSON.stringify(k)}: receiver and sender non-empty, seq a safe integer`);
    }
  }
}

export function assertPositiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${name} must be a positive integer, got ${value}`);
}
