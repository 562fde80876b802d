import { readdirSync, readFileSync } from 'node:fs';

/** A YAML value as parseYamlSubset reads it: every scalar stays a string, as compose passes environment values. */
export type Yaml = string | null | Yaml[] | { [key: string]: Yaml };

interface Line {
  n: number;
  indent: number;
  body: string;
}

/**
 * Parse the block-style YAML subset docker-compose.yml is written in: nested mappings, sequences of scalars, plain,
 * single- and double-quoted scalars, comments. Anything outside it (flow collections, anchors, tags, block scalars,
 * tabs, duplicate keys) throws, so the compose check never reads a file it does not understand.
 */
export function parseYamlSubset(text: string): Yaml {
  const lines: Line[] = [];
  text.split('\n').forEach((raw, i) => {
    const body = raw.trimStart();
    if (body === '' || body.startsWith('#')) return;
    const indent = raw.length - body.length;
    if (raw.slice(0, indent).includes('\t')) throw new Error(`line ${i + 1}: tab in indentation`);
    lines.push({ n: i + 1, indent, body: body.trimEnd() });
  });
  let pos = 0;
  const fail = (line: Line, why: string): never => {
    throw new Error(`line ${line.n}: ${why}: ${line.body}`);
  };

  const block = (indent: number): Yaml => {
    const value = lines[pos]!.body.startsWith('- ') ? sequence(indent) : mapping(indent);
    if (pos < lines.length && lines[pos]!.indent > indent) fail(lines[pos]!, 'unexpected indentation');
    return value;
  };
  const mapping = (indent: number): Yaml => {
    const out: Record<string, Yaml> = {};
    while (pos < lines.length && lines[pos]!.indent === indent) {
      const line = lines[pos++]!;
      const m = /^([A-Za-z0-9_.-]+):(?: +(.*))?$/.exec(line.body);
      if (!m) return fail(line, 'expected "key: value"');
      const key = m[1]!;
      if (Object.hasOwn(out, key)) fail(line, `duplicate key ${key}`);
      const rest = m[2] ?? '';
      if (rest === '' || rest.startsWith('#')) {
        out[key] = pos < lines.length && lines[pos]!.indent > indent ? block(lines[pos]!.indent) : null;
      } else {
        out[key] = scalar(rest, line);
      }
    }
    return out;
  };
  const sequence = (indent: number): Yaml => {
    const out: Yaml[] = [];
    while (pos < lines.length && lines[pos]!.indent === indent && lines[pos]!.body.startsWith('- ')) {
      const line = lines[pos++]!;
      out.push(scalar(line.body.slice(2).trim(), line));
    }
    return out;
  };
  const scalar = (text: string, line: Line): string => {
    const quote = text[0];
    if (quote === '"' || quote === "'") {
      const end = closingQuote(text, quote);
      if (end < 0) fail(line, 'unterminated quoted scalar');
      const after = text.slice(end + 1).trim();
      if (after !== '' && !after.startsWith('#')) fail(line, 'text after a quoted scalar');
      const quoted = text.slice(0, end + 1);
      // JSON's escapes are the common part of YAML's; anything YAML-only makes JSON.parse throw.
      return quote === '"' ? (JSON.parse(quoted) as string) : quoted.slice(1, -1).replaceAll("''", "'");
    }
    const plain = text.replace(/ #.*$/, '').trim();
    if (/^([[\]{}&*!|>%@`,?:]|- )/.test(plain)) fail(line, 'unsupported syntax');
    if (/: |:$/.test(plain)) fail(line, 'a mapping where a scalar belongs');
    return plain;
  };

  if (lines.length === 0) return null;
  const doc = block(lines[0]!.indent);
  if (pos < lines.length) fail(lines[pos]!, 'unexpected indentation');
  return doc;
}

/** Where the quote opening `text` closes (backslash escapes in "...", doubled quotes in '...'), or -1. */
function closingQuote(text: string, quote: '"' | "'"): number {
  for (let i = 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) {
      if (quote === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  return -1;
}

/** The state letter of /proc/<pid>/stat (R, S, Z, ...), or undefined when there is no such process. */
function procState(pid: number): { state: string; ppid: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
  const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: state!, ppid: Number(ppid) };
}

/** Whether `pid` is a process that has not exited (a zombie has). */
export function isRunning(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s.state !== 'Z';
}

/** The pids whose parent is `pid` (e.g. nginx's workers under its master). */
export function childPids(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((p) => procState(p)?.ppid === pid);
}
