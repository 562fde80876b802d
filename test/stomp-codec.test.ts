import { FrameImpl, Parser as StompJsParser, type IRawFrameType } from '@stomp/stompjs';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_COMMANDS,
  encodeFrame,
  encodeMessage,
  isTextMessage,
  SERVER_COMMANDS,
  StompProtocolError,
  type Frame,
  type StompVersion,
} from '../src/stomp/frame.ts';
import { FrameParser, type ParserLimits } from '../src/stomp/parser.ts';
import { prng } from './support/prng.ts';

const LIMITS: ParserLimits = { maxFrameBytes: 65536, maxHeaders: 64, maxHeaderBytes: 8192 };

/** A frame as plain data, so that assertions compare exact values. */
interface Plain {
  command: string;
  headers: Record<string, string>;
  body: string;
}

function plain(frame: Frame): Plain {
  return { command: frame.command, headers: { ...frame.headers }, body: frame.body.toString('latin1') };
}

function parse(input: string | Buffer | Array<string | Buffer>, parser = new FrameParser(LIMITS)): Plain[] {
  const chunks = Array.isArray(input) ? input : [input];
  return chunks.flatMap((chunk) => parser.push(chunk)).map(plain);
}

/** The error a push throws; fails the test when it throws nothing or anything but a StompProtocolError. */
function protocolError(input: string | Buffer | Array<string | Buffer>, parser = new FrameParser(LIMITS)): string {
  try {
    parse(input, parser);
  } catch (err) {
    expect(err).toBeInstanceOf(StompProtocolError);
    return (err as Error).message;
  }
  throw new Error('expected a StompProtocolError');
}

function latin1(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function randomInt(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function randomChunks(rand: () => number, data: Buffer, maxChunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const size = randomInt(rand, 1, maxChunk);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

describe('FrameParser: streaming', () => {
  const stream = latin1(
    '\n' +
      'SEND\ndestination:/queue/a\ncontent-length:5\n\na\0b\0c\0' +
      '\r\n\n' +
      'SUBSCRIBE\r\nid:1\r\ndestination:/topic/x\r\n\r\n\0' +
      '\n' +
      'ACK\nid:m-1\n\nplain body\0' +
      '\r\n',
  );
  const expected: Plain[] = [
    { command: 'SEND', headers: { destination: '/queue/a', 'content-length': '5' }, body: 'a\0b\0c' },
    { command: 'SUBSCRIBE', headers: { id: '1', destination: '/topic/x' }, body: '' },
    { command: 'ACK', headers: { id: 'm-1' }, body: 'plain body' },
  ];

  it('starts at version 1.2', () => {
    expect(new FrameParser(LIMITS).version).toBe('1.2');
  });

  it('parses several frames and heart-beats in one chunk', () => {
    expect(parse(stream)).toEqual(expected);
  });

  it('parses the same frames when the stream is split at any two offsets', () => {
    for (let i = 0; i <= stream.length; i++) {
      for (let j = i; j <= stream.length; j++) {
        const chunks = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
        expect(parse(chunks)).toEqual(expected);
      }
    }
  });

  it('parses the stream fed one byte at a time, returning each frame on its NUL', () => {
    const parser = new FrameParser(LIMITS);
    const completedAt: number[] = [];
    const frames: Plain[] = [];
    for (let i = 0; i < stream.length; i++) {
      const got = parser.push(stream.subarray(i, i + 1)).map(plain);
      if (got.length > 0) completedAt.push(i);
      frames.push(...got);
    }
    expect(frames).toEqual(expected);
    const nuls = [stream.indexOf('c\0') + 1, stream.indexOf('\r\n\r\n\0') + 4, stream.lastIndexOf(0)];
    expect(completedAt).toEqual(nuls);
  });

  it('accepts string chunks as UTF-8', () => {
    expect(parse(['SEND\ndestination:/q/é\n\nhé', 'llo€\0'])).toEqual([
      { command: 'SEND', headers: { destination: '/q/é' }, body: Buffer.from('héllo€').toString('latin1') },
    ]);
  });

  it('skips heart-beats before, between and after frames, also a CR LF split across chunks', () => {
    const parser = new FrameParser(LIMITS);
    expect(parser.push('\n\r\n\n\r')).toEqual([]);
    expect(parser.push('\n')).toEqual([]);
    expect(parse(['DISCONNECT\nreceipt:7\n\n\0\r', '\n\nDISCONNECT\n\n\0\n\n'], parser)).toEqual([
      { command: 'DISCONNECT', headers: { receipt: '7' }, body: '' },
      { command: 'DISCONNECT', headers: {}, body: '' },
    ]);
  });

  it('returns the body of a whole frame in one chunk without copying it', () => {
    const chunk = Buffer.from('SEND\ndestination:/q\n\nhello\0');
    const [frame] = new FrameParser(LIMITS).push(chunk);
    expect(frame!.body.toString()).toBe('hello');
    expect(frame!.body.buffer).toBe(chunk.buffer);
    expect(frame!.body.byteOffset).toBe(chunk.byteOffset + chunk.indexOf('hello'));
  });

  it('keeps bodies of returned frames intact while later chunks arrive', () => {
    const parser = new FrameParser(LIMITS);
    expect(parser.push('SEND\ndestination:/q\n\nfir')).toEqual([]);
    const [first] = parser.push('st\0SEND\ndestination:/q\n\nsec');
    const [second] = parser.push('ond\0');
    expect(plain(first!).body).toBe('first');
    expect(plain(second!).body).toBe('second');
  });

  it('reads exactly content-length bytes of body, NULs included', () => {
    const body = Buffer.from([0, 1, 0, 0xff, 0, 0x0a]);
    const wire = Buffer.concat([latin1('SEND\ndestination:/q\ncontent-length:6\n\n'), body, Buffer.from([0])]);
    const [frame] = new FrameParser(LIMITS).push(wire);
    expect(frame!.body.equals(body)).toBe(true);
    expect(parse('SEND\ncontent-length:0\n\n\0')).toEqual([
      { command: 'SEND', headers: { 'content-length': '0' }, body: '' },
    ]);
  });

  it('accepts CR LF line ends for command and headers', () => {
    expect(parse('SEND\r\ndestination:/q\r\nx:y\r\n\r\nbody\0')).toEqual([
      { command: 'SEND', headers: { destination: '/q', x: 'y' }, body: 'body' },
    ]);
  });

  it('keeps the first of repeated headers', () => {
    expect(parse('SEND\nfoo:first\nfoo:second\ncontent-length:1\ncontent-length:9\n\nx\0')).toEqual([
      { command: 'SEND', headers: { foo: 'first', 'content-length': '1' }, body: 'x' },
    ]);
  });

  it('keeps colons after the first in the value, and spaces as they are', () => {
    expect(parse('SEND\nurl: http://a:1/ \n\n\0')).toEqual([
      { command: 'SEND', headers: { url: ' http://a:1/ ' }, body: '' },
    ]);
  });

  it('gives header names like __proto__ and constructor no special meaning', () => {
    expect(parse('SEND\n__proto__:a\nconstructor:b\ntoString:c\n\n\0')).toEqual([
      { command: 'SEND', headers: { ['__proto__']: 'a', constructor: 'b', toString: 'c' }, body: '' },
    ]);
  });

  it('parses server frames with SERVER_COMMANDS and refuses them by default', () => {
    const wire = 'MESSAGE\nsubscription:1\nmessage-id:2\ndestination:/q\n\nhi\0';
    expect(parse(wire, new FrameParser(LIMITS, SERVER_COMMANDS))).toEqual([
      { command: 'MESSAGE', headers: { subscription: '1', 'message-id': '2', destination: '/q' }, body: 'hi' },
    ]);
    expect(protocolError(wire)).toBe('unknown command MESSAGE');
  });
});

describe('FrameParser: header escaping', () => {
  it('unescapes \\n \\c \\\\ \\r in 1.2', () => {
    expect(parse('SEND\nk\\cey:a\\nb\\cc\\\\d\\re\n\n\0')).toEqual([
      { command: 'SEND', headers: { 'k:ey': 'a\nb:c\\d\re' }, body: '' },
    ]);
  });

  it('unescapes \\n \\c \\\\ in 1.1 and refuses \\r', () => {
    const parser = new FrameParser(LIMITS);
    parser.version = '1.1';
    expect(parse('SEND\nk\\cey:a\\nb\\cc\\\\d\n\n\0', parser)).toEqual([
      { command: 'SEND', headers: { 'k:ey': 'a\nb:c\\d' }, body: '' },
    ]);
    expect(protocolError('SEND\nk:a\\rb\n\n\0', parser)).toBe('invalid escape sequence \\r in header');
  });

  it('does not unescape in 1.0', () => {
    const parser = new FrameParser(LIMITS);
    parser.version = '1.0';
    expect(parse('SEND\nk:a\\nb\\t\\\n\n\0', parser)).toEqual([
      { command: 'SEND', headers: { k: 'a\\nb\\t\\' }, body: '' },
    ]);
  });

  it('does not unescape CONNECT (but does STOMP) in 1.2', () => {
    expect(parse('CONNECT\nlogin:a\\b\npasscode:x\\cy\\t\n\n\0STOMP\nlogin:a\\cb\n\n\0')).toEqual([
      { command: 'CONNECT', headers: { login: 'a\\b', passcode: 'x\\cy\\t' }, body: '' },
      { command: 'STOMP', headers: { login: 'a:b' }, body: '' },
    ]);
  });

  it('does not unescape CONNECTED', () => {
    expect(parse('CONNECTED\nserver:a\\cb\\\n\n\0', new FrameParser(LIMITS, SERVER_COMMANDS))).toEqual([
      { command: 'CONNECTED', headers: { server: 'a\\cb\\' }, body: '' },
    ]);
  });

  it('refuses unknown escapes and a trailing backslash in 1.2', () => {
    expect(protocolError('SEND\nk:a\\tb\n\n\0')).toBe('invalid escape sequence \\t in header');
    expect(protocolError('SEND\nk\\x:v\n\n\0')).toBe('invalid escape sequence \\x in header');
    expect(protocolError('SEND\nk:a\\\n\n\0')).toBe('invalid escape sequence \\ at end of header');
    expect(protocolError('SEND\nk\\:a\n\n\0')).toBe('invalid escape sequence \\ at end of header');
    expect(protocolError('SEND\nk:a\\ b\n\n\0')).toBe('invalid escape sequence \\" " in header');
  });

  it('refuses every escape other than \\n \\c \\\\ \\r', () => {
    const rand = prng(7);
    const allowed = new Set(['n', 'c', '\\', 'r']);
    for (let i = 0; i < 200; i++) {
      const c = String.fromCharCode(randomInt(rand, 0x21, 0x7e));
      if (allowed.has(c)) continue;
      const wire = `SEND\nkey:va\\${c}lue\n\n\0`;
      const chunks = randomChunks(rand, latin1(wire), 5);
      expect(protocolError(chunks)).toBe(`invalid escape sequence \\${c} in header`);
    }
  });
});

describe('FrameParser: limits', () => {
  it('accepts a frame of exactly maxFrameBytes and refuses one byte more', () => {
    const head = 'SEND\ndestination:/q\n\n'; // 21 bytes
    const limits = { ...LIMITS, maxFrameBytes: 64 };
    expect(parse(head + 'x'.repeat(42) + '\0', new FrameParser(limits))).toHaveLength(1);
    expect(protocolError(head + 'x'.repeat(43) + '\0', new FrameParser(limits))).toBe('frame exceeds 64 bytes');
  });

  it('does not count heart-beats towards a frame', () => {
    const limits = { ...LIMITS, maxFrameBytes: 64 };
    const wire = '\n'.repeat(100) + 'SEND\ndestination:/q\n\n' + 'x'.repeat(42) + '\0\n';
    expect(parse(wire + wire, new FrameParser(limits))).toHaveLength(2);
  });

  it('refuses a body that never ends as soon as the buffered frame exceeds maxFrameBytes', () => {
    const parser = new FrameParser({ ...LIMITS, maxFrameBytes: 64 });
    expect(parser.push('SEND\ndestination:/q\n\n')).toEqual([]);
    for (let i = 0; i < 43; i++) expect(parser.push('x')).toEqual([]);
    expect(protocolError('x', parser)).toBe('frame exceeds 64 bytes');
  });

  it('refuses headers that never end as soon as the buffered frame exceeds maxFrameBytes', () => {
    const parser = new FrameParser({ ...LIMITS, maxFrameBytes: 64 });
    expect(parser.push('SEND\n')).toEqual([]);
    for (let i = 0; i < 14; i++) expect(parser.push('h:v\n')).toEqual([]); // 5 + 14 * 4 = 61 bytes
    expect(parser.push('h:v')).toEqual([]); // 64
    expect(protocolError('\n', parser)).toBe('frame exceeds 64 bytes');
  });

  it('refuses a content-length that cannot fit before its body arrives', () => {
    const head = 'SEND\ndestination:/q\ncontent-length:'; // with "NN\n\n": 39 bytes, so 24 body bytes fit in 64
    const limits = { ...LIMITS, maxFrameBytes: 64 };
    expect(parse(head + '24\n\n' + 'x'.repeat(24) + '\0', new FrameParser(limits))).toHaveLength(1);
    expect(protocolError(head + '25\n\n', new FrameParser(limits))).toBe('frame exceeds 64 bytes');
    expect(protocolError(head + '99999999999999999999999\n\n', new FrameParser(limits))).toBe(
      'frame exceeds 64 bytes',
    );
  });

  it('accepts maxHeaders headers and refuses one more', () => {
    const limits = { ...LIMITS, maxHeaders: 3 };
    expect(parse('SEND\na:1\nb:2\nc:3\n\n\0', new FrameParser(limits))).toHaveLength(1);
    expect(protocolError('SEND\na:1\nb:2\nc:3\nd:4\n', new FrameParser(limits))).toBe('too many headers (max 3)');
    expect(protocolError('SEND\na:1\na:2\na:3\na:4\n', new FrameParser(limits))).toBe('too many headers (max 3)');
  });

  it('accepts a header line of exactly maxHeaderBytes (its line end aside) and refuses one byte more', () => {
    const limits = { ...LIMITS, maxHeaderBytes: 10 };
    expect(parse('SEND\nk:12345678\n\n\0', new FrameParser(limits))).toHaveLength(1);
    expect(parse(['SEND\nk:12345678\r', '\n\r\n\0'], new FrameParser(limits))).toHaveLength(1);
    expect(protocolError('SEND\nk:123456789\n\n\0', new FrameParser(limits))).toBe('header line exceeds 10 bytes');
  });

  it('refuses a header line that never ends as soon as it exceeds maxHeaderBytes', () => {
    const parser = new FrameParser({ ...LIMITS, maxHeaderBytes: 10 });
    expect(parser.push('SEND\nk:12345678')).toEqual([]);
    expect(protocolError('9', parser)).toBe('header line exceeds 10 bytes');
    // One byte over may be the CR of a CR LF, so only the byte after it decides.
    const crlf = new FrameParser({ ...LIMITS, maxHeaderBytes: 10 });
    expect(crlf.push('SEND\nk:12345678\r')).toEqual([]);
    expect(protocolError('x', crlf)).toBe('header line exceeds 10 bytes');
  });

  it('refuses oversized header lines of random sizes, whole or in pieces', () => {
    const rand = prng(11);
    for (let i = 0; i < 100; i++) {
      const max = randomInt(rand, 3, 300);
      const limits = { ...LIMITS, maxHeaderBytes: max };
      const fits = `SEND\nk:${'v'.repeat(max - 2)}\n\n\0`;
      const over = `SEND\nk:${'v'.repeat(max - 1)}\n\n\0`;
      expect(parse(randomChunks(rand, latin1(fits), 40), new FrameParser(limits))).toHaveLength(1);
      expect(protocolError(randomChunks(rand, latin1(over), 40), new FrameParser(limits))).toBe(
        `header line exceeds ${max} bytes`,
      );
    }
  });

  it('lets maxFrameBytesFor raise the limit of a frame by its headers, enforced as its body arrives', () => {
    const limits: ParserLimits = {
      ...LIMITS,
      maxFrameBytes: 1000,
      maxFrameBytesFor: (_command, headers) => (headers.destination?.startsWith('/topic/') ? 5000 : 1000),
    };
    const relay = parse(`SEND\ndestination:/topic/a\n\n${'x'.repeat(3000)}\0`, new FrameParser(limits));
    expect(relay.map((f) => f.body.length)).toEqual([3000]);
    // No NUL yet: refused while the body is still arriving, by the limit of its own destination.
    expect(protocolError(`SEND\ndestination:/app/a\n\n${'x'.repeat(1001)}`, new FrameParser(limits))).toBe('frame exceeds 1000 bytes');
    expect(protocolError(`SEND\ndestination:/topic/a\n\n${'x'.repeat(5001)}`, new FrameParser(limits))).toBe('frame exceeds 5000 bytes');
    expect(protocolError(`SEND\ndestination:/app/a\ncontent-length:3000\n\n`, new FrameParser(limits))).toBe('frame exceeds 1000 bytes');
    // The headers themselves stay within maxFrameBytes, whatever the destination.
    expect(protocolError(`SEND\ndestination:/topic/a\n${'h:v\n'.repeat(300)}`, new FrameParser({ ...limits, maxHeaders: 1000 }))).toBe(
      'frame exceeds 1000 bytes',
    );
  });

  it('reports how many bytes of an unfinished frame it holds', () => {
    const parser = new FrameParser(LIMITS);
    parser.push('SEND\ndestination:/q\n\nab');
    expect(parser.buffered).toBe(23);
    parser.push('c\0');
    expect(parser.buffered).toBe(0);
  });
});

describe('FrameParser: errors', () => {
  it('refuses an unknown command', () => {
    expect(protocolError('FOO\n\n\0')).toBe('unknown command FOO');
    expect(protocolError('send\n\n\0')).toBe('unknown command send');
    expect(protocolError('SEND \n\n\0')).toBe('unknown command "SEND "');
    expect(protocolError('\x01\x02\n\n\0')).toBe('unknown command "\\u0001\\u0002"');
  });

  it('refuses a command line longer than any command before it ends', () => {
    const parser = new FrameParser(LIMITS);
    expect(parser.push('X'.repeat(12))).toEqual([]); // DISCONNECT + CR
    expect(protocolError('X', parser)).toBe('unknown command XXXXXXXXXXXX');
  });

  it('refuses a header line without a colon or with an empty name', () => {
    expect(protocolError('SEND\ndestination\n\n\0')).toBe('malformed header line: no colon');
    expect(protocolError('SEND\n:value\n\n\0')).toBe('malformed header line: empty header name');
  });

  it('refuses an invalid content-length', () => {
    for (const value of ['abc', '-1', '1.5', ' 5', '5 ', '', '0x10', '1e3']) {
      expect(protocolError(`SEND\ncontent-length:${value}\n\n\0`)).toBe(
        `invalid content-length ${JSON.stringify(value)}`,
      );
    }
  });

  it('refuses a content-length body not followed by NUL', () => {
    expect(protocolError('SEND\ncontent-length:3\n\nabcd\0')).toBe('frame body not terminated by NUL');
    expect(protocolError(['SEND\ncontent-length:3\n\nab', 'c', '\n'])).toBe('frame body not terminated by NUL');
  });

  it('refuses a NUL before the end of the headers at once, instead of waiting for a line end', () => {
    const nul = 'malformed frame: NUL before the end of the headers';
    expect(protocolError(Buffer.from([0xff, 0xfe, 0x00, 0x13, 0x37]))).toBe(nul);
    expect(protocolError('SEND\ndestination:/a\0')).toBe(nul);
    expect(protocolError('SEND\ndesti\0nation:/a\n\n\0')).toBe(nul);
    expect(protocolError(['SEND\nfoo', '\0'])).toBe(nul);
  });

  it('stays dead after a protocol error, throwing the same error', () => {
    const parser = new FrameParser(LIMITS);
    const thrown = (chunk: string): unknown => {
      try {
        parser.push(chunk);
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const first = thrown('FOO\n\n\0');
    expect(first).toBeInstanceOf(StompProtocolError);
    expect(thrown('SEND\n\n\0')).toBe(first);
    expect(thrown('')).toBe(first);
  });
});

describe('encodeMessage', () => {
  const message = {
    headers: { 'content-type': 'application/json', 'event-type': 'CHAT', 'x-odd': 'a:b\\c\nd', subscription: 'forged', ack: 'forged' },
    body: Buffer.from('{"text":"hé"}\0tail'),
  };

  it('gives the bytes encodeFrame gives for the merged headers, the subscriber\'s own winning, in every version', () => {
    for (const version of ['1.0', '1.1', '1.2'] as const) {
      const own = { destination: '/topic/rooms.1', subscription: 'sub-7', 'message-id': 'm-1', ack: 'm-1' };
      const merged = { destination: own.destination, ...message.headers, subscription: own.subscription, 'message-id': own['message-id'], ack: own.ack };
      const expected = new FrameParser(LIMITS, SERVER_COMMANDS);
      expected.version = version;
      const actual = new FrameParser(LIMITS, SERVER_COMMANDS);
      actual.version = version;
      const [a] = actual.push(encodeMessage(own, message, version));
      const [e] = expected.push(encodeFrame({ command: 'MESSAGE', headers: merged, body: message.body }, version));
      expect(a).toEqual(e);
      expect(a!.headers.subscription).toBe('sub-7');
      expect(a!.body.toString()).toBe('{"text":"hé"}\0tail');
    }
  });

  it('keeps a destination the message names (a wildcard subscription\'s match) over the subscription\'s', () => {
    const parser = new FrameParser(LIMITS, SERVER_COMMANDS);
    const [frame] = parser.push(encodeMessage({ destination: '/topic/a.*', subscription: 's', 'message-id': 'm' }, { headers: { destination: '/topic/a.b' }, body: Buffer.alloc(0) }, '1.2'));
    expect(frame!.headers.destination).toBe('/topic/a.b');
  });

  it('encodes the shared part once per message and version: two subscribers get identical tails', () => {
    const one = encodeMessage({ subscription: 'a', 'message-id': '1' }, message, '1.2');
    const two = encodeMessage({ subscription: 'bb', 'message-id': '22' }, message, '1.2');
    expect(one.subarray(one.indexOf('content-type'))).toEqual(two.subarray(two.indexOf('content-type')));
  });
  it('decides once per message whether its body can travel as text: valid UTF-8 or not', () => {
    expect(isTextMessage({ headers: {}, body: Buffer.from('{"text":"hé"}') })).toBe(true);
    expect(isTextMessage({ headers: {}, body: Buffer.alloc(0) })).toBe(true);
    expect(isTextMessage({ headers: {}, body: Buffer.from([0x7b, 0xff, 0xfe, 0x00]) })).toBe(false);
    expect(isTextMessage({ headers: {}, body: Buffer.from('hé').subarray(0, 2) })).toBe(false); // a cut character
  });
});

describe('encodeFrame', () => {
  it('writes command, headers, content-length, body and NUL', () => {
    const wire = encodeFrame(
      { command: 'MESSAGE', headers: { destination: '/q', 'message-id': '1' }, body: Buffer.from('hé') },
      '1.2',
    );
    expect(wire.toString('latin1')).toBe(
      'MESSAGE\ndestination:/q\nmessage-id:1\ncontent-length:3\n\n' + Buffer.from('hé').toString('latin1') + '\0',
    );
  });

  it('adds no content-length to an empty body, and corrects a wrong one in place', () => {
    const receipt = { command: 'RECEIPT', headers: { 'receipt-id': '9' }, body: Buffer.alloc(0) };
    expect(encodeFrame(receipt, '1.2').toString()).toBe('RECEIPT\nreceipt-id:9\n\n\0');
    const frame = { command: 'ERROR', headers: { 'content-length': '99', message: 'x' }, body: Buffer.from('ab') };
    expect(encodeFrame(frame, '1.2').toString()).toBe('ERROR\ncontent-length:2\nmessage:x\n\nab\0');
  });

  it('escapes headers per version', () => {
    const headers = { 'k:ey': 'a\nb:c\\d' };
    const body = Buffer.alloc(0);
    expect(encodeFrame({ command: 'MESSAGE', headers: { v: 'x\ry' }, body }, '1.2').toString()).toBe(
      'MESSAGE\nv:x\\ry\n\n\0',
    );
    expect(encodeFrame({ command: 'MESSAGE', headers, body }, '1.2').toString()).toBe(
      'MESSAGE\nk\\cey:a\\nb\\cc\\\\d\n\n\0',
    );
    expect(encodeFrame({ command: 'MESSAGE', headers, body }, '1.1').toString()).toBe(
      'MESSAGE\nk\\cey:a\\nb\\cc\\\\d\n\n\0',
    );
  });

  it('does not escape CONNECTED or 1.0 frames, and keeps their line structure intact', () => {
    const body = Buffer.alloc(0);
    expect(
      encodeFrame({ command: 'CONNECTED', headers: { version: '1.2', server: 'a:b\\c' }, body }, '1.2').toString(),
    ).toBe('CONNECTED\nversion:1.2\nserver:a:b\\c\n\n\0');
    expect(encodeFrame({ command: 'MESSAGE', headers: { 'a:b': 'x\\y\nz\r' }, body }, '1.0').toString()).toBe(
      'MESSAGE\na_b:x\\y z \n\n\0',
    );
  });
});

/** What the generator may put in names and values: escapable characters, multi-byte UTF-8, spaces. */
const ALPHABET = ['a', 'b', 'Z', '0', '-', ' ', ':', '\\', '\n', '\r', 'é', '€', '😀', '/', '.'];

function allowedChars(escaping: 'none' | '1.1' | '1.2', forName: boolean): string[] {
  if (escaping === '1.2') return ALPHABET;
  if (escaping === '1.1') return ALPHABET.filter((c) => c !== '\r');
  return ALPHABET.filter((c) => c !== '\n' && c !== '\r' && !(forName && c === ':'));
}

function randomString(rand: () => number, chars: string[], min: number, max: number): string {
  let s = '';
  for (let n = randomInt(rand, min, max); n > 0; n--) s += pick(rand, chars);
  return s;
}

function randomFrame(rand: () => number, commands: ReadonlySet<string>, version: StompVersion): Frame {
  const command = pick(rand, [...commands]);
  const escaping = version === '1.0' || command === 'CONNECT' || command === 'CONNECTED' ? 'none' : version;
  const headers: Record<string, string> = {};
  for (let n = randomInt(rand, 0, 8); n > 0; n--) {
    const name = randomString(rand, allowedChars(escaping, true), 1, 10);
    if (name === 'content-length') continue;
    headers[name] = randomString(rand, allowedChars(escaping, false), 0, 20);
  }
  const body = Buffer.alloc(rand() < 0.3 ? 0 : randomInt(rand, 1, 400));
  for (let i = 0; i < body.length; i++) body[i] = rand() < 0.1 ? 0 : randomInt(rand, 0, 255);
  return { command, headers, body };
}

function expectedPlain(frame: Frame): Plain {
  const headers = { ...frame.headers };
  if (frame.body.length > 0) headers['content-length'] = String(frame.body.length);
  return { command: frame.command, headers, body: frame.body.toString('latin1') };
}

function heartBeats(rand: () => number): Buffer {
  return latin1(randomString(rand, ['\n', '\r\n'], 0, 2));
}

/** What every returned frame must satisfy, whatever the input. */
function expectWellFormed(frame: Frame, commands: ReadonlySet<string>, limits: ParserLimits): void {
  expect(commands.has(frame.command)).toBe(true);
  const names = Object.keys(frame.headers);
  expect(names.length).toBeLessThanOrEqual(limits.maxHeaders);
  for (const name of names) {
    expect(name.length).toBeGreaterThan(0);
    expect(typeof frame.headers[name]).toBe('string');
  }
  expect(Buffer.isBuffer(frame.body)).toBe(true);
  const length = frame.headers['content-length'];
  if (length === undefined) expect(frame.body.includes(0)).toBe(false);
  else expect(frame.body.length).toBe(Number(length));
  expect(frame.body.length).toBeLessThan(limits.maxFrameBytes);
}

describe('round trip and generated input', () => {
  const versions: StompVersion[] = ['1.0', '1.1', '1.2'];

  it('parses back what encodeFrame wrote, for random frames in random chunks', () => {
    const rand = prng(20240601);
    let frames = 0;
    for (let run = 0; run < 150; run++) {
      const version = pick(rand, versions);
      const commands = rand() < 0.8 ? CLIENT_COMMANDS : SERVER_COMMANDS;
      const sent = Array.from({ length: randomInt(rand, 1, 4) }, () => randomFrame(rand, commands, version));
      const wire = Buffer.concat(sent.flatMap((f) => [heartBeats(rand), encodeFrame(f, version)]));
      const parser = new FrameParser({ maxFrameBytes: 1 << 20, maxHeaders: 16, maxHeaderBytes: 1024 }, commands);
      parser.version = version;
      expect(parse(randomChunks(rand, wire, pick(rand, [1, 7, 64, 4096])), parser)).toEqual(sent.map(expectedPlain));
      frames += sent.length;
    }
    expect(frames).toBeGreaterThan(300);
  });

  it('returns no frame for any truncation of a valid frame, and the frame once the rest arrives', () => {
    const rand = prng(99);
    for (let run = 0; run < 40; run++) {
      const version = pick(rand, versions);
      const frame = randomFrame(rand, CLIENT_COMMANDS, version);
      const wire = encodeFrame(frame, version);
      for (let cut = 0; cut < wire.length; cut++) {
        const parser = new FrameParser(LIMITS);
        parser.version = version;
        expect(parser.push(wire.subarray(0, cut))).toEqual([]);
        expect(parser.push(wire.subarray(cut)).map(plain)).toEqual([expectedPlain(frame)]);
      }
    }
  });

  /** Feeds chunks until the parser throws; returns the frames and whether it threw a StompProtocolError. */
  function feed(parser: FrameParser, chunks: Buffer[], commands: ReadonlySet<string>, limits: ParserLimits): boolean {
    for (const chunk of chunks) {
      let frames: Frame[];
      try {
        frames = parser.push(chunk);
      } catch (err) {
        expect(err).toBeInstanceOf(StompProtocolError);
        return true;
      }
      for (const frame of frames) expectWellFormed(frame, commands, limits);
    }
    return false;
  }

  it('either throws StompProtocolError or returns well-formed frames for random binary junk', () => {
    const rand = prng(4242);
    const limits: ParserLimits = { maxFrameBytes: 512, maxHeaders: 8, maxHeaderBytes: 64 };
    const pieces = [...CLIENT_COMMANDS, '\n', '\r\n', '\0', ':', '\\', 'content-length:', '\\n', '5', 'é'];
    let threw = 0;
    for (let run = 0; run < 400; run++) {
      const parts: Buffer[] = [];
      for (let n = randomInt(rand, 1, 60); n > 0; n--) {
        parts.push(
          rand() < 0.5
            ? Buffer.from(pick(rand, pieces))
            : Buffer.from(Array.from({ length: randomInt(rand, 1, 8) }, () => randomInt(rand, 0, 255))),
        );
      }
      const parser = new FrameParser(limits);
      parser.version = pick(rand, versions);
      if (feed(parser, randomChunks(rand, Buffer.concat(parts), 50), CLIENT_COMMANDS, limits)) threw++;
    }
    expect(threw).toBeGreaterThan(0);
  });

  it('either throws StompProtocolError or returns well-formed frames for mutated valid streams', () => {
    const rand = prng(777);
    const limits: ParserLimits = { maxFrameBytes: 2048, maxHeaders: 12, maxHeaderBytes: 256 };
    let threw = 0;
    let parsed = 0;
    for (let run = 0; run < 400; run++) {
      const version = pick(rand, versions);
      const sent = Array.from({ length: randomInt(rand, 1, 3) }, () => randomFrame(rand, CLIENT_COMMANDS, version));
      const bytes = [...Buffer.concat(sent.map((f) => encodeFrame(f, version)))];
      for (let n = randomInt(rand, 1, 4); n > 0; n--) {
        const at = randomInt(rand, 0, bytes.length - 1);
        const junk = pick(rand, [0, 0x0a, 0x0d, 0x3a, 0x5c, randomInt(rand, 0, 255)]);
        const how = rand();
        if (how < 0.4) bytes[at] = junk;
        else if (how < 0.7) bytes.splice(at, 0, junk);
        else bytes.splice(at, 1);
      }
      const parser = new FrameParser(limits);
      parser.version = version;
      if (feed(parser, randomChunks(rand, Buffer.from(bytes), 100), CLIENT_COMMANDS, limits)) threw++;
      else parsed++;
    }
    expect(threw).toBeGreaterThan(0);
    expect(parsed).toBeGreaterThan(0);
  });
});

describe('interoperability with @stomp/stompjs', () => {
  it('parses what stompjs sends, escaped headers and binary bodies included', () => {
    const send = FrameImpl.marshall({
      command: 'SEND',
      headers: { destination: '/app/rooms.1.send', note: 'a:b\nc\\d\re' },
      body: '{"text":"hé"}',
      escapeHeaderValues: true,
    });
    const binary = FrameImpl.marshall({
      command: 'SEND',
      headers: { destination: '/queue/x' },
      binaryBody: new Uint8Array([1, 0, 2]),
      escapeHeaderValues: true,
    });
    const connect = FrameImpl.marshall({
      command: 'CONNECT',
      headers: { 'accept-version': '1.2,1.1,1.0', passcode: 'x\\y' },
      escapeHeaderValues: true,
    });
    expect(typeof send).toBe('string');
    expect(binary).toBeInstanceOf(ArrayBuffer);
    const chunks = [connect as string, send as string, Buffer.from(binary as ArrayBuffer)];
    expect(parse(chunks)).toEqual([
      { command: 'CONNECT', headers: { 'accept-version': '1.2,1.1,1.0', passcode: 'x\\y' }, body: '' },
      {
        command: 'SEND',
        headers: { destination: '/app/rooms.1.send', note: 'a:b\nc\\d\re', 'content-length': '14' },
        body: Buffer.from('{"text":"hé"}').toString('latin1'),
      },
      { command: 'SEND', headers: { destination: '/queue/x', 'content-length': '3' }, body: '\x01\x00\x02' },
    ]);
  });

  it('writes what stompjs parses, escaped headers and NUL in the body included', () => {
    const raw: IRawFrameType[] = [];
    const stompjs = new StompJsParser((frame) => raw.push(frame), () => {});
    const message = {
      command: 'MESSAGE',
      headers: { destination: '/topic/a', subscription: 's-1', 'message-id': '7', note: 'a:b\nc\\d\re' },
      body: Buffer.from('x\0y'),
    };
    const wire = encodeFrame(message, '1.2');
    stompjs.parseChunk(new Uint8Array(wire).buffer);
    expect(raw).toHaveLength(1);
    const frame = FrameImpl.fromRawFrame(raw[0]!, true);
    expect(frame.command).toBe('MESSAGE');
    expect(frame.headers).toEqual({ ...message.headers, 'content-length': '3' });
    expect(Buffer.from(frame.binaryBody).equals(message.body)).toBe(true);
  });
});
