/**
 * Lean STOMP 1.2 framing on strings, shared by the Node generator and the k6 scripts (so it uses nothing
 * from Node or k6). Text frames only: the load bodies are JSON or plain text and never hold a NUL octet,
 * so a frame ends at the first NUL and `content-length` need not be honoured on the way in.
 */

export interface StompFrame {
  command: string;
  headers: Record<string, string>;
  body: string;
}

const UNESCAPES: Readonly<Record<string, string>> = { '\\\\': '\\', '\\n': '\n', '\\c': ':', '\\r': '\r' };
const ESCAPES: Readonly<Record<string, string>> = { '\\': '\\\\', '\n': '\\n', ':': '\\c', '\r': '\\r' };

/** One frame as wire text. CONNECT headers go unescaped, as STOMP 1.2 asks. */
export function encodeFrame(command: string, headers: Record<string, string>, body = ''): string {
  let out = command + '\n';
  const escape = command !== 'CONNECT' && command !== 'STOMP';
  for (const name in headers) {
    const value = headers[name]!;
    out += escape ? `${escapeHeader(name)}:${escapeHeader(value)}\n` : `${name}:${value}\n`;
  }
  return out + '\n' + body + '\0';
}

/** Splits a stream of wire text into frames; heart-beat EOLs between frames are skipped and counted. */
export class FrameDecoder {
  private pending = '';
  heartbeats = 0;

  /** Every complete frame in `chunk` (with what was left over from the last call). */
  push(chunk: string): StompFrame[] {
    const text = this.pending ? this.pending + chunk : chunk;
    const frames: StompFrame[] = [];
    let start = 0;
    for (;;) {
      while (start < text.length && (text.charCodeAt(start) === 10 || text.charCodeAt(start) === 13)) {
        if (text.charCodeAt(start) === 10) this.heartbeats++;
        start++;
      }
      const end = text.indexOf('\0', start);
      if (end < 0) break;
      frames.push(parseFrame(text, start, end));
      start = end + 1;
    }
    this.pending = start < text.length ? text.slice(start) : '';
    return frames;
  }
}

function parseFrame(text: string, start: number, end: number): StompFrame {
  let lineEnd = text.indexOf('\n', start);
  if (lineEnd < 0 || lineEnd > end) lineEnd = end;
  const command = stripCr(text.slice(start, lineEnd));
  const unescape = command !== 'CONNECTED';
  const headers: Record<string, string> = {};
  let pos = lineEnd + 1;
  while (pos < end) {
    let eol = text.indexOf('\n', pos);
    if (eol < 0 || eol > end) eol = end;
    const line = stripCr(text.slice(pos, eol));
    pos = eol + 1;
    if (line === '') break;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = unescape ? unescapeHeader(line.slice(0, colon)) : line.slice(0, colon);
    // The first occurrence of a repeated header wins (STOMP 1.2).
    if (headers[name] === undefined) headers[name] = unescape ? unescapeHeader(line.slice(colon + 1)) : line.slice(colon + 1);
  }
  return { command, headers, body: pos < end ? text.slice(pos, end) : '' };
}

const stripCr = (s: string): string => (s.charCodeAt(s.length - 1) === 13 ? s.slice(0, -1) : s);
const unescapeHeader = (s: string): string => (s.indexOf('\\') < 0 ? s : s.replace(/\\[\\nrc]/g, (m) => UNESCAPES[m]!));
const escapeHeader = (s: string): string => (/[\\\n:\r]/.test(s) ? s.replace(/[\\\n:\r]/g, (c) => ESCAPES[c]!) : s);
