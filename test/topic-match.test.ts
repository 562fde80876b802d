import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type MatchSteps, topicMatches } from '../src/broker/topic-match.ts';

/** The definition, word by word, with backtracking: the reference the matcher must agree with on small inputs. */
function reference(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') return match(i + 1, j) || (j < k.length && match(i, j + 1));
    if (j === k.length) return false;
    return (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}

const words = (alphabet: string[], max: number) => fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: max }).map((w) => w.join('.'));

function steps(pattern: string, key: string): { matched: boolean; steps: number } {
  const counter: MatchSteps = { steps: 0 };
  return { matched: topicMatches(pattern, key, counter), steps: counter.steps };
}

describe('topicMatches', () => {
  it('agrees with the backtracking definition on random small patterns and keys', () => {
    fc.assert(
      fc.property(words(['a', 'b', '', '*', '#'], 7), words(['a', 'b', ''], 9), (pattern, key) => {
        expect(topicMatches(pattern, key)).toBe(reference(pattern, key));
      }),
      { numRuns: 20_000 },
    );
  });

  it('takes at most (pattern words) x (key words) steps, whatever the pattern', () => {
    fc.assert(
      fc.property(words(['a', 'z', '*', '#'], 24), fc.integer({ min: 1, max: 200 }), (pattern, n) => {
        const key = Array(n).fill('a').join('.');
        expect(steps(pattern, key).steps).toBeLessThanOrEqual(pattern.split('.').length * n);
      }),
      { numRuns: 2_000 },
    );
  });

  it('reads the attacker\'s keys in steps linear in their length', () => {
    // The frames of the report: ten '#' and a word the key never has, against 26 words, then 20 '#' against 60.
    const ten = `${Array(10).fill('#').join('.')}.z`;
    const twenty = `${Array(20).fill('#').join('.')}.z`;
    const key = (n: number): string => Array(n).fill('a').join('.');
    // Every pattern position stays live on every word: exactly (pattern words) x (key words), the bound.
    expect(steps(ten, key(26))).toEqual({ matched: false, steps: 11 * 26 });
    expect(steps(twenty, key(60))).toEqual({ matched: false, steps: 21 * 60 });
    expect(steps(twenty, `${key(60)}.z`)).toEqual({ matched: true, steps: 21 * 61 });
  });
});
