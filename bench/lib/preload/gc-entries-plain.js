// Preload (--import, needs --expose-internals) for bench/gc-survivors.js: the same observer as
// gc-observer.js, with Node's own entry pipeline (createPerformanceNodeEntry, enqueue, the
// observer's buffer and dispatch), except the block of Node's observerCallback that gives each
// entry its deprecated `kind` / `flags` accessors (DEP0152): a Map and four deprecate() wrappers
// per entry. Diagnostic only: it replaces an internal callback.
import { createRequire } from 'node:module'
import { PerformanceObserver } from 'node:perf_hooks'

const require = createRequire(import.meta.url)
const { internalBinding } = require('internal/test/binding')
const { enqueue } = require('internal/perf/observe')
const { createPerformanceNodeEntry } = require('internal/perf/performance_entry')

new PerformanceObserver(() => {}).observe({ entryTypes: ['gc'] })
// Loading internal/perf/observe above installed Node's callback; this replaces it.
internalBinding('performance').setupObservers((name, type, startTime, duration, details) => {
  enqueue(createPerformanceNodeEntry(name, type, startTime, duration, details))
})
