import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlDriverAdapter, SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';

/**
 * Driver adapters as the schema engine needs them: each runs a migration script whole, in one round trip, which
 * PostgreSQL runs as one implicit transaction. The stock adapters do not: pglite-prisma-adapter 0.7.2 does not
 * await `executeScript` (a failing migration would be recorded as applied and its error rejected unhandled), and
 * @prisma/adapter-pg splits scripts at every `;`, string literals and function bodies included.
 */

type Connection = { executeScript(script: string): Promise<void>; dispose(): Promise<void> };

async function withScripts(adapter: Promise<SqlDriverAdapter>, connection: Connection): Promise<SqlDriverAdapter> {
  return Object.assign(await adapter, connection);
}

export function pgliteMigrationAdapter(db: PGlite): SqlMigrationAwareDriverAdapterFactory {
  const base = new PrismaPGlite(db);
  const connect = (client: PGlite, dispose: () => Promise<void>) =>
    withScripts(new PrismaPGlite(client).connect(), {
      executeScript: async (script) => {
        await client.exec(script);
      },
      dispose,
    });
  return {
    provider: base.provider,
    adapterName: base.adapterName,
    connect: () => connect(db, async () => {}),
    // For `diff` from migrations; closed when the engine is done with it.
    connectToShadowDb: async () => {
      const shadow = await PGlite.create();
      return connect(shadow, () => shadow.close());
    },
  };
}

/** `pool` should have one connection, so that the engine's statements share a session. The caller ends it. */
export function postgresMigrationAdapter(pool: pg.Pool): SqlMigrationAwareDriverAdapterFactory {
  const base = new PrismaPg(pool);
  return {
    provider: base.provider,
    adapterName: base.adapterName,
    connect: () =>
      withScripts(base.connect(), {
        executeScript: async (script) => {
          await pool.query(script);
        },
        dispose: async () => {},
      }),
    connectToShadowDb: () => base.connectToShadowDb(),
  };
}
