import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLIENT_COMMANDS, encodeFrame, StompProtocolError, type Frame } from '../src/stomp/frame.ts';
import { FrameParser, type ParserLimits } from '../src/stomp/parser.ts';

const LIMITS: ParserLimits = {
  maxFrameBytes: 2048,
  maxHeaders: 8,
  maxHeaderBytes: 256,
  maxFrameBytesFor: (_command, headers) => (headers.destination === '/topic/big' ? 4096 : 2048),
};

/**
 * Pushes every chunk, checking after each one that nothing but StompProtocolError escapes and that neither a
 * returned frame nor what the parser holds exceeds a limit. Returns the frames, or the protocol error.
 */
function pushAll(chunks: Buffer[]): Frame[] | StompProtocolError {
  const parser = new FrameParser(LIMITS);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    let out: Frame[];
    try {
      out = parser.push(chunk);
    } catch (err) {
      if (err instanceof StompProtocolError) return err;
      throw err;
    }
    for (const frame of out) {
      expect(Object.keys(frame.headers).length).toBeLessThanOrEqual(LIMITS.maxHeaders);
      expect(frame.body.length).toBeLessThanOrEqual(4096);
      frames.push(frame);
    }
    expect(parser.buffered).toBeLessThanOrEqual(4096);
  }
  return frames;
}

/** `data` cut at the given points. */
function split(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...points, data.length]) {
    chunks.push(data.subarray(from, p));
    from = p;
  }
  return chunks;
}

/** Pieces of STOMP, so that random input reaches every phase of the parser, not only the unknown-command check. */
const TOKENS = ['SEND', 'CONNECT', 'BEGIN', '\n', '\r\n', ':', '\\n', '\\c', '\\x', '\0', 'content-length:', '5', '99999', 'destination:/topic/big', 'a', 'é', 'x'.repeat(300)];
const stompish = fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((parts) => Buffer.from(parts.join('')));
const bytes = fc.uint8Array({ maxLength: 6000 }).map((a) => Buffer.from(a));
const cuts = fc.array(fc.nat(), { maxLength: 12 });

/** Client frames but CONNECT and STOMP (whose headers are not escaped), within the limits above. */
const frameArb = fc.record({
  command: fc.constantFrom(...[...CLIENT_COMMANDS].filter((c) => c !== 'CONNECT' && c !== 'STOMP')),
  headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }), fc.string({ maxLength: 40, unit: 'grapheme' }), { maxKeys: 6 }),
  body: fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)),
});

describe('FrameParser properties (fast-check)', () => {
  it('throws nothing but StompProtocolError and keeps its limits, for random bytes and STOMP-like junk in random chunks', () => {
    fc.assert(
      fc.property(fc.oneof(bytes, stompish), cuts, (data, at) => {
        pushAll(split(data, at));
      }),
      { numRuns: 500 },
    );
  });

  it('parses back random valid frames split at random points', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), cuts, (frames, at) => {
        const wire = Buffer.concat(frames.map((f) => encodeFrame(f, '1.2')));
        const parsed = pushAll(split(wire, at));
        expect(parsed).not.toBeInstanceOf(StompProtocolError);
        const expected = frames.map((f) => {
          const headers: Record<string, string> = { ...f.headers };
          if (headers['content-length'] !== undefined || f.body.length > 0) headers['content-length'] = String(f.body.length);
          return { command: f.command, headers, body: f.body.toString('hex') };
        });
        expect((parsed as Frame[]).map((f) => ({ command: f.command, headers: { ...f.headers }, body: f.body.toString('hex') }))).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('throws nothing but StompProtocolError and keeps its limits, for mutated valid frames', () => {
    const mutation = fc.record({ kind: fc.constantFrom('flip', 'insert', 'delete'), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 4 }), fc.array(mutation, { minLength: 1, maxLength: 6 }), cuts, (frames, mutations, at) => {
        const wire = [...Buffer.concat(frames.map((f) => encodeFrame(f, '1.2')))];
        for (const m of mutations) {
          const i = m.at % (wire.length + 1);
          if (m.kind === 'insert') wire.splice(i, 0, m.byte);
          else if (i < wire.length) {
            if (m.kind === 'flip') wire[i] = m.byte;
            else wire.splice(i, 1);
          }
        }
        pushAll(split(Buffer.from(wire), at));
      }),
      { numRuns: 500 },
    );
  });
});
