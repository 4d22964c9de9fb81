// Medians, table printing and JSON results under bench/results/.

import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './servers.js'

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/** Value at percentile p (0..100) of raw samples, nearest-rank. */
export function percentile(values, p) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))
  return v[rank]
}

/** Median of each numeric field over a list of objects with the same fields. */
export function medianOf(runs, fields) {
  const out = {}
  for (const f of fields) out[f] = median(runs.map((r) => r[f]))
  return out
}

export function fmt(value, digits = 0) {
  if (typeof value === 'string') return value
  if (value === undefined || value === null || Number.isNaN(value)) return '-'
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  })
}

export const MiB = 1024 * 1024

/** Print rows (arrays of cells) under headers as an aligned plain-text (Markdown) table. */
export function printTable(title, headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c)))
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r) =>
    '| ' +
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') +
    ' |'
  console.log(`\n${title}`)
  console.log(line(cells[0]))
  console.log(
    '| ' +
      widths.map((w, i) => (i === 0 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':')).join(' | ') +
      ' |',
  )
  for (const r of cells.slice(1)) console.log(line(r))
}

/** PASS/FAIL cell for a target. */
export function verdict(ok) {
  return ok ? 'PASS' : 'FAIL'
}

export function machine() {
  return {
    date: new Date().toISOString(),
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryBytes: totalmem(),
    node: process.version,
    full: process.env.BENCH_FULL === '1',
  }
}

/** Write bench/results/<name>.json; returns its path. */
export function writeResults(name, data) {
  const dir = join(ROOT, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify({ machine: machine(), ...data }, null, 2) + '\n')
  return file
}
