// The upstream gate's queues: first in, first out, with a throttled call taken back at the head.

/** A FIFO of jobs that can also take one back at its head, with O(1) shift. */
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
}
