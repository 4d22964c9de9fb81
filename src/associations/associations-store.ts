// The agent's associations file, loaded at start-up and re-read when it changes. The file is read
// every few seconds on the injected clock and compared with what was loaded (a ConfigMap mounted
// in a pod is replaced by a symlink swap, which file-change events miss); a valid new file
// replaces the old one whole, a broken one is refused with one log line and the old one stays.

import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Clock, TimerHandle } from '../util/clock.js'
import type { Association } from './associations.js'
import {
  AssociationsError,
  associationKey,
  indexAssociations,
  parseAssociations,
} from './associations.js'

/** How often the file is looked at for a change, ms. */
export const RELOAD_CHECK_MS = 5000

export interface AssociationsStoreOptions {
  path: string
  clock: Clock
  /** Told after every load that took effect: the entry count and when (epoch ms). */
  onLoaded?: (entries: number, atMs: number) => void
  /** Told once per broken version of the file, with why (the old associations stay). */
  onRejected?: (reason: string) => void
}

export class AssociationsStore {
  readonly #o: AssociationsStoreOptions
  #index = new Map<string, Association>()
  #digest = ''
  #timer: TimerHandle | undefined
  /** The last broken version reported (its digest, or why it was unreadable): reported once. */
  #rejectedDigest = ''
  #checking: Promise<void> | undefined

  private constructor(o: AssociationsStoreOptions) {
    this.#o = o
  }

  /** Load the file (throws AssociationsError with the precise problem) and watch it for changes. */
  static async open(o: AssociationsStoreOptions): Promise<AssociationsStore> {
    const store = new AssociationsStore(o)
    const text = await store.#read()
    store.#apply(text, parseAssociations(text, o.path))
    store.#schedule()
    return store
  }

  /** The association of a namespace and service account, from the file as last loaded. */
  find(namespace: string, serviceAccount: string): Association | undefined {
    return this.#index.get(associationKey(namespace, serviceAccount))
  }

  get size(): number {
    return this.#index.size
  }

  /** Look at the file now (the timer does so every RELOAD_CHECK_MS). */
  check(): Promise<void> {
    this.#checking ??= this.#checkOnce().finally(() => (this.#checking = undefined))
    return this.#checking
  }

  close(): void {
    this.#timer?.cancel()
    this.#timer = undefined
  }

  async #checkOnce(): Promise<void> {
    let text: string
    try {
      text = await this.#read()
    } catch (err) {
      const reason = (err as Error).message
      this.#reject(`unreadable: ${reason}`, reason)
      return
    }
    const digest = digestOf(text)
    if (digest === this.#digest) return
    try {
      this.#apply(text, parseAssociations(text, this.#o.path))
    } catch (err) {
      if (!(err instanceof AssociationsError)) throw err
      this.#reject(digest, err.message)
    }
  }

  #apply(text: string, list: Association[]): void {
    this.#index = indexAssociations(list)
    this.#digest = digestOf(text)
    this.#rejectedDigest = ''
    this.#o.onLoaded?.(list.length, this.#o.clock.now())
  }

  #reject(digest: string, reason: string): void {
    if (digest === this.#rejectedDigest) return
    this.#rejectedDigest = digest
    this.#o.onRejected?.(reason)
  }

  async #read(): Promise<string> {
    try {
      return await readFile(this.#o.path, 'utf8')
    } catch (err) {
      const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      throw new AssociationsError(`${this.#o.path}: cannot read associations file (${reason})`, {
        cause: err,
      })
    }
  }

  #schedule(): void {
    this.#timer = this.#o.clock.setTimer(() => {
      void this.check().finally(() => {
        if (this.#timer !== undefined) this.#schedule()
      })
    }, RELOAD_CHECK_MS)
  }
}

function digestOf(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}
