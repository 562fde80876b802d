-- AlterEnum
ALTER TYPE "RoomKind" ADD VALUE 'random';
