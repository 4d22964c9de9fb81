// node:http for the benchmarks, loaded with require() as the agent does (src/util/node-http.ts,
// which bench/ cannot import before a build). On Node 22 and later an ESM import of node:http
// loads Node's bundled undici (9 MiB of RSS on Node 24.11): in the bare baseline it inflated what
// the agent's memory is compared with, and in bench/module-rss.js every step, the empty one
// included.

import { createRequire } from 'node:module'

export const { createServer, request } = createRequire(import.meta.url)('node:http')
