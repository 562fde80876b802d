-- CreateIndex
CREATE INDEX "Message_fileId_idx" ON "Message"("fileId");
