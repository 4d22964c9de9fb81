// node:http, loaded with require() rather than an ESM import.
//
// On Node 22 and 24, an ESM import of a built-in module reads every one of its exports to build the
// module namespace, and node:http's WebSocket, CloseEvent and MessageEvent are lazy getters that
// load Node's bundled copy of undici. require() returns the exports object without reading them.
// On Node 24 (the image's line; measured on 24.21) the agent then no longer loads that copy:
// 2.5-3.5 MiB less RSS at readiness and idle (bench/README.md, "Node 24"). On Node 20 both ways
// load the same.

import type * as Http from 'node:http'
import { createRequire } from 'node:module'

const http = createRequire(import.meta.url)('node:http') as typeof Http

export const { STATUS_CODES, createServer, request } = http
