-- AlterTable
ALTER TABLE "File" ADD COLUMN     "sha256" TEXT NOT NULL;
