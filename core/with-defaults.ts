/**
 * Fills an options object from its defaults. Unlike a spread, an option
 * passed as `undefined` (as wiring code forwarding an optional setting does)
 * keeps its default instead of erasing it.
 */
export function withDefaults<T extends object> (defaults: Required<T>, init: T | undefined): Required<T> {
  const out = { ...defaults }
  for (const [k, v] of Object.entries(init ?? {})) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v
  }
  return out
}
