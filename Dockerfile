# syntax=docker/dockerfile:1
# Minimal production image: build with the full toolchain, ship dist/ and production deps only.
# Runs on a current Node LTS (the AWS SDK for JavaScript needs Node >= 22 from 2027).

FROM node:24.11.1-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24.11.1-bookworm-slim
# iproute2: `initialize` creates the pod-id-link0 link with `ip`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
ENTRYPOINT ["node", "/app/dist/main.js"]
CMD ["server", "--help"]
