/** Error codes sent on /user/queue/errors and in REST error bodies (PROTOCOL.md, "Errors"). */
export const ERROR_CODES = [
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_REQUEST',
  'CONFLICT',
  'RATE_LIMITED',
  'TOKEN_EXPIRED',
  'TOO_LARGE',
  'BROKER_UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error a handler raises on purpose; its code and message reach the client as they are. */
export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ChatError';
  }
}

export const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_REQUEST: 400,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  TOKEN_EXPIRED: 401,
  TOO_LARGE: 413,
  BROKER_UNAVAILABLE: 503,
  INTERNAL: 500,
};
