# syntax=docker/dockerfile:1
# The agent's image: built with the full toolchain, shipped with dist/ and the production
# dependencies only, without npm, and running as a non-root user by default. The DaemonSet runs the
# agent as root with NET_BIND_SERVICE alone, for port 80 (manifests/base/daemonset.yaml says why).
# The base is a current Node LTS pinned by exact version (CI runs the test suite on it:
# .ci/run reads the version from the FROM lines below; keep both the same).
# test/integration/image-stages.test.ts repeats these stages outside Docker and gets credentials
# through the result.

FROM node:26.12.1-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:26.12.1-bookworm-slim
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/pod-identity-agent/pod-identity-agent
LABEL org.opencontainers.image.title="pod-identity-agent" \
      org.opencontainers.image.description="Node-local AWS credential agent for Kubernetes pods (EKS Pod Identity)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# iproute2: `initialize` creates the pod-id-link0 link with `ip`. npm, npx and corepack go: the
# agent never runs them, and each is code an attacker could use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
           /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /opt/yarn-*
WORKDIR /app
# How the image runs the agent, all of it configuration (the benchmarks run the agent the same
# way, and bench/README.md, "What the image's flags buy", has what each one buys and costs):
# - glibc's malloc: one arena, and blocks of 32 KiB or more in mappings of their own, so that the
#   memory V8's compiler threads free goes back instead of staying in per-thread arenas;
# - --no-maglev: V8's mid-tier compiler's zones stay in malloc's heap after a burst of misses;
# - --max-semi-space-size=4 (MiB): a burst no longer leaves V8's young generation at its largest;
# - --import=undici: undici's index loaded before the agent, not during its first requests, when
#   on Node 24 it left about one agent process in three with far more memory and CPU per hit.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=32768
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The official image's `node` user (uid 1000): non-root unless the DaemonSet says otherwise.
USER 1000:1000
ENTRYPOINT ["node", "--import=undici", "--no-maglev", "--max-semi-space-size=4", "/app/dist/main.js"]
CMD ["server", "--help"]
