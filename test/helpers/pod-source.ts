// Many pods in one test process, each calling from its own loopback address through the real
// fromHttp. fromHttp builds its own http.Agent and takes no localAddress, so the pod's address
// travels in an AsyncLocalStorage and http.Agent's createConnection adds it (as
// bench/lib/pod-transport.js does for the benchmarks). The SDK code itself is untouched.

import { AsyncLocalStorage } from 'node:async_hooks'
import { Agent } from 'node:http'
import type { Socket } from 'node:net'

const pod = new AsyncLocalStorage<string>()

type CreateConnection = (options: object, callback?: unknown) => Socket
const agentPrototype = Agent.prototype as unknown as { createConnection: CreateConnection }
const original = agentPrototype.createConnection
agentPrototype.createConnection = function createConnection(options, callback) {
  const localAddress = pod.getStore()
  return original.call(
    this,
    localAddress === undefined ? options : { ...options, localAddress },
    callback,
  )
}

/** Run `fn` (an SDK call) as the pod at `localAddress`: every socket it opens binds that address. */
export function asPod<T>(localAddress: string, fn: () => Promise<T>): Promise<T> {
  return pod.run(localAddress, fn)
}

/** The i-th pod's address, 127.0.x.y: distinct for i < 65 000. */
export function podAddress(i: number): string {
  return `127.0.${2 + Math.floor(i / 250)}.${1 + (i % 250)}`
}
