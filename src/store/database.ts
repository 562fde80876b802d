import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { migratePGlite, migratePostgres } from './migrate.ts';

export interface Database {
  prisma: PrismaClient;
  kind: 'pglite' | 'postgres';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** PostgreSQL URL; unset means the embedded PGlite database under `<dataDir>/pglite`. */
  databaseUrl?: string;
  dataDir: string;
  log: Logger;
}

/**
 * Connections per gateway. Appends hold their room's row lock only for one statement, so a few connections keep
 * 2 cores busy; several gateways share one server's connection limit.
 */
const POOL_SIZE = 8;

/** Opens the database, migrated to the current schema, through a driver adapter (no native engine). */
export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  if (opts.databaseUrl === undefined) {
    const dir = join(opts.dataDir, 'pglite');
    await mkdir(dir, { recursive: true });
    const pglite = await PGlite.create(dir);
    try {
      await migratePGlite(pglite, opts.log);
    } catch (err) {
      await pglite.close();
      throw err;
    }
    const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
    opts.log.info({ dir }, 'database: embedded PGlite');
    return {
      prisma,
      kind: 'pglite',
      close: async () => {
        await prisma.$disconnect();
        await pglite.close();
      },
    };
  }

  await migratePostgres(opts.databaseUrl, opts.log);
  const prisma = new PrismaClient({
    adapter: new PrismaPg({ connectionString: opts.databaseUrl, max: POOL_SIZE, connectionTimeoutMillis: 10_000 }),
  });
  opts.log.info('database: PostgreSQL');
  return { prisma, kind: 'postgres', close: () => prisma.$disconnect() };
}
