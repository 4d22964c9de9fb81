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
# How the image runs the agent, all of it configuration (the benchmarks run the agent the same
# way, and bench/README.md, "What the image's flags buy", has what each one buys and costs):
# - glibc's malloc: one arena, and blocks of 32 KiB or more in mappings of their own, so that the
#   memory V8's compiler threads free goes back instead of staying in per-thread arenas;
# - --no-maglev: V8's mid-tier compiler's zones stay in malloc's heap after a burst of misses;
# - --max-semi-space-size=4 (MiB): a burst no longer leaves V8's young generation at its largest;
# - keep-tick-object.mjs: keeps the hit path's process.nextTick on V8's fast path (see there);
# - --import=undici: undici's index loaded before the agent, not during its first requests, when
#   on Node 24 it left about one agent process in three with far more memory and CPU per hit.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=32768
COPY package.json ./
COPY image ./image
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENTRYPOINT ["node", "--import=/app/image/keep-tick-object.mjs", "--import=undici", "--no-maglev", "--max-semi-space-size=4", "/app/dist/main.js"]
CMD ["server", "--help"]
