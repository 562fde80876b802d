-- AlterTable: the events stored before the outbox went out when they were stored; new ones start unpublished.
ALTER TABLE "RoomEvent" ADD COLUMN     "published" BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE "RoomEvent" ALTER COLUMN "published" SET DEFAULT false;

-- CreateIndex
CREATE INDEX "RoomEvent_unpublished_idx" ON "RoomEvent"("createdAt") WHERE (NOT published);
