// The upstream gate's queues. Request calls wait in one first-in-first-out queue per requester
// (a pod's source address) and are taken round-robin across requesters, so that a pod that queues
// thousands of calls delays a newcomer by at most one of its calls per turn; renewals wait in one
// plain queue behind them.

/** A first-in-first-out queue that can also take a job back at its head, with O(1) shift. */
export class JobQueue<J> {
  #items: J[] = []
  #head = 0

  get length(): number {
    return this.#items.length - this.#head
  }

  push(j: J): void {
    this.#items.push(j)
  }

  unshift(j: J): void {
    if (this.#head > 0) this.#items[--this.#head] = j
    else this.#items.unshift(j)
  }

  shift(): J | undefined {
    if (this.#head >= this.#items.length) return undefined
    const j = this.#items[this.#head]
    this.#items[this.#head++] = undefined as unknown as J
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return j
  }

  forEach(fn: (j: J) => void): void {
    for (let i = this.#head; i < this.#items.length; i++) fn(this.#items[i] as J)
  }

  indexOf(j: J): number {
    const i = this.#items.indexOf(j, this.#head)
    return i < 0 ? -1 : i - this.#head
  }

  /** Take out every job `drop` picks, keeping the others in order; returns those taken. */
  removeWhere(drop: (j: J) => boolean): J[] {
    const kept: J[] = []
    const dropped: J[] = []
    this.forEach((j) => (drop(j) ? dropped : kept).push(j))
    this.#items = kept
    this.#head = 0
    return dropped
  }
}

/** Per-key queues served one job per key in turn (round-robin), each key first in first out. */
export class FairQueue<J> {
  /** Keys with jobs waiting, in turn order: the first is served next (a Map keeps insertion order). */
  readonly #queues = new Map<string, JobQueue<J>>()
  #length = 0

  get length(): number {
    return this.#length
  }

  /** Jobs waiting under `key`. */
  lengthOf(key: string): number {
    return this.#queues.get(key)?.length ?? 0
  }

  push(key: string, job: J): void {
    this.#queueOf(key).push(job)
    this.#length++
  }

  /** Put a job back at the head of its key's queue (a throttled call, tried again first). */
  unshift(key: string, job: J): void {
    this.#queueOf(key).unshift(job)
    this.#length++
  }

  /** The next job: the head of the first key's queue; that key then waits for its next turn. */
  shift(): J | undefined {
    for (const [key, queue] of this.#queues) {
      const job = queue.shift()
      this.#queues.delete(key)
      if (queue.length > 0) this.#queues.set(key, queue)
      if (job === undefined) continue
      this.#length--
      return job
    }
    return undefined
  }

  /** How many jobs will start before `job` (queued under `key`), or -1 when it is not queued. */
  ahead(key: string, job: J): number {
    const own = this.#queues.get(key)
    const i = own?.indexOf(job) ?? -1
    if (i < 0) return -1
    // The job starts in round i: every key gives up to i jobs before that round, and the keys
    // ahead of its own in turn order one more in that round.
    let n = 0
    let beforeOwn = true
    for (const [k, queue] of this.#queues) {
      if (k === key) beforeOwn = false
      n += Math.min(queue.length, i) + (beforeOwn && queue.length > i ? 1 : 0)
    }
    return n
  }

  forEach(fn: (j: J) => void): void {
    for (const queue of this.#queues.values()) queue.forEach(fn)
  }

  /** Take out every job `drop` picks; returns those taken. */
  removeWhere(drop: (j: J) => boolean): J[] {
    const dropped: J[] = []
    for (const [key, queue] of this.#queues) {
      dropped.push(...queue.removeWhere(drop))
      if (queue.length === 0) this.#queues.delete(key)
    }
    this.#length -= dropped.length
    return dropped
  }

  #queueOf(key: string): JobQueue<J> {
    let queue = this.#queues.get(key)
    if (queue === undefined) {
      queue = new JobQueue<J>()
      this.#queues.set(key, queue)
    }
    return queue
  }
}
