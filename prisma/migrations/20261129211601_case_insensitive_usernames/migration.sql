-- Usernames become unique whatever their case: "usernameKey" is the lower-cased username (logins look it up),
-- "username" keeps the display case. Users whose names differ only in case cannot all keep them: the migration
-- stops first, changing nothing, and names every such group, to be renamed or removed by hand; then the
-- failed attempt is marked rolled back (the statement the error gives) and the next start applies it.
DO $$
DECLARE
  conflicts TEXT;
BEGIN
  SELECT string_agg(names, '; ' ORDER BY key COLLATE "C") INTO conflicts
  FROM (
    SELECT lower("username") AS key, string_agg("username", ', ' ORDER BY "username" COLLATE "C") AS names
    FROM "User"
    GROUP BY lower("username")
    HAVING count(*) > 1
  ) AS groups;
  IF conflicts IS NOT NULL THEN
    RAISE EXCEPTION 'usernames that differ only in case: %. Rename or delete all but one user of each group, then run '
      'UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = ''20261129211601_case_insensitive_usernames'' '
      'AND finished_at IS NULL; and start again (this attempt changed nothing)', conflicts;
  END IF;
END $$;

-- AlterTable
ALTER TABLE "User" ADD COLUMN "usernameKey" TEXT;
UPDATE "User" SET "usernameKey" = lower("username");
ALTER TABLE "User" ALTER COLUMN "usernameKey" SET NOT NULL;

-- DropIndex
DROP INDEX "User_username_key";

-- CreateIndex
CREATE UNIQUE INDEX "User_usernameKey_key" ON "User"("usernameKey");
