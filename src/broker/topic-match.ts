/**
 * AMQP topic matching: words are split on `.`, `*` matches exactly one word, `#` zero or more.
 *
 * A backtracking matcher takes time exponential in the number of `#` words (`#.#.#...z` against a long key); this
 * one runs the pattern as a set of states, one per pattern position, and reads the key once, so its work is at
 * most (pattern words + 1) x (key words + 1) steps whatever the shape of either.
 */

/** Counts the matcher's steps, for tests that bound its work. */
export interface MatchSteps {
  steps: number;
}

export function topicMatches(pattern: string, routingKey: string, counter?: MatchSteps): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const m = p.length;
  // live[i]: the pattern's first i words can match the key words read so far.
  let live = new Uint8Array(m + 1);
  live[0] = 1;
  closeOverHashes(p, live);
  for (const word of k) {
    const next = new Uint8Array(m + 1);
    let any = false;
    for (let i = 0; i < m; i++) {
      if (!live[i]) continue;
      if (counter) counter.steps++;
      const w = p[i]!;
      if (w === '#') next[i] = 1;
      else if (w === '*' || w === word) next[i + 1] = 1;
      else continue;
      any = true;
    }
    if (!any) return false;
    closeOverHashes(p, next);
    live = next;
  }
  return live[m] === 1;
}

/** A `#` may match no word: a state before one also stands after it. */
function closeOverHashes(p: string[], live: Uint8Array): void {
  for (let i = 0; i < p.length; i++) if (live[i] && p[i] === '#') live[i + 1] = 1;
}
