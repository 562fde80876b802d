import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The k6 scripts cannot run here (no k6 binary), so they are type-checked against @types/k6 with their own
// tsconfig (ES2020, k6 types only, no Node), as `tsc -p loadtest/k6/tsconfig.json` does.
const CONFIG = resolve('loadtest/k6/tsconfig.json');

function program(extra?: { name: string; text: string }): ts.Program {
  const read = ts.readConfigFile(CONFIG, (p) => ts.sys.readFile(p));
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dirname(CONFIG));
  const host = ts.createCompilerHost(parsed.options);
  const roots = [...parsed.fileNames];
  if (extra) {
    const path = join(dirname(CONFIG), extra.name);
    roots.push(path);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) => (resolve(name) === path ? ts.createSourceFile(name, extra.text, lang) : getSourceFile(name, lang, ...rest));
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => resolve(name) === path || fileExists(name);
  }
  return ts.createProgram({ rootNames: roots, options: parsed.options, host });
}

const messages = (p: ts.Program): string[] =>
  ts.getPreEmitDiagnostics(p).map((d) => `${d.file ? relative(process.cwd(), d.file.fileName) : ''}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);

describe('k6 scripts', () => {
  it('type-check against @types/k6 with no diagnostics, shared framing and contract included', () => {
    const p = program();
    expect(messages(p)).toEqual([]);
    const files = p.getSourceFiles().map((f) => relative(process.cwd(), f.fileName));
    expect(files).toEqual(
      expect.arrayContaining([
        'loadtest/k6/fanout.ts',
        'loadtest/k6/connections.ts',
        'loadtest/k6/resume.ts',
        'loadtest/k6/lib.ts',
        'loadtest/common/stomp.ts',
        'loadtest/common/payload.ts',
        'src/contract/destinations.ts',
      ]),
    );
    // k6's own declarations, not Node's, are what the scripts were checked against.
    expect(files.some((f) => f.endsWith('@types/k6/websockets/index.d.ts'))).toBe(true);
    expect(files.some((f) => f.includes('@types/node/'))).toBe(false);
  });

  it('reports a script that misuses the k6 API', () => {
    const bad = "import http from 'k6/http';\nimport { WebSocket } from 'k6/websockets';\nhttp.post(42);\nnew WebSocket('ws://x', ['v12.stomp']);\nBuffer.from('x');\n";
    const found = messages(program({ name: 'bad-script.ts', text: bad }));
    expect(found.filter((m) => m.startsWith('loadtest/k6/bad-script.ts'))).toHaveLength(3);
  });
});
