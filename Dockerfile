# One chat gateway (src/main.ts); docker-compose.yml runs three of them behind nginx.
FROM node:20-slim

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

COPY prisma ./prisma
COPY src ./src
# The generated Prisma client; the schema engine binary is not needed (migrations run through the WASM engine at
# start), and pointing the variable at any existing file keeps prisma from downloading one.
RUN PRISMA_SCHEMA_ENGINE_BINARY=package.json npx prisma generate

# DATA_DIR: a volume shared by the gateways of one cluster.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
ENV NODE_ENV=production DATA_DIR=/app/data
EXPOSE 8080
# SIGTERM (docker stop) makes the gateway stop gracefully, within SHUTDOWN_TIMEOUT_MS.
CMD ["node", "--import", "tsx", "src/main.ts"]
