import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { MigrationList } from '@prisma/schema-engine-wasm';
import pg from 'pg';
import { pgliteMigrationAdapter, postgresMigrationAdapter } from './migration-adapters.ts';
import type { Logger } from '../logger.ts';
import { MIGRATIONS_DIR, NO_FILTERS, withSchemaEngine } from './schema-engine.ts';

/**
 * Applies prisma/migrations at start, keeping Prisma's `_prisma_migrations` table (so `prisma migrate deploy`
 * elsewhere agrees). Applied migrations are skipped, so a second start applies nothing.
 */

/**
 * Serializes gateways that start at once against one PostgreSQL. The engine also takes Prisma's own lock
 * (72707369) on its connection and leaves it to the session's end; this one does not rely on that.
 */
export const MIGRATION_LOCK_KEY = 0x63686174; // "chat"

const LOCKFILE = 'migration_lock.toml';

/** The migrations folder as the schema engine wants it; no folder means no migrations. */
export async function readMigrations(dir: string = MIGRATIONS_DIR): Promise<MigrationList> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const migrationDirectories = await Promise.all(
    names.map(async (name) => ({
      path: name,
      migrationFile: {
        path: 'migration.sql',
        content: await readFile(join(dir, name, 'migration.sql'), 'utf8').then(
          (value) => ({ tag: 'ok' as const, value }),
          (err: Error) => ({ tag: 'error' as const, value: err.message }),
        ),
      },
    })),
  );
  const lockfile = await readFile(join(dir, LOCKFILE), 'utf8').catch(() => null);
  return {
    baseDir: dir,
    lockfile: { path: LOCKFILE, content: lockfile },
    migrationDirectories,
    shadowDbInitScript: '',
  };
}

async function apply(adapter: SqlMigrationAwareDriverAdapterFactory, log: Logger, dir: string): Promise<string[]> {
  const migrationsList = await readMigrations(dir);
  const { appliedMigrationNames } = await withSchemaEngine(adapter, log, (engine) =>
    engine.applyMigrations({ migrationsList, filters: NO_FILTERS }),
  );
  if (appliedMigrationNames.length > 0) log.info({ migrations: appliedMigrationNames }, 'database migrated');
  return appliedMigrationNames;
}

/**
 * Migrates an embedded database; it has one connection and one process, so it needs no lock. `dir` is for tests
 * that start from an older set of migrations.
 */
export function migratePGlite(db: PGlite, log: Logger, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  return apply(pgliteMigrationAdapter(db), log, dir);
}

/** Migrates a PostgreSQL database, holding an advisory lock so that concurrent starts take turns. */
export async function migratePostgres(url: string, log: Logger, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const lock = new pg.Client({ connectionString: url });
  // Idle while the engine works; losing it then must not crash the process (the lock is lost with it).
  lock.on('error', (err) => log.warn({ err }, 'migration lock connection failed'));
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    // One connection: the engine's session lock is taken and released (by ending the pool) on the same session.
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    try {
      return await apply(postgresMigrationAdapter(pool), log, dir);
    } finally {
      await pool.end();
    }
  } finally {
    // Ending the session releases the advisory lock too.
    await lock.end();
  }
}
