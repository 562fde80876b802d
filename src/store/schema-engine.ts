import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  bindMigrationAwareSqlAdapterFactory,
  type ErrorRegistry,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import * as glue from '@prisma/schema-engine-wasm/schema_engine_bg';
import type { SchemaEngine } from '@prisma/schema-engine-wasm';
import type { Logger } from '../logger.ts';

/**
 * Prisma's WASM schema engine (PRISMA-OFFLINE.md): `diff` and `applyMigrations` through a driver adapter,
 * so no native engine download is needed.
 */

export const SCHEMA_PATH = fileURLToPath(new URL('../../prisma/schema.prisma', import.meta.url));
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));

/** Entities the engine should leave alone: none. */
export const NO_FILTERS = { externalTables: [], externalEnums: [] };

/** The part of the WebAssembly API used here; this project's lib settings do not declare it. */
const wasm = (
  globalThis as unknown as {
    WebAssembly: {
      instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: { __wbindgen_start(): void } } }>;
    };
  }
).WebAssembly;

// The wasm-bindgen glue keeps its instance in module state, so it may be instantiated once per process only;
// every engine shares it.
let instantiated: Promise<void> | undefined;

function instantiate(): Promise<void> {
  instantiated ??= (async () => {
    const wasmPath = createRequire(import.meta.url)
      .resolve('@prisma/schema-engine-wasm/schema_engine_bg')
      .replace(/\.js$/, '.wasm');
    const { instance } = await wasm.instantiate(await readFile(wasmPath), { './schema_engine_bg.js': glue });
    glue.__wbg_set_wasm(instance.exports);
    instance.exports.__wbindgen_start();
  })();
  return instantiated;
}

/** Runs `use` with an engine on `adapter`'s database and frees the engine afterwards. */
export async function withSchemaEngine<T>(
  adapter: SqlMigrationAwareDriverAdapterFactory,
  log: Logger,
  use: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  await instantiate();
  const schema = await readFile(SCHEMA_PATH, 'utf8');
  // An unwrapped factory fails inside the engine ("reading 'call'").
  const bound = bindMigrationAwareSqlAdapterFactory(adapter);
  const engine = await glue.SchemaEngine.new({ datamodels: [['schema.prisma', schema]] }, engineLog(log), bound);
  try {
    return await use(engine);
  } catch (err) {
    throw withDriverCause(err, bound.errorRegistry);
  } finally {
    engine.free();
  }
}

/** The engine logs JSON lines (tracing events); they go to the debug level. */
function engineLog(log: Logger): (line: string) => void {
  return (line) => {
    try {
      const { fields, target } = JSON.parse(line) as { fields?: { message?: string }; target?: string };
      log.debug({ target }, `schema engine: ${fields?.message ?? line}`);
    } catch {
      log.debug(`schema engine: ${line}`);
    }
  };
}

/** The engine reports a driver's exception as "External error id#N"; the registry holds the exception itself. */
function withDriverCause(err: unknown, registry: ErrorRegistry): unknown {
  const id = err instanceof Error ? /External error id#(\d+)/.exec(err.message)?.[1] : undefined;
  const cause = id === undefined ? undefined : registry.consumeError(Number(id))?.error;
  if (cause === undefined) return err;
  return new Error(`${(err as Error).message.split('\n')[0]}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
}
