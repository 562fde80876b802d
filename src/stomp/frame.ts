/**
 * STOMP frames (1.0, 1.1, 1.2): the frame type, the command sets, header escaping and the encoder.
 * The streaming decoder is in parser.ts.
 */

import { isUtf8 } from 'node:buffer';
import type { LimitName } from '../metrics.ts';

export type StompVersion = '1.0' | '1.1' | '1.2';

export interface Frame {
  command: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** A protocol violation by the peer: the session must answer with ERROR and close. */
export class StompProtocolError extends Error {
  override readonly name = 'StompProtocolError';

  /** `limit`: the limit the frame broke, when that is the violation (counted in /metrics). */
  constructor(
    message: string,
    readonly limit?: LimitName,
  ) {
    super(message);
  }
}

export const CLIENT_COMMANDS: ReadonlySet<string> = new Set([
  'CONNECT',
  'STOMP',
  'SEND',
  'SUBSCRIBE',
  'UNSUBSCRIBE',
  'ACK',
  'NACK',
  'BEGIN',
  'COMMIT',
  'ABORT',
  'DISCONNECT',
]);

export const SERVER_COMMANDS: ReadonlySet<string> = new Set(['CONNECTED', 'MESSAGE', 'RECEIPT', 'ERROR']);

/** How header names and values are escaped on the wire. */
export type HeaderEscaping = 'none' | '1.1' | '1.2';

/** CONNECT and CONNECTED are never escaped, so that 1.0 peers can read them before a version is agreed. */
export function headerEscaping(command: string, version: StompVersion): HeaderEscaping {
  if (version === '1.0' || command === 'CONNECT' || command === 'CONNECTED') return 'none';
  return version;
}

const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', ':': '\\c', '\r': '\\r' };
const escapeOne = (c: string): string => ESCAPES[c]!;
const ESCAPED_12 = /[\\\n:\r]/g;
const ESCAPED_11 = /[\\\n:]/g;
// Without escaping, a line break or (in a name) a colon would corrupt the frame stream; they cannot be carried.
const UNSAFE_LINE = /[\r\n]/g;
const UNSAFE_NAME = /[\r\n:]/g;

/** Escapes a header name or value; most have nothing to escape, and a plain scan finds that faster than a RegExp. */
function escapeHeader(s: string, escaping: HeaderEscaping, isName: boolean): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x5c || c === 0x0a || c === 0x0d || c === 0x3a) {
      if (escaping === '1.2') return s.replace(ESCAPED_12, escapeOne);
      if (escaping === '1.1') return s.replace(ESCAPED_11, escapeOne);
      return isName ? s.replace(UNSAFE_NAME, '_') : s.replace(UNSAFE_LINE, ' ');
    }
  }
  return s;
}

/**
 * Encodes a frame for a peer speaking `version`, in one Buffer allocation. `content-length` always states the real
 * body length: it is added when the body is non-empty and the frame has none, and a given one is overwritten.
 * In 1.0 (and in CONNECT/CONNECTED) CR and LF cannot be carried in headers: they become spaces (and a colon in a
 * name becomes `_`), so that the stream stays well-formed.
 */
export function encodeFrame(frame: Frame, version: StompVersion): Buffer {
  const escaping = headerEscaping(frame.command, version);
  const body = frame.body;
  let head = frame.command + '\n';
  let hasLength = false;
  for (const name of Object.keys(frame.headers)) {
    if (name === 'content-length') {
      hasLength = true;
      head += `content-length:${body.length}\n`;
    } else {
      head += escapeHeader(name, escaping, true) + ':' + escapeHeader(frame.headers[name]!, escaping, false) + '\n';
    }
  }
  if (!hasLength && body.length > 0) head += `content-length:${body.length}\n`;
  return withBody(head, body);
}

/** `text`, the blank line, `body` and the NUL, in one allocation. */
function withBody(text: string, body: Buffer): Buffer {
  const head = text + '\n';
  const headLength = Buffer.byteLength(head);
  const out = Buffer.allocUnsafe(headLength + body.length + 1);
  out.write(head, 0, headLength, 'utf8');
  body.copy(out, headLength);
  out[out.length - 1] = 0;
  return out;
}

/** MESSAGE headers that differ for each subscriber: never part of a shared tail (a sender cannot set them). */
const PER_SUBSCRIBER = new Set(['subscription', 'message-id', 'ack', 'content-length']);

/** What every subscriber of one message shares: whether its body is text, and its encoded tail per version. */
interface SharedEncoding {
  text?: boolean;
  tails: Partial<Record<StompVersion, Buffer>>;
}

/**
 * Shared encodings by message. A room message goes to every subscriber with the same headers and body, so all but
 * the per-subscriber headers is encoded (and its body checked) once; entries go with their message (a WeakMap).
 */
const shared = new WeakMap<object, SharedEncoding>();

function sharedEncoding(message: object): SharedEncoding {
  let encoding = shared.get(message);
  if (!encoding) shared.set(message, (encoding = { tails: {} }));
  return encoding;
}

/**
 * Whether a MESSAGE can travel as a text WebSocket message: its body is valid UTF-8. One that is not goes as a
 * binary message, which a browser's WebSocket would otherwise refuse (and close on). Decided once per message.
 */
export function isTextMessage(message: { headers: Record<string, string>; body: Buffer }): boolean {
  const encoding = sharedEncoding(message);
  return (encoding.text ??= isUtf8(message.body));
}

/** The part of a MESSAGE every subscriber shares: its headers but the per-subscriber ones, content-length, body, NUL. */
function messageTail(message: { headers: Record<string, string>; body: Buffer }, version: StompVersion): Buffer {
  const { tails } = sharedEncoding(message);
  const cached = tails[version];
  if (cached) return cached;
  const escaping = headerEscaping('MESSAGE', version);
  const { headers, body } = message;
  let text = '';
  for (const name of Object.keys(headers)) {
    if (PER_SUBSCRIBER.has(name)) continue;
    text += escapeHeader(name, escaping, true) + ':' + escapeHeader(headers[name]!, escaping, false) + '\n';
  }
  if (body.length > 0) text += `content-length:${body.length}\n`;
  const tail = withBody(text, body);
  tails[version] = tail;
  return tail;
}

/**
 * Encodes a MESSAGE: `own` (subscription, message-id, ack, and destination when the message names none) in front
 * of the message's shared tail, which is encoded once per message and version. The same bytes as encodeFrame of
 * the merged headers, with `own` winning over the message's headers of the same names.
 */
export function encodeMessage(own: Record<string, string>, message: { headers: Record<string, string>; body: Buffer }, version: StompVersion): Buffer {
  const escaping = headerEscaping('MESSAGE', version);
  let head = 'MESSAGE\n';
  for (const name of Object.keys(own)) {
    if (name !== 'destination' || message.headers.destination === undefined) {
      head += escapeHeader(name, escaping, true) + ':' + escapeHeader(own[name]!, escaping, false) + '\n';
    }
  }
  const tail = messageTail(message, version);
  const headLength = Buffer.byteLength(head);
  const out = Buffer.allocUnsafe(headLength + tail.length);
  out.write(head, 0, headLength, 'utf8');
  tail.copy(out, headLength);
  return out;
}
