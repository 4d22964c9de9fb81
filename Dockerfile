# syntax=docker/dockerfile:1
# Minimal production image: build with the full toolchain, ship dist/ and production deps only.
# Runs on a current Node LTS (the AWS SDK for JavaScript needs Node >= 22 from 2027).

FROM node:24.21.0-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24.21.0-bookworm-slim
# iproute2: `initialize` creates the pod-id-link0 link with `ip`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# glibc's malloc: one arena, and blocks of 32 KiB or more in mappings of their own. V8 compiles hot
# functions on worker threads, in zones it mallocs and frees; with glibc's defaults that freed
# memory stays in per-thread arenas, spread between live blocks, for good. With 2000 cached entries
# an idle agent held 83-89 MiB on Node 24.11 instead of 100-105 (68 instead of 74 on Node 20); no
# system call is added on the hit path. The agent also turns Maglev off itself (79 MiB then;
# src/util/v8-memory.ts). bench/README.md, Results.
# test/integration/image-env.test.ts checks that glibc reads both; the benchmarks run the agent
# with this stage's ENV.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=32768
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["server", "--help"]
