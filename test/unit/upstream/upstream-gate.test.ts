// The upstream gate on a manual clock: slow start, pacing after a 429, re-queueing throttled
// calls, and a simulated node boot herd against an upstream that throttles like EKS Auth.

import { describe, expect, it } from 'vitest'
import { CallTicket } from '../../../src/upstream/call-ticket.js'
import type { SubmitOptions, UpstreamGateOptions } from '../../../src/upstream/upstream-gate.js'
import { UpstreamGate } from '../../../src/upstream/upstream-gate.js'
import { ManualClock } from '../../../src/util/clock.js'
import { TokenBucket } from '../../../src/util/token-bucket.js'
import { deferred, flush, runFor } from '../../helpers/deferred-source.js'
import type { Deferred } from '../../helpers/deferred-source.js'

class Throttled extends Error {
  readonly status = 429
}

const isThrottle = (e: unknown): boolean => e instanceof Throttled

function req(over: Partial<SubmitOptions> = {}): SubmitOptions {
  return { background: false, ...over }
}

/** beforeStart for a call that must start before deadlineMs. */
function until(clock: ManualClock, deadlineMs: number): () => void {
  return () => {
    if (clock.now() >= deadlineMs) throw new Error('expired in queue')
  }
}

/** A ticket that records `i` each time its call goes back to the queue or the gate starts pacing. */
function watched(seen: number[], i: number): CallTicket {
  const ticket = new CallTicket()
  ticket.watch(() => seen.push(i))
  return ticket
}

/** Calls the test settles by hand. */
function handDriven() {
  const calls: Deferred<string>[] = []
  const run = (): Promise<string> => {
    const d = deferred<string>()
    calls.push(d)
    return d.promise
  }
  return { calls, run }
}

/**
 * An upstream with EKS Auth's throttling: a token bucket of `rate`/s holding `burst`, answering
 * after `latencyMs` (429s too, as the mock does).
 */
function throttlingUpstream(clock: ManualClock, rate: number, burst: number, latencyMs: number) {
  const quota = new TokenBucket({ clock, ratePerSecond: rate, burst })
  const stats = { calls: 0, ok: 0, throttled: 0 }
  const call = (): Promise<string> => {
    stats.calls++
    const ok = quota.tryTake()
    return new Promise((resolve, reject) => {
      clock.setTimer(() => {
        if (ok) {
          stats.ok++
          resolve('creds')
        } else {
          stats.throttled++
          reject(new Throttled('Rate exceeded'))
        }
      }, latencyMs)
    })
  }
  return { call, stats }
}

describe('UpstreamGate, open', () => {
  it('starts calls at once up to the initial window, and grows the window by one per success', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 2, maxWindow: 3 })
    const { calls, run } = handDriven()
    const jobs = [1, 2, 3, 4].map(() => gate.submit(run, req()))
    expect(calls).toHaveLength(2)
    expect(jobs.map((j) => j.job.started)).toEqual([true, true, false, false])
    expect(gate.queued).toBe(2)
    expect(gate.etaMs(jobs[3]!.job)).toBe(0) // open: the hold timer bounds the wait
    calls[0]!.resolve('a')
    await flush()
    expect(calls).toHaveLength(2) // queued calls start on the next turn, after this round's answers
    clock.advance(1)
    // window 3 now: two more start
    expect(calls).toHaveLength(4)
    expect(await jobs[0]!.promise).toBe('a')
    expect(gate.pacePerSecond).toBe(0)
  })

  it('never holds more than 32 calls in flight by default, and starts a queue of them 16 per turn of the event loop', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 32 })
    const { calls, run } = handDriven()
    for (let i = 0; i < 80; i++) gate.submit(run, req())
    expect(calls).toHaveLength(32)
    for (const c of calls.slice(0, 32)) c.resolve('ok')
    await flush()
    expect(calls).toHaveLength(32)
    clock.advance(1)
    expect(calls).toHaveLength(48)
    clock.advance(1)
    expect(calls).toHaveLength(64)
    clock.advance(1)
    expect(calls).toHaveLength(64) // the window is full again
    expect(gate.inflight).toBe(32)
  })

  it('a call that throws synchronously rejects its job and frees its slot', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 1 })
    const bad = gate.submit(() => {
      throw new Error('boom')
    }, req())
    await expect(bad.promise).rejects.toThrow('boom')
    const good = gate.submit(() => Promise.resolve('ok'), req())
    expect(await good.promise).toBe('ok')
    expect(gate.inflight).toBe(0)
  })

  it('refuses request calls beyond maxQueue with onFull()', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({
      clock,
      isThrottle,
      initialWindow: 1,
      maxQueue: 1,
      onFull: () => new Error('queue full'),
    })
    const { run } = handDriven()
    gate.submit(run, req())
    gate.submit(run, req())
    await expect(gate.submit(run, req()).promise).rejects.toThrow('queue full')
    expect(gate.queued).toBe(1)
  })

  it('drops a queued call whose token expired before it could start', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 1 })
    const { calls, run } = handDriven()
    gate.submit(run, req())
    const late = gate.submit(run, req({ beforeStart: until(clock, clock.now() + 1000) }))
    clock.advance(2000)
    calls[0]!.resolve('a')
    await flush()
    clock.advance(1)
    await expect(late.promise).rejects.toThrow('expired in queue')
    expect(calls).toHaveLength(1)
  })
})

describe('UpstreamGate, throttled', () => {
  it('after a 429 paces calls at the rate the upstream accepted over the last second, and re-queues the throttled call first', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 8 })
    const { calls, run } = handDriven()
    const jobs = Array.from({ length: 8 }, () => gate.submit(run, req()))
    for (let i = 0; i < 4; i++) calls[i]!.resolve(`ok${i}`)
    await flush()
    // 4 more started on those successes (window 12); now one of the first batch is throttled
    expect(calls).toHaveLength(8)
    const requeued: number[] = []
    const waiting = Array.from({ length: 3 }, (_, i) =>
      gate.submit(run, req({ ticket: watched(requeued, i) })),
    )
    expect(calls).toHaveLength(11)
    calls[4]!.reject(new Throttled())
    await flush()
    expect(gate.pacePerSecond).toBe(4) // 4 successes in the last second
    expect(jobs[4]!.job.started).toBe(false)
    expect(gate.etaMs(jobs[4]!.job)).toBe(250) // head of the queue, next start in 1/4 s
    // Other calls already in flight were sent at the old rate: their 429s do not cut again.
    calls[5]!.reject(new Throttled())
    await flush()
    expect(gate.pacePerSecond).toBe(4)
    expect(gate.queued).toBe(2)
    expect(gate.etaMs(jobs[5]!.job)).toBe(250)
    expect(gate.etaMs(jobs[4]!.job)).toBe(500)
    // Paced: one start per 250 ms, the most recently re-queued first.
    clock.advance(249)
    expect(calls).toHaveLength(11)
    clock.advance(1)
    expect(calls).toHaveLength(12)
    expect(jobs[5]!.job.started).toBe(true)
    clock.advance(250)
    expect(calls).toHaveLength(13)
    expect(jobs[4]!.job.started).toBe(true)
    calls[12]!.resolve('late')
    expect(await jobs[4]!.promise).toBe('late')
    expect(requeued).toEqual([])
    expect(waiting.every((w) => w.job.started)).toBe(true)
  })

  it('a 429 on a call started at the new pace cuts the rate by 15 %; successes grow it back', async () => {
    const clock = new ManualClock()
    const pacingSeen: number[] = []
    const gate = new UpstreamGate({
      clock,
      isThrottle,
      initialWindow: 8,
      onPacing: () => pacingSeen.push(gate.pacePerSecond),
    })
    const { calls, run } = handDriven()
    for (let i = 0; i < 4; i++) gate.submit(run, req())
    for (let i = 0; i < 3; i++) calls[i]!.resolve('ok')
    calls[3]!.reject(new Throttled())
    await flush()
    expect(gate.pacePerSecond).toBe(3)
    expect(pacingSeen).toEqual([3]) // told once, with the pace already set
    for (let i = 0; i < 4; i++) gate.submit(run, req())
    expect(calls).toHaveLength(4) // paced: nothing starts before 1/3 s
    clock.advance(5000)
    expect(calls).toHaveLength(9) // the re-queued call and the 4 new ones, 1/3 s apart
    calls[8]!.reject(new Throttled()) // sent at the new pace: its 429 cuts
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(3 * 0.85, 5)
    calls[7]!.reject(new Throttled()) // sent before that cut: no second cut
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(3 * 0.85, 5)
    expect(pacingSeen).toEqual([3]) // cuts while pacing are not a new start of pacing
    // After a cut, each success adds 0.05 (about 5 % per second at this rate).
    calls[6]!.resolve('ok')
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(2.6, 5)
    calls[5]!.resolve('ok')
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(2.65, 5)
  })

  it('after a lone 429 on an idle node, starts at 1 call/s and doubles per second (one call per success) until a 429 at that pace', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle })
    const { calls, run } = handDriven()
    gate.submit(run, req())
    calls[0]!.reject(new Throttled())
    await flush()
    expect(gate.pacePerSecond).toBe(1)
    for (let i = 0; i < 6; i++) gate.submit(run, req())
    clock.advance(1000) // t=1000: the re-queued call
    expect(calls).toHaveLength(2)
    calls[1]!.resolve('ok')
    await flush()
    expect(gate.pacePerSecond).toBe(2)
    clock.advance(1000) // t=2000 (that start was set at 1/s)
    expect(calls).toHaveLength(3)
    calls[2]!.resolve('ok')
    await flush()
    expect(gate.pacePerSecond).toBe(3)
    clock.advance(500) // t=2500 (set at 2/s)
    expect(calls).toHaveLength(4)
    calls[3]!.reject(new Throttled()) // the first 429 at the new pace: 15 % less, then slow growth
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(2.55, 5)
    clock.advance(400) // t=2900, 1/2.55 s after the 429
    expect(calls).toHaveLength(5)
    calls[4]!.resolve('ok')
    await flush()
    expect(gate.pacePerSecond).toBeCloseTo(2.6, 5)
  })

  it('gives a request call back to its waiters as a 429 after 10 throttled tries; renewals are never re-queued', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle })
    let n = 0
    const always429 = (): Promise<string> => {
      n++
      return Promise.reject(new Throttled('Rate exceeded'))
    }
    const job = gate.submit(always429, req())
    const outcome = job.promise.catch((e: unknown) => e)
    await runFor(clock, 30_000, 100)
    expect(await outcome).toBeInstanceOf(Throttled)
    expect(n).toBe(10)

    const bg = gate.submit(always429, req({ background: true })).promise.catch((e: unknown) => e)
    await runFor(clock, 2000, 100)
    expect(await bg).toBeInstanceOf(Throttled)
    expect(n).toBe(11)
  })

  it('starts renewals only when no request call waits', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({ clock, isThrottle, initialWindow: 1 })
    const order: string[] = []
    const { calls, run } = handDriven()
    gate.submit(run, req())
    gate.submit(() => (order.push('bg'), Promise.resolve('bg')), req({ background: true }))
    gate.submit(() => (order.push('req'), Promise.resolve('req')), req())
    calls[0]!.resolve('first')
    await runFor(clock, 10, 1)
    expect(order).toEqual(['req', 'bg'])
  })

  it('goes back to open after 30 s without a 429 and with nothing queued', async () => {
    const clock = new ManualClock()
    const up = throttlingUpstream(clock, 1, 1, 10)
    const gate = new UpstreamGate({ clock, isThrottle })
    const a = gate.submit(up.call, req())
    const b = gate.submit(up.call, req())
    await runFor(clock, 3000, 10)
    expect(await a.promise).toBe('creds')
    expect(await b.promise).toBe('creds')
    expect(gate.pacePerSecond).toBeGreaterThan(0)
    clock.advance(30_000)
    const c = gate.submit(() => Promise.resolve('open'), req())
    expect(c.job.started).toBe(true)
    expect(gate.pacePerSecond).toBe(0)
  })
})

describe('UpstreamGate, node boot herd against a throttling upstream', () => {
  // [calls/s, burst, pods]: the bench's case (20/s, burst 20, 250 pods) and others around it
  it.each([
    [20, 20, 250],
    [5, 5, 100],
    [20, 40, 250],
    [100, 100, 250],
  ])(
    'at %d calls/s (burst %d), %d distinct pods cost at most 1.2 calls per pod and are served within 1.3 x the time the rate allows',
    async (rate, burst, pods) => {
      const clock = new ManualClock()
      const up = throttlingUpstream(clock, rate, burst, 50)
      const gate = new UpstreamGate({ clock, isThrottle })
      const t0 = clock.now()
      const doneAt: number[] = []
      const jobs = Array.from({ length: pods }, () => {
        const j = gate.submit(up.call, req())
        void j.promise.then(() => doneAt.push(clock.now() - t0))
        return j
      })
      await runFor(clock, (1.5 * 1000 * pods) / rate, 10)
      expect(doneAt).toHaveLength(pods)
      for (const j of jobs) expect(await j.promise).toBe('creds')
      const allowedMs = (1000 * (pods - burst)) / rate
      expect(Math.max(...doneAt)).toBeLessThanOrEqual(1.3 * allowedMs + 100)
      expect(up.stats.ok).toBe(pods)
      expect(up.stats.calls).toBeLessThanOrEqual(1.2 * pods)
    },
  )

  it('without throttling, 250 pods cost exactly 250 calls and are served within 1 s at 50 ms latency', async () => {
    const clock = new ManualClock()
    const up = throttlingUpstream(clock, 1e9, 1e9, 50)
    const gate = new UpstreamGate({ clock, isThrottle })
    const t0 = clock.now()
    let last = 0
    const jobs = Array.from({ length: 250 }, () => gate.submit(up.call, req()))
    for (const j of jobs) void j.promise.then(() => (last = clock.now() - t0))
    await runFor(clock, 2000, 10)
    for (const j of jobs) expect(await j.promise).toBe('creds')
    expect(up.stats.calls).toBe(250)
    expect(last).toBeLessThanOrEqual(1000)
  })
})

describe('UpstreamGate, fair to every pod', () => {
  /** A gate already pacing at `rate` calls/s (a lone 429 on an idle node, then growth). */
  async function pacedGate(clock: ManualClock, extra: Partial<UpstreamGateOptions> = {}) {
    const gate = new UpstreamGate({ clock, isThrottle, ...extra })
    const first = gate.submit(() => Promise.reject(new Throttled()), req({ requester: 'x' }))
    void first.promise.catch(() => {})
    await flush()
    expect(gate.pacePerSecond).toBe(1)
    return gate
  }

  it('takes queued calls round-robin across requesters, and Retry-After follows a pod its own place', async () => {
    const clock = new ManualClock()
    const gate = await pacedGate(clock)
    const order: string[] = []
    const call = (name: string) => () => (order.push(name), Promise.resolve(name))
    const flood = Array.from({ length: 20 }, (_, i) =>
      gate.submit(call(`flood${i}`), req({ requester: '10.0.0.66' })),
    )
    const newcomer = gate.submit(call('newcomer'), req({ requester: '10.0.0.7' }))
    // The throttled first call goes first (head of its own queue), then flood0, then the newcomer.
    expect(gate.etaMs(newcomer.job)).toBe(1000 + 2 * 1000)
    expect(gate.etaMs(flood[19]!.job)).toBeGreaterThan(19_000)
    await runFor(clock, 3100, 50)
    expect(order.slice(0, 2)).toEqual(['flood0', 'newcomer'])
    expect(await newcomer.promise).toBe('newcomer')
  })

  it('refuses a requester its 33rd queued call, but not another requester', async () => {
    const clock = new ManualClock()
    const gate = await pacedGate(clock, { onRequesterFull: () => new Error('pod queue full') })
    const { run } = handDriven()
    for (let i = 0; i < 32; i++) gate.submit(run, req({ requester: 'flood' }))
    await expect(gate.submit(run, req({ requester: 'flood' })).promise).rejects.toThrow(
      'pod queue full',
    )
    expect(gate.submit(run, req({ requester: 'other' })).job.started).toBe(false)
    expect(gate.queued).toBe(1 + 32 + 1)
  })

  it('bounds a requester only while paced: open, its calls wait for a slot however many', async () => {
    const clock = new ManualClock()
    const gate = new UpstreamGate({
      clock,
      isThrottle,
      initialWindow: 1,
      onRequesterFull: () => new Error('pod queue full'),
    })
    const { run } = handDriven()
    const jobs = Array.from({ length: 40 }, () => gate.submit(run, req({ requester: 'busy' })))
    const outcomes = jobs.map((j) =>
      j.promise.then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    )
    await flush()
    expect(gate.queued).toBe(39)
    expect(await Promise.race([outcomes[39], flush().then(() => 'waiting')])).toBe('waiting')
  })

  it('drops a queued call nobody has waited for in 3 s, unmade; a retry within 3 s keeps it', async () => {
    const clock = new ManualClock()
    const dropped: number[] = []
    let states = 0
    const gate = await pacedGate(clock, {
      onDropped: () => (dropped.push(clock.now()), new Error('dropped')),
      onState: () => states++,
    })
    const made: string[] = []
    const call = (name: string) => () => (made.push(name), Promise.resolve(name))
    for (let i = 0; i < 5; i++) gate.submit(call(`busy${i}`), req({ requester: 'busy' }))
    const gone = new CallTicket()
    const kept = new CallTicket()
    const goneJob = gate.submit(call('gone'), req({ requester: 'a', ticket: gone }))
    const keptJob = gate.submit(call('kept'), req({ requester: 'b', ticket: kept }))
    const goneOutcome = goneJob.promise.catch((e: unknown) => e)
    gone.join()
    kept.join()
    gone.leave(clock.now()) // the pod got its 503 and never came back
    kept.leave(clock.now())
    clock.advance(2000)
    kept.join() // the SDK's retry
    clock.advance(500)
    kept.leave(clock.now())
    const t = clock.now()
    clock.advance(600) // 3.1 s after the last requester of "gone" left
    expect(await goneOutcome).toEqual(new Error('dropped'))
    expect(dropped).toHaveLength(1)
    expect(gate.queued).toBeLessThan(7)
    expect(states).toBeGreaterThan(0)
    await runFor(clock, 3500, 50) // before "kept" is 3 s abandoned, its turn comes
    expect(made).toContain('kept')
    expect(made).not.toContain('gone')
    expect(await keptJob.promise).toBe('kept')
    expect(clock.now() - t).toBeGreaterThan(2000)
  })

  it('counts a refusal the upstream answered (an invalid token) as accepted when sizing the pace', async () => {
    const clock = new ManualClock()
    class Refused extends Error {}
    const gate = new UpstreamGate({
      clock,
      isThrottle,
      isAccepted: (e) => e instanceof Refused,
      initialWindow: 8,
    })
    const { calls, run } = handDriven()
    const jobs = Array.from({ length: 8 }, () => gate.submit(run, req()))
    for (const j of jobs) void j.promise.catch(() => {})
    for (let i = 0; i < 6; i++) calls[i]!.reject(new Refused('InvalidTokenException'))
    calls[6]!.reject(new Throttled())
    await flush()
    expect(gate.pacePerSecond).toBe(6)
  })
})
