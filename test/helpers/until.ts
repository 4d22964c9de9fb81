// Waiting for an outcome instead of sleeping for a time: poll until it holds.

/**
 * Resolves once check() is true; fails after 10 s of real time, naming what. `between` runs
 * before each new look: for example advancing a ManualClock, so that work scheduled on it
 * (an upstream client's retry backoff) can go on.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  between?: () => void,
): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
    between?.()
  }
}
