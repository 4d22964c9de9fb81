// Preload (--import) for bench/gc-survivors.js: one PerformanceObserver on 'gc' entries that does
// nothing with them, as any GC metric (prom-client's nodejs_gc_duration_seconds among them) observes.
import { PerformanceObserver } from 'node:perf_hooks'

new PerformanceObserver(() => {}).observe({ entryTypes: ['gc'] })
