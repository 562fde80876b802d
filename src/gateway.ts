import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join as joinPath, resolve as resolvePath } from 'node:path';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { Dispatcher } from './app/dispatcher.ts';
import { GatewayOrigin } from './app/origin.ts';
import { Connections } from './app/connections.ts';
import { ErrorChannel } from './app/error-channel.ts';
import { RandomChat } from './app/random.ts';
import { Relay } from './app/relay.ts';
import { RoomSubscriptions } from './app/room-subscriptions.ts';
import { RoomService } from './app/rooms.ts';
import { AuthLimits, type LimiterFactory } from './auth/auth-limits.ts';
import { loadJwtSecret, TokenService } from './auth/tokens.ts';
import { AmqpBroker } from './broker/amqp-broker.ts';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import type { Config } from './config.ts';
import { Fanout } from './delivery/fanout.ts';
import type { DeliveryHistory } from './delivery/history.ts';
import { OutboundInterceptor } from './delivery/interceptor.ts';
import { MemoryHistory } from './delivery/memory-history.ts';
import { RedisHistory } from './delivery/redis-history.ts';
import { createApi } from './http/api.ts';
import { authRoutes } from './http/auth-routes.ts';
import { healthRoutes } from './http/health-routes.ts';
import { randomRoutes } from './http/random-routes.ts';
import { roomRoutes } from './http/room-routes.ts';
import { fileRoutes } from './http/file-routes.ts';
import { DiskFileStore } from './files/disk-file-store.ts';
import { FileJanitor } from './files/file-janitor.ts';
import { UploadLimits } from './files/upload-limits.ts';
import { FileRecordStore } from './store/files.ts';
import { AuditLog } from './audit.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { MemoryPresence } from './presence/memory-presence.ts';
import type { Presence } from './presence/presence.ts';
import { RedisPresence } from './presence/redis-presence.ts';
import { PresenceTracker } from './presence/tracker.ts';
import { MemoryMatcher } from './random/memory-matcher.ts';
import { RedisMatcher } from './random/redis-matcher.ts';
import { MemorySweepLock } from './outbox/memory-sweep-lock.ts';
import { Outbox } from './outbox/outbox.ts';
import { RedisSweepLock } from './outbox/redis-sweep-lock.ts';
import { StompServer } from './stomp/server.ts';
import { MemoryTakeover } from './takeover/memory-takeover.ts';
import { RedisTakeover } from './takeover/redis-takeover.ts';
import type { Takeover } from './takeover/takeover.ts';
import { openDatabase } from './store/database.ts';
import { MessageStore } from './store/messages.ts';
import { OutboxStore } from './store/outbox-store.ts';
import { RefreshTokenStore } from './store/refresh-tokens.ts';
import { RoomStore } from './store/rooms.ts';
import { UserStore } from './store/users.ts';

export interface Gateway {
  readonly id: string;
  readonly http: Server;
  /** `http://host:port` the gateway listens on. */
  readonly url: string;
  readonly interceptor: OutboundInterceptor;
  readonly stomp: StompServer;
  /** Removes unreachable files; tests run its sweep. */
  readonly files: FileJanitor;
  /** Graceful stop: refuse new clients, settle in-flight deliveries, tell clients to reconnect, close everything. */
  close(): Promise<void>;
}

/** How long a room feed waits for an overtaken event before reading it from the store. */
const GAP_WAIT_MS = 150;
const LOCK_TTL_MS = 5_000;
/** Presence: each gateway refreshes its sessions every 15 s; a dead gateway's users are offline within 45 s. */
const PRESENCE_REFRESH_MS = 15_000;
const PRESENCE_TTL_MS = 45_000;
/** A disconnected session still counts this long, so a reload or a network blip shows no offline/online flap. */
const PRESENCE_GRACE_MS = 3_000;
/** Outbox: a sweep round is bounded by one publisher confirm timeout (10 s); a dead holder pauses the sweep this long. */
const SWEEP_LOCK_TTL_MS = 30_000;
const SWEEP_BATCH = 500;
/** Publisher confirms gather this long before one statement marks them all published. */
const PUBLISHED_FLUSH_MS = 100;

/** The composition root: builds every engine from the configuration and wires the path of a message through them. */
export async function startGateway(config: Config, log: Logger, clock: { now?: () => number } = {}): Promise<Gateway> {
  const gatewayId = config.GATEWAY_ID ?? `${process.pid}-${Date.now().toString(36)}`;
  const metrics = new Metrics(gatewayId);
  const audit = new AuditLog(log, { linesPerSecond: config.AUDIT_LINES_PER_S });
  const db = await openDatabase({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, log });
  const users = new UserStore(db.prisma);
  const roomStore = new RoomStore(db.prisma);
  const messages = new MessageStore(db.prisma);
  const fileStore = await DiskFileStore.open(joinPath(config.DATA_DIR, 'files'));
  const tokens = new TokenService(
    await loadJwtSecret(config.JWT_SECRET, config.DATA_DIR),
    config.ACCESS_TOKEN_TTL_S,
    config.REFRESH_TOKEN_TTL_S,
  );

  const broker: Broker = config.BROKER_URL
    ? new AmqpBroker({
        url: config.BROKER_URL,
        gatewayId,
        prefetch: config.BROKER_PREFETCH,
        queueExpiresMs: config.BROKER_QUEUE_EXPIRES_MS,
        queueMaxLength: config.QUEUE_MAX_LENGTH,
        rpcTimeoutMs: config.BROKER_RPC_TIMEOUT_MS,
        log,
      })
    : new MemoryBroker({ queueMaxLength: config.QUEUE_MAX_LENGTH });
  const redis = config.REDIS_URL ? new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 }) : undefined;
  // ioredis reconnects by itself; without a listener each failed attempt is printed as an unhandled error event.
  redis?.on('error', (err: Error) => log.warn({ err: err.message }, 'redis connection error'));
  const history: DeliveryHistory = redis
    ? new RedisHistory({ redis, window: config.HISTORY_WINDOW, lockTtlMs: LOCK_TTL_MS })
    : new MemoryHistory({ window: config.HISTORY_WINDOW, lockTtlMs: LOCK_TTL_MS });
  // Login and sign-up counters: in Redis, shared by every gateway; per gateway in memory, also while Redis is down
  // (rejectIfRedisNotReady: a login goes to the memory counter at once instead of waiting for a reconnect).
  const limiter: LimiterFactory = ({ keyPrefix, points, durationS }) => {
    const memory = new RateLimiterMemory({ keyPrefix, points, duration: durationS });
    return redis
      ? new RateLimiterRedis({ storeClient: redis, keyPrefix, points, duration: durationS, rejectIfRedisNotReady: true, insuranceLimiter: memory })
      : memory;
  };
  const authLimits = new AuthLimits(limiter, {
    loginPerAccount: config.LOGIN_RATE_PER_ACCOUNT,
    loginPerIp: config.LOGIN_RATE_PER_IP,
    loginWindowS: config.LOGIN_RATE_WINDOW_S,
    signupPerIp: config.SIGNUP_RATE_PER_IP,
    signupWindowS: config.SIGNUP_RATE_WINDOW_S,
  });
  const interceptor = new OutboundInterceptor(history);
  const fanout = new Fanout(broker, interceptor, log);
  await broker.start(fanout.onDelivery);

  // One sweep per database: gateways of other clusters sharing this Redis (or this process) sweep their own.
  const databaseHash = createHash('sha256').update(config.DATABASE_URL ?? resolvePath(config.DATA_DIR)).digest('hex').slice(0, 16);
  const sweepLockKey = `chat:outbox-sweep:${databaseHash}`;
  const sweepLockOptions = { key: sweepLockKey, ttlMs: SWEEP_LOCK_TTL_MS };
  const outbox = new Outbox(
    broker,
    new OutboxStore(db.prisma),
    redis ? new RedisSweepLock({ redis, ...sweepLockOptions }) : new MemorySweepLock(sweepLockOptions),
    { sweepMs: config.OUTBOX_SWEEP_MS, ageMs: config.OUTBOX_AGE_MS, flushMs: PUBLISHED_FLUSH_MS, batch: SWEEP_BATCH, log },
  );
  outbox.start();

  const fileRecords = new FileRecordStore(db.prisma);
  const files = new FileJanitor(fileRecords, fileStore, {
    orphanTtlMs: config.UPLOAD_ORPHAN_TTL_S * 1000,
    sweepMs: config.UPLOAD_SWEEP_MS,
    batch: SWEEP_BATCH,
    log,
    now: clock.now,
  });
  files.start();

  const origin = new GatewayOrigin();
  const rooms = new RoomService(users, roomStore, messages, broker, outbox, origin, files);
  const presenceOptions = { ttlMs: PRESENCE_TTL_MS, graceMs: PRESENCE_GRACE_MS };
  const presence: Presence = redis ? new RedisPresence({ redis, ...presenceOptions }) : new MemoryPresence(presenceOptions);
  const presenceTracker = new PresenceTracker(presence, {
    announce: (userId, online) => rooms.publishPresence(userId, online),
    refreshMs: PRESENCE_REFRESH_MS,
    graceMs: PRESENCE_GRACE_MS,
    log,
  });
  const relay = new Relay(
    broker,
    fanout,
    interceptor,
    {
      defaultPrefetch: config.BROKER_PREFETCH,
      topicBounds: { maxWords: config.TOPIC_MAX_WORDS, maxHashes: config.TOPIC_MAX_HASHES },
      queueMaxLength: config.QUEUE_MAX_LENGTH,
    },
    metrics,
    audit,
  );
  const takeover: Takeover = redis
    ? new RedisTakeover({ redis, gatewayId, ttlMs: config.RESUME_TTL_S * 1000 })
    : new MemoryTakeover();
  const errors = new ErrorChannel(origin, audit, log);
  const connections = new Connections(
    tokens,
    history,
    presenceTracker,
    takeover,
    errors,
    audit,
    { resumeTtlS: config.RESUME_TTL_S, tokenGraceS: config.TOKEN_GRACE_S },
    log,
  );
  const roomSubscriptions = new RoomSubscriptions(
    rooms,
    roomStore,
    messages,
    fanout,
    interceptor,
    origin,
    {
      replayLimit: config.REPLAY_LIMIT,
      gapWaitMs: GAP_WAIT_MS,
      end: (session, sub, reason) => dispatcher.endSubscription(session, sub, reason),
    },
    log,
  );
  // One wait queue per cluster, like the sweep lock: keyed by the database the cluster shares.
  const random = new RandomChat(
    redis ? new RedisMatcher({ redis, keyPrefix: `chat:random:${databaseHash}:` }) : new MemoryMatcher(),
    rooms,
    roomStore,
    fanout,
    { timeoutMs: config.RANDOM_MATCH_TIMEOUT_S * 1000, log },
  );
  const dispatcher: Dispatcher = new Dispatcher(connections, errors, roomSubscriptions, rooms, fanout, relay, broker, origin, log, random);

  metrics.gauge('chat_sessions', 'Connected STOMP sessions.', () => connections.count);
  metrics.counter('chat_delivered_total', 'MESSAGE frames written by the outbound interceptor.', () => interceptor.stats.written);
  metrics.counter('chat_duplicates_dropped_total', 'Copies the outbound interceptor dropped as delivered before.', () => interceptor.stats.dropped);
  metrics.counter('chat_redelivered_dropped_total', 'Of those, copies of broker redeliveries.', () => fanout.stats.redeliveredDropped);
  metrics.counter('chat_abandoned_total', 'Copies not written because the receiver had gone.', () => interceptor.stats.abandoned);
  metrics.counter('chat_outbox_republished_total', 'Stored room events the outbox sweep published again.', () => outbox.stats.republished);
  metrics.gauge('chat_broker_up', 'Whether the broker link is up.', () => (broker.health() === 'up' ? 1 : 0));

  const api = createApi(
    {
      '/': healthRoutes({
        ready: async () => ({
          database: await db.prisma.$queryRaw`SELECT 1`.then(() => true, () => false),
          broker: broker.health() === 'up',
        }),
        metrics,
      }),
      '/api/auth': authRoutes({
        users,
        tokens,
        refreshTokens: new RefreshTokenStore(db.prisma),
        limits: authLimits,
        metrics,
        audit,
        reuseGraceMs: config.REFRESH_REUSE_GRACE_S * 1000,
      }),
      '/api/random': randomRoutes(tokens, random, audit),
      '/api': fileRoutes({
        tokens,
        service: rooms,
        files: fileRecords,
        store: fileStore,
        maxUploadBytes: config.MAX_UPLOAD_BYTES,
        quotaBytes: config.UPLOAD_QUOTA_BYTES,
        limits: new UploadLimits(limiter, config.UPLOADS_PER_MINUTE),
        metrics,
        audit,
      }),
      '/api/rooms': roomRoutes(tokens, rooms, roomStore, (userIds) => presenceTracker.online(userIds), audit),
    },
    log,
    config.TRUST_PROXY,
  );
  const http = createServer(api);
  const stomp = new StompServer(
    http,
    dispatcher,
    {
      maxFrameBytes: config.MAX_FRAME_BYTES,
      maxRelayFrameBytes: config.MAX_RELAY_FRAME_BYTES,
      maxWsMessageBytes: config.MAX_WS_MESSAGE_BYTES,
      maxHeaders: config.MAX_HEADERS,
      maxHeaderBytes: config.MAX_HEADER_BYTES,
      maxSubscriptions: config.MAX_SUBSCRIPTIONS,
      maxPendingBytes: config.MAX_PENDING_BYTES,
      maxQueuedFrames: config.RATE_LIMIT_PER_S * 2,
      maxQueuedBytes: config.MAX_QUEUED_BYTES,
      maxTransactions: config.MAX_TRANSACTIONS,
      maxTransactionFrames: config.MAX_TRANSACTION_FRAMES,
      maxTransactionBytes: config.MAX_TRANSACTION_BYTES,
      maxConnections: config.MAX_CONNECTIONS,
      maxConnectionsPerUser: config.MAX_CONNECTIONS_PER_USER,
      connectTimeoutMs: config.CONNECT_TIMEOUT_MS,
      heartbeatMs: config.HEARTBEAT_MS,
      heartbeatMinMs: config.HEARTBEAT_MIN_MS,
      heartbeatMaxMs: config.HEARTBEAT_MAX_MS,
      ratePerSecond: config.RATE_LIMIT_PER_S,
    },
    { log, metrics, audit },
  );
  metrics.gauge('chat_queued_frames', 'Inbound frames waiting to be handled, all sessions.', () => stomp.backlog().queuedFrames);
  metrics.gauge('chat_queued_frames_max', 'Inbound frames waiting in the busiest session (bound: 2 x RATE_LIMIT_PER_S).', () => stomp.backlog().maxQueuedFrames);
  metrics.gauge('chat_pending_bytes', 'Outbound bytes not yet taken by the sockets, all sessions.', () => stomp.backlog().pendingBytes);
  metrics.gauge('chat_pending_bytes_max', 'Outbound bytes waiting in the slowest session (bound: MAX_PENDING_BYTES).', () => stomp.backlog().maxPendingBytes);
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.PORT, config.HOST, resolve);
  });
  const address = http.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`.replace(
    /\/\/(0\.0\.0\.0|\[::\])/,
    '//127.0.0.1',
  );
  log.info({ url, gatewayId, database: db.kind, broker: config.BROKER_URL ? 'rabbitmq' : 'memory', history: redis ? 'redis' : 'memory' }, 'gateway listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      stomp.stopAccepting();
      http.close();
      // Stop taking deliveries first; what is unsettled goes back to the broker for another gateway.
      await broker.close().catch((err: unknown) => log.warn({ err }, 'broker close failed'));
      for (const session of stomp.sessions) {
        session.fail('server shutting down', 'this gateway is stopping; reconnect with session-resume', { reconnect: 'true' }, 'shutdown');
      }
      await stomp.close();
      http.closeAllConnections();
      connections.close();
      random.close();
      await takeover.close().catch((err: unknown) => log.warn({ err }, 'takeover close failed'));
      await outbox.close();
      await files.stop();
      await presenceTracker.close().catch((err: unknown) => log.warn({ err }, 'presence close failed'));
      interceptor.close();
      await history.close().catch((err: unknown) => log.warn({ err }, 'history close failed'));
      await redis?.quit().catch((err: unknown) => log.warn({ err }, 'redis quit failed'));
      await db.close();
      log.info({ gatewayId }, 'gateway stopped');
    })());

  return { id: gatewayId, http, url, interceptor, stomp, files, close };
}
