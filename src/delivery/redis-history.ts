import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ClaimOutcome, DeliveryHistory, DeliveryKey } from './history.ts';
import { assertKeys, assertPositiveInteger } from './validate.ts';
import { defineScript, type RedisScript } from '../redis-script.ts';

export interface RedisHistoryOptions {
  /** Owned by the caller: close() leaves the connection open. */
  redis: Redis;
  /** Seqs per (receiver, sender) remembered below the highest one. */
  window: number;
  /** PX of a claim's lock: how long a crashed holder can keep a copy waiting. */
  lockTtlMs: number;
  keyPrefix?: string;
}

/*
 * Storage, per receiver: one hash `<prefix>h:<receiver>`, so retain() is one PEXPIRE.
 * Field `<sender>` holds a record: struct '>dI4' (highest seq as a double, the window the record
 * was written with) followed by a ring bitmap of ceil(window/8) bytes, bit (seq mod window) set when
 * seq in (top - window, top] was seen. Field '' is a marker that makes the hash exist as soon as
 * retain() is called (senders are never empty).
 * Locks: `<prefix>l:<receiver length>:<receiver>:<sender>:<seq>` = owner token, PX lockTtlMs.
 */

const RECORD_LUA = `
local HEADER = 12
local function seen(v, seq)
  if not v then return false end
  local top, w = struct.unpack('>dI4', v)
  if seq > top then return false end
  if seq <= top - w then return true end
  local i = seq % w
  return bit.band(string.byte(v, HEADER + 1 + math.floor(i / 8)), bit.lshift(1, i % 8)) ~= 0
end
`;

/** KEYS: lock, hash per copy. ARGV: owner, ttlMs, then sender, seq per copy. Returns one letter per copy. */
const CLAIM_LUA = `${RECORD_LUA}
local owner, ttl = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS / 2 do
  local lock = KEYS[2 * i - 1]
  if not redis.call('SET', lock, owner, 'NX', 'PX', ttl) then
    out[i] = 'b'
  elseif seen(redis.call('HGET', KEYS[2 * i], ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])) then
    redis.call('DEL', lock)
    out[i] = 'u'
  else
    out[i] = 'd'
  end
end
return table.concat(out)
`;

/**
 * KEYS: lock, hash per written copy, then one lock per abandoned copy.
 * ARGV: owner, window, number written, then sender, seq per written copy.
 */
const SETTLE_LUA = `${RECORD_LUA}
local owner, w, nw = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nbytes = math.ceil(w / 8)

local function flip(bytes, seq, on)
  local i = seq % w
  local k = math.floor(i / 8) + 1
  local m = bit.lshift(1, i % 8)
  if on then bytes[k] = bit.bor(bytes[k], m) else bytes[k] = bit.band(bytes[k], bit.bnot(m)) end
end

local function load(v)
  local rec = { bytes = {} }
  for k = 1, nbytes do rec.bytes[k] = 0 end
  if not v then return rec end
  local top, ow = struct.unpack('>dI4', v)
  rec.top = top
  if ow == w then
    for k = 1, nbytes do rec.bytes[k] = string.byte(v, HEADER + k) end
  else
    -- written under another window size: carry over what it says about (top - w, top]
    for s = top - w + 1, top do
      if seen(v, s) then flip(rec.bytes, s, true) end
    end
  end
  return rec
end

local function add(rec, seq)
  if rec.top and seq <= rec.top - w then return end
  if not rec.top or seq - rec.top >= w then
    for k = 1, nbytes do rec.bytes[k] = 0 end
    rec.top = seq
  elseif seq > rec.top then
    for s = rec.top + 1, seq - 1 do flip(rec.bytes, s, false) end
    rec.top = seq
  end
  flip(rec.bytes, seq, true)
end

local function encode(rec)
  local parts = { struct.pack('>dI4', rec.top, w) }
  for k = 1, nbytes, 4096 do
    parts[#parts + 1] = string.char(unpack(rec.bytes, k, math.min(k + 4095, nbytes)))
  end
  return table.concat(parts)
end

local recs = {}
for i = 1, nw do
  local hash, field = KEYS[2 * i], ARGV[2 + 2 * i]
  local fields = recs[hash]
  if not fields then
    fields = {}
    recs[hash] = fields
  end
  local rec = fields[field]
  if not rec then
    rec = load(redis.call('HGET', hash, field))
    fields[field] = rec
  end
  add(rec, tonumber(ARGV[3 + 2 * i]))
end
for hash, fields in pairs(recs) do
  for field, rec in pairs(fields) do redis.call('HSET', hash, field, encode(rec)) end
end

local function release(lock)
  if redis.call('GET', lock) == owner then redis.call('DEL', lock) end
end
for i = 1, nw do release(KEYS[2 * i - 1]) end
for i = 2 * nw + 1, #KEYS do release(KEYS[i]) end
return 0
`;

/** KEYS: hash. ARGV: ttlMs. The marker makes the TTL hold from now even before the first record. */
const RETAIN_LUA = `
redis.call('HSETNX', KEYS[1], '', '')
return redis.call('PEXPIRE', KEYS[1], ARGV[1])
`;

const OUTCOMES: Record<string, ClaimOutcome> = { d: 'deliver', u: 'duplicate', b: 'busy' };

/** DeliveryHistory shared by every gateway through Redis. claim and settle are one EVALSHA each. */
export class RedisHistory implements DeliveryHistory {
  readonly #owner = randomUUID();
  readonly #window: number;
  readonly #lockTtlMs: number;
  readonly #prefix: string;
  readonly #claim: RedisScript;
  readonly #settle: RedisScript;
  readonly #retain: RedisScript;
  #closed = false;

  constructor(opts: RedisHistoryOptions) {
    assertPositiveInteger('window', opts.window);
    assertPositiveInteger('lockTtlMs', opts.lockTtlMs);
    this.#window = opts.window;
    this.#lockTtlMs = opts.lockTtlMs;
    this.#prefix = opts.keyPrefix ?? 'delivery:';
    this.#claim = defineScript(opts.redis, 'deliveryHistoryClaim', CLAIM_LUA);
    this.#settle = defineScript(opts.redis, 'deliveryHistorySettle', SETTLE_LUA);
    this.#retain = defineScript(opts.redis, 'deliveryHistoryRetain', RETAIN_LUA);
  }

  async claim(keys: readonly DeliveryKey[]): Promise<ClaimOutcome[]> {
    this.#assertOpen();
    assertKeys(keys);
    if (keys.length === 0) return [];
    const redisKeys: string[] = [];
    const args: string[] = [this.#owner, String(this.#lockTtlMs)];
    for (const key of keys) {
      redisKeys.push(this.#lockKey(key), this.#hashKey(key.receiver));
      args.push(key.sender, String(key.seq));
    }
    const reply = String(await this.#claim(redisKeys.length, ...redisKeys, ...args));
    return Array.from(reply, (letter) => OUTCOMES[letter]!);
  }

  async settle(written: readonly DeliveryKey[], abandoned: readonly DeliveryKey[]): Promise<void> {
    this.#assertOpen();
    assertKeys(written);
    assertKeys(abandoned);
    if (written.length === 0 && abandoned.length === 0) return;
    const redisKeys: string[] = [];
    const args: string[] = [this.#owner, String(this.#window), String(written.length)];
    for (const key of written) {
      redisKeys.push(this.#lockKey(key), this.#hashKey(key.receiver));
      args.push(key.sender, String(key.seq));
    }
    for (const key of abandoned) redisKeys.push(this.#lockKey(key));
    await this.#settle(redisKeys.length, ...redisKeys, ...args);
  }

  async retain(receiver: string, ttlMs: number): Promise<void> {
    this.#assertOpen();
    await this.#retain(1, this.#hashKey(receiver), Math.ceil(ttlMs));
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #hashKey(receiver: string): string {
    return `${this.#prefix}h:${receiver}`;
  }

  /** The receiver's length makes the key unambiguous whatever ':' the ids contain. */
  #lockKey(key: DeliveryKey): string {
    return `${this.#prefix}l:${key.receiver.length}:${key.receiver}:${key.sender}:${key.seq}`;
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error('RedisHistory is closed');
  }
}
