import {
  CLIENT_COMMANDS,
  headerEscaping,
  StompProtocolError,
  type Frame,
  type HeaderEscaping,
  type StompVersion,
} from './frame.ts';

export interface ParserLimits {
  /** Whole frame on the wire: command line, header lines, blank line, body and the terminating NUL. */
  maxFrameBytes: number;
  /** Header lines in one frame, repeated ones included. */
  maxHeaders: number;
  /** One header line, without its line end. */
  maxHeaderBytes: number;
  /**
   * The limit of one frame once its headers are read (e.g. larger for some destinations); maxFrameBytes when
   * absent. The command and headers of every frame stay within maxFrameBytes.
   */
  maxFrameBytesFor?: (command: string, headers: Readonly<Record<string, string>>) => number;
}

const LF = 0x0a;
const CR = 0x0d;
const NUL = 0x00;
const EMPTY = Buffer.alloc(0);
const CONTENT_LENGTH = /^[0-9]+$/;

/**
 * Header maps: objects whose prototype is empty, so that a header named `__proto__` or `constructor` is only a header,
 * while V8 still gives them fast (hidden-class) properties, unlike Object.create(null).
 */
const HeaderMap = function () {} as unknown as new () => Record<string, string>;
HeaderMap.prototype = Object.create(null);

const COMMAND = 0;
const HEADERS = 1;
const BODY = 2;
type Phase = typeof COMMAND | typeof HEADERS | typeof BODY;

/**
 * Streaming STOMP frame decoder for one connection. Bytes arrive in chunks of any size; every complete frame is
 * returned as soon as its NUL arrives. Scanning resumes where it stopped, and a chunk that ends on a frame boundary
 * is never copied. Frame bodies share memory with the pushed chunks: callers must not reuse a chunk's memory.
 */
export class FrameParser {
  /** Decides header unescaping; the session sets it once CONNECT has negotiated a version. */
  version: StompVersion = '1.2';

  private readonly maxCommandLength: number;
  /** Unconsumed bytes are buf[start, buf.length); buf is either a chunk as pushed or a view of `store`. */
  private buf: Buffer = EMPTY;
  /** Our own buffer holding an unfinished frame between pushes, with room to append at buf.length. */
  private store: Buffer | null = null;
  private phase: Phase = COMMAND;
  /** First byte of the current frame (or of the heart-beat being skipped). */
  private start = 0;
  /** Where the search for the next delimiter resumes. */
  private scan = 0;
  private headersStart = 0;
  private lineStart = 0;
  private bodyStart = 0;
  private command = '';
  private headers: Record<string, string> = new HeaderMap();
  private headerCount = 0;
  private contentLength = -1;
  private escaping: HeaderEscaping = '1.2';
  /** The limit of the current frame: maxFrameBytes until its headers are read, then its own. */
  private frameLimit: number;
  private failure: Error | null = null;

  constructor(
    private readonly limits: ParserLimits,
    private readonly commands: ReadonlySet<string> = CLIENT_COMMANDS,
  ) {
    this.maxCommandLength = Math.max(0, ...[...commands].map((c) => c.length));
    this.frameLimit = limits.maxFrameBytes;
  }

  /** Bytes of an unfinished frame held between pushes; never more than the frame's limit. */
  get buffered(): number {
    return this.buf.length - this.start;
  }

  /** Returns the frames completed by this chunk. Throws StompProtocolError; after any throw, every push throws it. */
  push(chunk: Buffer | string): Frame[] {
    if (this.failure) throw this.failure;
    try {
      this.append(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      const frames: Frame[] = [];
      for (;;) {
        if (this.phase === COMMAND) {
          if (!this.readCommand()) break;
        } else if (this.phase === HEADERS) {
          if (!this.readHeaders()) break;
        } else {
          const frame = this.readBody();
          if (!frame) break;
          frames.push(frame);
        }
      }
      this.settle();
      return frames;
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      this.buf = EMPTY;
      this.store = null;
      this.headers = new HeaderMap();
      throw err;
    }
  }

  private append(data: Buffer): void {
    if (data.length === 0) return;
    const end = this.buf.length;
    if (this.start === end) {
      // Nothing pending (settle() left buf empty): parse the chunk in place.
      this.buf = data;
      return;
    }
    // settle() guarantees that pending bytes live in our own store.
    let store = this.store!;
    if (store.length - end < data.length) {
      store = this.moveTo(end - this.start + data.length);
    }
    const at = this.buf.length;
    data.copy(store, at);
    this.buf = store.subarray(0, at + data.length);
  }

  /**
   * After a push: drop consumed chunks, and keep an unfinished frame in a store of our own sized to it, so that an
   * idle connection holds neither the caller's chunk nor a store grown for a large chunk since consumed.
   */
  private settle(): void {
    const pending = this.buf.length - this.start;
    if (pending === 0) {
      this.rebase(this.start);
      this.buf = EMPTY;
      this.store = null;
    } else if (this.store === null || this.store.length > 4 * pending + 4096) {
      this.moveTo(pending);
    }
  }

  /** Moves the pending bytes to the front of a new store with room for at least `need` bytes; returns the store. */
  private moveTo(need: number): Buffer {
    const pending = this.buf.length - this.start;
    const store = Buffer.allocUnsafe(Math.max(need * 2, 256));
    this.buf.copy(store, 0, this.start);
    this.rebase(this.start);
    this.store = store;
    this.buf = store.subarray(0, pending);
    return store;
  }

  private rebase(offset: number): void {
    this.start -= offset;
    this.scan -= offset;
    this.headersStart -= offset;
    this.lineStart -= offset;
    this.bodyStart -= offset;
  }

  /** Skips heart-beat EOLs and reads the command line. False when more bytes are needed. */
  private readCommand(): boolean {
    const buf = this.buf;
    for (;;) {
      const lf = buf.indexOf(LF, this.scan);
      if (lf === -1) {
        if (buf.indexOf(NUL, this.scan) !== -1) throw nulInHeaders();
        // A command line longer than any command (plus a CR) can only be an unknown command.
        if (buf.length - this.start > this.maxCommandLength + 1) {
          throw unknownCommand(buf.toString('utf8', this.start, this.start + this.maxCommandLength + 1));
        }
        this.scan = buf.length;
        return false;
      }
      const lineEnd = lf > this.start && buf[lf - 1] === CR ? lf - 1 : lf;
      if (lineEnd === this.start) {
        this.start = this.scan = lf + 1; // a heart-beat
        continue;
      }
      const command = buf.toString('utf8', this.start, Math.min(lineEnd, this.start + this.maxCommandLength + 1));
      if (lineEnd - this.start > this.maxCommandLength || !this.commands.has(command)) throw unknownCommand(command);
      this.command = command;
      this.escaping = headerEscaping(command, this.version);
      this.headers = new HeaderMap();
      this.headerCount = 0;
      this.contentLength = -1;
      this.frameLimit = this.limits.maxFrameBytes;
      this.headersStart = this.lineStart = this.scan = lf + 1;
      this.phase = HEADERS;
      return true;
    }
  }

  /**
   * Finds the header lines up to the blank line, enforcing the limits as bytes arrive; the lines are decoded
   * together once the blank line is in, which costs one string decode per frame instead of one per header.
   */
  private readHeaders(): boolean {
    const buf = this.buf;
    const { maxHeaderBytes, maxHeaders } = this.limits;
    for (;;) {
      const lf = buf.indexOf(LF, this.scan);
      if (lf === -1) {
        // Without this a frame like `SEND\nfoo\0` would wait forever for a header line that cannot come.
        if (buf.indexOf(NUL, this.scan) !== -1) throw nulInHeaders();
        const partial = buf.length - this.lineStart;
        // One byte over the limit may still be the CR of a CR LF.
        if (partial > maxHeaderBytes + 1 || (partial === maxHeaderBytes + 1 && buf[buf.length - 1] !== CR)) {
          throw new StompProtocolError(`header line exceeds ${maxHeaderBytes} bytes`, 'header_bytes');
        }
        this.checkBuffered();
        this.scan = buf.length;
        return false;
      }
      const lineEnd = lf > this.lineStart && buf[lf - 1] === CR ? lf - 1 : lf;
      if (lineEnd === this.lineStart) {
        if (buf.subarray(this.headersStart, this.lineStart).includes(NUL)) throw nulInHeaders();
        if (this.headerCount > 0) this.addHeaders(buf.toString('utf8', this.headersStart, this.lineStart));
        this.bodyStart = this.scan = lf + 1;
        this.phase = BODY;
        this.frameLimit = this.limits.maxFrameBytesFor?.(this.command, this.headers) ?? this.limits.maxFrameBytes;
        // A declared length that cannot fit is refused before its body is buffered.
        const declared = this.bodyStart + this.contentLength + 1 - this.start;
        if (this.contentLength >= 0 && declared > this.frameLimit) throw this.tooLarge();
        return true;
      }
      if (lineEnd - this.lineStart > maxHeaderBytes) {
        throw new StompProtocolError(`header line exceeds ${maxHeaderBytes} bytes`, 'header_bytes');
      }
      if (++this.headerCount > maxHeaders) throw new StompProtocolError(`too many headers (max ${maxHeaders})`, 'headers');
      this.lineStart = this.scan = lf + 1;
    }
  }

  /** Adds the header lines of `text`, each ending in LF or CR LF. */
  private addHeaders(text: string): void {
    for (let from = 0; from < text.length; ) {
      const lf = text.indexOf('\n', from);
      const end = text.charCodeAt(lf - 1) === 0x0d ? lf - 1 : lf;
      const colon = text.indexOf(':', from);
      if (colon === -1 || colon > end) throw new StompProtocolError('malformed header line: no colon');
      if (colon === from) throw new StompProtocolError('malformed header line: empty header name');
      this.addHeader(
        unescapeHeader(text.slice(from, colon), this.escaping),
        unescapeHeader(text.slice(colon + 1, end), this.escaping),
      );
      from = lf + 1;
    }
  }

  private addHeader(name: string, value: string): void {
    if (this.headers[name] !== undefined) return; // a repeated header: the first one wins
    if (name === 'content-length') {
      if (!CONTENT_LENGTH.test(value)) throw new StompProtocolError(`invalid content-length ${quote(value)}`);
      this.contentLength = Number(value);
    }
    this.headers[name] = value;
  }

  /** Reads the body and its NUL. Null when more bytes are needed. */
  private readBody(): Frame | null {
    const buf = this.buf;
    let nul: number;
    if (this.contentLength >= 0) {
      nul = this.bodyStart + this.contentLength;
      if (nul >= buf.length) return null; // cannot outgrow the limit: checked against content-length already
      if (buf[nul] !== NUL) throw new StompProtocolError('frame body not terminated by NUL');
    } else {
      nul = buf.indexOf(NUL, this.scan);
      if (nul === -1) {
        this.checkBuffered();
        this.scan = buf.length;
        return null;
      }
      if (nul + 1 - this.start > this.frameLimit) throw this.tooLarge();
    }
    const frame: Frame = {
      command: this.command,
      headers: this.headers,
      body: nul === this.bodyStart ? EMPTY : buf.subarray(this.bodyStart, nul),
    };
    this.headers = new HeaderMap();
    this.start = this.scan = nul + 1;
    this.phase = COMMAND;
    return frame;
  }

  /** An unfinished frame is refused as soon as it holds more bytes than a whole frame may. */
  private checkBuffered(): void {
    if (this.buf.length - this.start > this.frameLimit) throw this.tooLarge();
  }

  private tooLarge(): StompProtocolError {
    return new StompProtocolError(`frame exceeds ${this.frameLimit} bytes`, 'frame_bytes');
  }
}

/** Undoes header escaping: `\n`, `\c`, `\\` (1.1 and 1.2) and `\r` (1.2); any other escape is a violation. */
function unescapeHeader(s: string, escaping: HeaderEscaping): string {
  if (escaping === 'none') return s;
  let from = s.indexOf('\\');
  if (from === -1) return s;
  let out = '';
  let copied = 0;
  while (from !== -1) {
    const c = s[from + 1];
    let decoded: string;
    if (c === 'n') decoded = '\n';
    else if (c === 'c') decoded = ':';
    else if (c === '\\') decoded = '\\';
    else if (c === 'r' && escaping === '1.2') decoded = '\r';
    else if (c === undefined) throw new StompProtocolError('invalid escape sequence \\ at end of header');
    else throw new StompProtocolError(`invalid escape sequence \\${printable(c)} in header`);
    out += s.slice(copied, from) + decoded;
    copied = from + 2;
    from = s.indexOf('\\', copied);
  }
  return out + s.slice(copied);
}

function unknownCommand(command: string): StompProtocolError {
  return new StompProtocolError(`unknown command ${printable(command)}`);
}

/** Text from the peer as it may appear in an error message: plain if printable ASCII, quoted otherwise. */
function printable(s: string): string {
  const short = s.length > 32 ? s.slice(0, 32) : s;
  return /^[\x21-\x7e]+$/.test(short) ? short : quote(short);
}

function quote(s: string): string {
  return JSON.stringify(s.length > 32 ? s.slice(0, 32) : s);
}

const nulInHeaders = (): StompProtocolError => new StompProtocolError('malformed frame: NUL before the end of the headers');
