import { describe, expect, it } from 'vitest';
import { loadOf, loadText } from '../loadtest/common/payload.ts';
import { encodeFrame, FrameDecoder } from '../loadtest/common/stomp.ts';
import { Histogram } from '../loadtest/node/histogram.ts';

describe('load generator framing', () => {
  it('encodes frames with escaped headers, except on CONNECT', () => {
    expect(encodeFrame('SEND', { destination: '/topic/a', 'x:y': 'a\nb\\c' }, 'hi')).toBe('SEND\ndestination:/topic/a\nx\\cy:a\\nb\\\\c\n\nhi\0');
    expect(encodeFrame('CONNECT', { passcode: 'a:b' })).toBe('CONNECT\npasscode:a:b\n\n\0');
  });

  it('decodes frames split anywhere, skipping and counting heart-beats, first repeated header winning', () => {
    const wire = '\nMESSAGE\r\nsubscription:r\ndestination:/topic/x\\cy\ndestination:other\n\n{"a":1}\0\n\nCONNECTED\nversion:1.2\nsession:a\\b\n\n\0';
    const decoder = new FrameDecoder();
    const frames = [...wire].flatMap((ch) => decoder.push(ch));
    expect(frames).toEqual([
      { command: 'MESSAGE', headers: { subscription: 'r', destination: '/topic/x:y' }, body: '{"a":1}' },
      { command: 'CONNECTED', headers: { version: '1.2', session: 'a\\b' }, body: '' },
    ]);
    expect(decoder.heartbeats).toBe(3);
  });

  it('finds the load stamp in a raw body and inside event JSON', () => {
    const text = loadText({ sentAt: 1700000000123.456, sender: 7, n: 42 });
    expect(loadOf(text)).toEqual({ sentAt: 1700000000123.456, sender: 7, n: 42 });
    expect(loadOf(JSON.stringify({ type: 'CHAT', seq: 3, text, sender: { id: 'u', username: 'x' } }))).toEqual({ sentAt: 1700000000123.456, sender: 7, n: 42 });
    expect(loadOf('{"type":"ENTER","text":"joined"}')).toBeNull();
  });
});

describe('latency histogram', () => {
  it('gives percentiles within 1% and the exact maximum, also after a merge', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let ms = 1; ms <= 1000; ms++) (ms % 2 ? a : b).recordMs(ms);
    a.merge(b.toJSON());
    expect(a.count).toBe(1000);
    expect(a.maxUs).toBe(1_000_000);
    for (const [p, exact] of [[0.5, 500], [0.9, 900], [0.99, 990]] as const) {
      expect(Math.abs(a.percentileMs(p) - exact) / exact).toBeLessThan(0.01);
    }
    expect(a.percentileMs(1)).toBe(1000);
  });
});
