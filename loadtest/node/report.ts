import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where every scenario writes its JSON (gitignored). */
export const RESULTS_DIR = fileURLToPath(new URL('../results/', import.meta.url));

export type Cell = string | number;

/** Print rows as an aligned table under a title. */
export function printTable(title: string, header: string[], rows: Cell[][]): void {
  const text = rows.map((r) => r.map(format));
  const widths = header.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of text) console.log(line(r));
}

function format(c: Cell): string {
  if (typeof c === 'string') return c;
  if (Number.isInteger(c)) return c.toLocaleString('en-US');
  return Math.abs(c) >= 100 ? c.toFixed(0) : Math.abs(c) >= 10 ? c.toFixed(1) : c.toFixed(2);
}

/** Write `data` as loadtest/results/<name>-<time>.json; returns the path. */
export function writeResult(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}

/** `value / baseline` as `0.42x`, or `-` when there is no baseline to compare with. */
export const ratio = (value: number, baseline: number | undefined): string =>
  baseline === undefined || baseline === 0 ? '-' : `${(value / baseline).toPrecision(2)}x`;
