import type { Redis } from 'ioredis';
import { defineScript, type RedisScript } from '../redis-script.ts';
import type { Takeover } from './takeover.ts';
import { Watchers } from './watchers.ts';

export interface RedisTakeoverOptions {
  redis: Redis;
  /** Names this gateway's channel, where other gateways announce takeovers of its holders. */
  gatewayId: string;
  /** How long a claim outlives a holder that never released it (its gateway died): the resume TTL. */
  ttlMs: number;
  keyPrefix?: string;
}

/**
 * KEYS: the history's holder key. ARGV: `<gatewayId> <holder>` of the claimant, ttlMs, channel prefix.
 * Sets the holder and, when another held it, publishes the old holder's id on its gateway's channel. One round trip.
 */
const CLAIM_LUA = `
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if previous and previous ~= ARGV[1] then
  local space = string.find(previous, ' ', 1, true)
  redis.call('PUBLISH', ARGV[3] .. string.sub(previous, 1, space - 1), string.sub(previous, space + 1))
end
return 1
`;

/** KEYS: the history's holder key. ARGV: `<gatewayId> <holder>`, ttlMs. Extends the claim only if still held so. */
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`;

/** KEYS: the history's holder key. ARGV: `<gatewayId> <holder>`. Deletes it only if still held so. */
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/**
 * The cluster engine: `<prefix>h:<historyId>` names its holder as `<gatewayId> <holder>`; a takeover is published on
 * the old holder's gateway channel `<prefix>c:<gatewayId>`, which each gateway subscribes to on a connection of its own.
 */
export class RedisTakeover implements Takeover {
  private readonly watchers = new Watchers();
  private readonly subscriber: Redis;
  private readonly claimScript: RedisScript;
  private readonly renewScript: RedisScript;
  private readonly releaseScript: RedisScript;
  private readonly prefix: string;
  private readonly self: string;
  private subscribed: Promise<unknown> | null = null;

  constructor(private readonly opts: RedisTakeoverOptions) {
    this.prefix = opts.keyPrefix ?? 'takeover:';
    this.self = opts.gatewayId;
    this.claimScript = defineScript(opts.redis, 'takeoverClaim', CLAIM_LUA);
    this.renewScript = defineScript(opts.redis, 'takeoverRenew', RENEW_LUA);
    this.releaseScript = defineScript(opts.redis, 'takeoverRelease', RELEASE_LUA);
    this.subscriber = opts.redis.duplicate();
    // It reconnects and resubscribes by itself; the gateway logs the main connection's errors, which share its cause.
    this.subscriber.on('error', () => {});
    this.subscriber.on('message', (_channel: string, holder: string) => this.watchers.tell(holder));
  }

  async claim(historyId: string, holder: string): Promise<void> {
    this.subscribed ??= this.subscriber.subscribe(`${this.prefix}c:${this.self}`);
    await this.subscribed;
    await this.claimScript(1, `${this.prefix}h:${historyId}`, `${this.self} ${holder}`, this.opts.ttlMs, `${this.prefix}c:`);
  }

  async renew(historyId: string, holder: string): Promise<void> {
    await this.renewScript(1, `${this.prefix}h:${historyId}`, `${this.self} ${holder}`, this.opts.ttlMs);
  }

  async release(historyId: string, holder: string): Promise<void> {
    await this.releaseScript(1, `${this.prefix}h:${historyId}`, `${this.self} ${holder}`);
  }

  watch(holder: string, onTakenOver: () => void): () => void {
    return this.watchers.watch(holder, onTakenOver);
  }

  async close(): Promise<void> {
    this.watchers.clear();
    await this.subscriber.quit().catch(() => {});
  }
}
