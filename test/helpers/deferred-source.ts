// A hand-driven CredentialSource for unit tests: every call is recorded and stays pending until
// the test resolves or rejects it, so single flight, refresh and error paths can be stepped through.

import type { CheckedToken } from '../../src/token/validity.js'
import type { CredentialSource, FetchOptions, SourceAnswer } from '../../src/upstream/types.js'
import type { ManualClock } from '../../src/util/clock.js'

export interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(err: unknown): void
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

export interface FetchCall extends Deferred<SourceAnswer> {
  token: string
  request: CheckedToken
  options: FetchOptions
}

export class DeferredSource implements CredentialSource {
  readonly calls: FetchCall[] = []

  fetch(request: CheckedToken, options: FetchOptions = {}): Promise<SourceAnswer> {
    const d = deferred<SourceAnswer>()
    this.calls.push({ token: request.token, request, options, ...d })
    return d.promise
  }

  warmUp(): Promise<void> {
    return Promise.resolve()
  }

  close(): Promise<void> {
    return Promise.resolve()
  }

  get count(): number {
    return this.calls.length
  }

  /** Calls made for this token, oldest first. */
  callsFor(token: string): FetchCall[] {
    return this.calls.filter((c) => c.token === token)
  }

  /** The most recent call (throws when there is none). */
  last(): FetchCall {
    const c = this.calls[this.calls.length - 1]
    if (c === undefined) throw new Error('no fetch call yet')
    return c
  }
}

/** Let every pending promise callback run (no timers, no sleeping). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Advance a manual clock by `ms` in steps, letting promise callbacks run between steps. */
export async function runFor(clock: ManualClock, ms: number, step = 5): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step)
    await flush()
  }
}

/** A distinctive answer for call `n`: credentials expiring at `expirationMs`. */
export function podCredentials(n: number | string, expirationMs: number): SourceAnswer {
  return {
    credentials: {
      accessKeyId: `ASIATEST${n}`,
      secretAccessKey: `SecretKey/${n}/wJalrXUtnFEMIK7MDENGbPxRfiCY`,
      sessionToken: `SessionToken-${n}-IQoJb3JpZ2luX2VjEJr`,
      accountId: '111122223333',
      expirationMs,
      assumedRoleArn: 'arn:aws:sts::111122223333:assumed-role/TestRole/eks-test-pod',
    },
    association: { id: 'a-test0001', namespace: 'default', serviceAccount: 'app' },
  }
}
