/**
 * Settles with `p`, or rejects with the signal's reason as soon as it aborts,
 * so a read that never ends (a stalled stream or socket) cannot outlive its
 * deadline.
 */
export function raceSignal<T> (p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    // The abandoned operation may still fail later; its error adds nothing to the abort being reported.
    p.catch(() => {})
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => { reject(signal.reason) }
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => { signal.removeEventListener('abort', onAbort) })
  })
}
