import { z } from 'zod';

/** Every setting the gateway reads, validated once at start. README's configuration table mirrors this. */
const Env = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  DATA_DIR: z.string().default('./data'),
  /** PostgreSQL URL; unset means the embedded PGlite database under DATA_DIR. */
  DATABASE_URL: z.string().url().optional(),
  /** AMQP URL of RabbitMQ; unset means the in-process broker. */
  BROKER_URL: z.string().url().optional(),
  /** Redis URL for delivery history; unset means in-process history. */
  REDIS_URL: z.string().url().optional(),
  /** HS256 secret; unset means one generated and kept under DATA_DIR. */
  JWT_SECRET: z.string().min(32).optional(),
  ACCESS_TOKEN_TTL_S: z.coerce.number().int().positive().default(900),
  REFRESH_TOKEN_TTL_S: z.coerce.number().int().positive().default(30 * 24 * 3600),
  /** After an access token expires mid-session, how long the client has to send /app/auth.refresh. */
  TOKEN_GRACE_S: z.coerce.number().int().nonnegative().default(60),
  GATEWAY_ID: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_FRAME_BYTES: z.coerce.number().int().positive().default(64 * 1024),
  MAX_HEADERS: z.coerce.number().int().positive().default(64),
  MAX_HEADER_BYTES: z.coerce.number().int().positive().default(8 * 1024),
  /** Frames of a SEND to `/topic/...` or `/queue/...` (RabbitMQ Web-STOMP clients send up to 1 MiB and more). */
  MAX_RELAY_FRAME_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** One WebSocket message (it may carry several frames); past it the socket closes with 1009, no ERROR frame. */
  MAX_WS_MESSAGE_BYTES: z.coerce.number().int().positive().default(2 * 1024 * 1024),
  MAX_SUBSCRIPTIONS: z.coerce.number().int().positive().default(256),
  /** Transactions a session may have open at once. */
  MAX_TRANSACTIONS: z.coerce.number().int().positive().default(4),
  /** Frames one transaction may hold until COMMIT; one more aborts it (TOO_LARGE). */
  MAX_TRANSACTION_FRAMES: z.coerce.number().int().positive().default(128),
  /** Bytes (bodies and headers) one transaction may hold until COMMIT; more aborts it (TOO_LARGE). */
  MAX_TRANSACTION_BYTES: z.coerce.number().int().positive().default(2 * 1024 * 1024),
  /** Open WebSockets per gateway; past it upgrades are refused with 503, so the process keeps file descriptors for /healthz. */
  MAX_CONNECTIONS: z.coerce.number().int().positive().default(10_000),
  /** STOMP sessions one user may have open on one gateway; one more CONNECT gets ERROR. */
  MAX_CONNECTIONS_PER_USER: z.coerce.number().int().positive().default(32),
  /** A WebSocket that has not had CONNECT accepted by then gets ERROR and is closed. */
  CONNECT_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /** Outbound bytes a slow consumer may have queued before its session is ended. */
  MAX_PENDING_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** Heart-beat interval the server wants from clients, in ms (0 disables heart-beats both ways). */
  HEARTBEAT_MS: z.coerce.number().int().nonnegative().default(10_000),
  /** Agreed heart-beat intervals are clamped into [HEARTBEAT_MIN_MS, HEARTBEAT_MAX_MS]; the server offers to send as often as the minimum. */
  HEARTBEAT_MIN_MS: z.coerce.number().int().positive().default(1000),
  HEARTBEAT_MAX_MS: z.coerce.number().int().positive().default(60_000),
  /** Bytes of a session's frames waiting to be handled at which the gateway stops reading it (TCP slows the client). */
  MAX_QUEUED_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** Frames a session may send per second before it gets RATE_LIMITED. */
  RATE_LIMIT_PER_S: z.coerce.number().int().positive().default(200),
  REPLAY_LIMIT: z.coerce.number().int().positive().default(1000),
  HISTORY_WINDOW: z.coerce.number().int().positive().default(1024),
  /** How long a session's delivery history outlives its connection, for session-resume. */
  RESUME_TTL_S: z.coerce.number().int().positive().default(3600),
  /** How long a user waits for a stranger (/app/random.join, POST /api/random/match) before MATCH_TIMEOUT / 408. */
  RANDOM_MATCH_TIMEOUT_S: z.coerce.number().int().positive().max(600).default(30),
  /** AMQP basic.qos takes at most 65535. */
  BROKER_PREFETCH: z.coerce.number().int().positive().max(65_535).default(256),
  /** How long a gateway's queue outlives its gateway. */
  BROKER_QUEUE_EXPIRES_MS: z.coerce.number().int().positive().default(60_000),
  /** Most words in a /topic pattern or routing key; with TOPIC_MAX_HASHES it keeps topic matching (ours and RabbitMQ's) cheap. */
  TOPIC_MAX_WORDS: z.coerce.number().int().positive().default(16),
  /** Most `#` words in a /topic pattern: RabbitMQ's matching cost grows steeply with each one (README, "Limits"). */
  TOPIC_MAX_HASHES: z.coerce.number().int().nonnegative().default(1),
  /** Most ready messages a named /queue holds; a SEND to a full queue is refused. */
  QUEUE_MAX_LENGTH: z.coerce.number().int().positive().default(1000),
  /** Longest wait for RabbitMQ to answer a channel operation (declare, bind, consume...) before the link is replaced. */
  BROKER_RPC_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /** Security log lines (failed logins, refusals, cut sessions) written per second; the rest are counted. */
  AUDIT_LINES_PER_S: z.coerce.number().int().positive().default(50),
  /** Bytes one uploaded file may have; the upload stops as they arrive past it (413 TOO_LARGE, nothing kept). */
  MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(1024 * 1024 * 1024),
  /** Uploads one user may start per minute (counted before the body is read; shared by all gateways with REDIS_URL). */
  UPLOADS_PER_MINUTE: z.coerce.number().int().positive().default(30),
  /** Bytes one user's stored uploads may add up to; checked against Content-Length, then as the bytes arrive. */
  UPLOAD_QUOTA_BYTES: z.coerce.number().int().positive().default(10 * 1024 * 1024 * 1024),
  /** An upload no live message references is removed once it is this many seconds old (by a periodic sweep). */
  UPLOAD_ORPHAN_TTL_S: z.coerce.number().int().positive().default(3600),
  /** How often each gateway sweeps for orphaned uploads. */
  UPLOAD_SWEEP_MS: z.coerce.number().int().positive().default(60_000),
  /** How often a gateway tries to take the outbox sweep (one gateway sweeps at a time). */
  OUTBOX_SWEEP_MS: z.coerce.number().int().positive().default(2_000),
  /**
   * A room event stored this long ago and not yet confirmed by the broker is published again by the sweep. Longer
   * than a publisher confirm may take (10 s), so a publish still in flight is not doubled.
   */
  OUTBOX_AGE_MS: z.coerce.number().int().positive().default(15_000),
  /** Login attempts per username per LOGIN_RATE_WINDOW_S (a successful login starts the count again). */
  LOGIN_RATE_PER_ACCOUNT: z.coerce.number().int().positive().default(10),
  /** Login attempts per client address per LOGIN_RATE_WINDOW_S, whatever the usernames. */
  LOGIN_RATE_PER_IP: z.coerce.number().int().positive().default(100),
  LOGIN_RATE_WINDOW_S: z.coerce.number().int().positive().default(900),
  /** Sign-ups per client address per SIGNUP_RATE_WINDOW_S: each one costs an argon2 hash. */
  SIGNUP_RATE_PER_IP: z.coerce.number().int().positive().default(10),
  SIGNUP_RATE_WINDOW_S: z.coerce.number().int().positive().default(3600),
  /**
   * Which proxies' X-Forwarded-For names the client address (express `trust proxy`). Unset or `false`: none, the
   * client address is the socket's peer. `loopback` for nginx on the same host (npm run cluster); a hop count, or
   * a comma list of addresses, subnets and express's names (`uniquelocal`) otherwise.
   */
  TRUST_PROXY: z
    .string()
    .default('false')
    .refine((v) => v !== 'true', 'true would believe any client about its address: name the proxy (loopback, its address, a hop count)')
    .transform((v) => (v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v)),
  /** How long a retired refresh token may still be exchanged (two tabs refreshing at once) before reuse revokes its family. */
  REFRESH_REUSE_GRACE_S: z.coerce.number().int().nonnegative().default(10),
});

export type Config = z.infer<typeof Env>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const blanksRemoved = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = Env.safeParse(blanksRemoved);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
