import { describe, expect, it } from 'vitest'
import { FairQueue, JobQueue } from '../../../src/upstream/fair-queue.js'

function drain<J>(q: FairQueue<J>): J[] {
  const out: J[] = []
  for (let j = q.shift(); j !== undefined; j = q.shift()) out.push(j)
  return out
}

describe('JobQueue', () => {
  it('is first in, first out, takes a job back at its head, and stays in order past compaction', () => {
    const q = new JobQueue<number>()
    for (let i = 0; i < 3000; i++) q.push(i)
    for (let i = 0; i < 2000; i++) expect(q.shift()).toBe(i)
    q.unshift(-1)
    expect(q.length).toBe(1001)
    expect(q.indexOf(2500)).toBe(501)
    expect(q.shift()).toBe(-1)
    expect(q.removeWhere((j) => j % 2 === 1)).toHaveLength(500)
    expect(q.length).toBe(500)
    expect(q.shift()).toBe(2000)
    expect(q.shift()).toBe(2002)
  })
})

describe('FairQueue', () => {
  it('takes one job per key in turn, each key first in first out', () => {
    const q = new FairQueue<string>()
    for (let i = 1; i <= 4; i++) q.push('flood', `f${i}`)
    q.push('pod-b', 'b1')
    q.push('pod-c', 'c1')
    q.push('pod-c', 'c2')
    expect(q.length).toBe(7)
    expect(q.lengthOf('flood')).toBe(4)
    expect(drain(q)).toEqual(['f1', 'b1', 'c1', 'f2', 'c2', 'f3', 'f4'])
    expect(q.length).toBe(0)
  })

  it('a newcomer waits for at most one job of each other key', () => {
    const q = new FairQueue<string>()
    for (let i = 0; i < 1000; i++) q.push('flood', `f${i}`)
    q.shift()
    q.push('new-pod', 'n')
    expect(q.ahead('new-pod', 'n')).toBe(1)
    expect(drain(q).indexOf('n')).toBe(1)
  })

  it('ahead() counts what starts before a job, and matches the order jobs come out in', () => {
    const q = new FairQueue<string>()
    const keys = ['a', 'b', 'c']
    const sizes = [5, 1, 3]
    keys.forEach((k, i) => {
      for (let n = 0; n < (sizes[i] as number); n++) q.push(k, `${k}${n}`)
    })
    const predicted = new Map<string, number>()
    q.forEach((j) => predicted.set(j, q.ahead(j[0] as string, j)))
    const order = drain(q)
    order.forEach((j, i) => expect(predicted.get(j)).toBe(i))
    expect(q.ahead('a', 'a0')).toBe(-1)
  })

  it('unshift puts a job back first in its own key; removeWhere keeps the rest in turn', () => {
    const q = new FairQueue<string>()
    q.push('a', 'a1')
    q.push('b', 'b1')
    q.push('b', 'b2')
    const first = q.shift()
    expect(first).toBe('a1')
    q.unshift('a', 'a1')
    expect(q.removeWhere((j) => j === 'b1')).toEqual(['b1'])
    expect(q.length).toBe(2)
    expect(drain(q)).toEqual(['b2', 'a1'])
  })
})
