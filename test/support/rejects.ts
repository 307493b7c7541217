import * as assert from 'uvu/assert'

/** `assert.throws` for async code: `fn` must reject, with an error `expected` accepts (a predicate or a message pattern). */
export async function rejects (fn: () => Promise<unknown>, expected?: RegExp | ((err: unknown) => boolean), message?: string): Promise<void> {
  let threw = false
  let error: unknown
  try {
    await fn()
  } catch (err) {
    threw = true
    error = err
  }
  assert.ok(threw, message ?? 'expected a rejection')
  if (expected instanceof RegExp) assert.match(String((error as Error)?.message ?? error), expected, message)
  else if (expected != null) assert.ok(expected(error), message ?? `unexpected error: ${String(error)}`)
}

/** The error `p` rejects with; fails the test when it resolves. */
export async function caught (p: Promise<unknown>): Promise<Error> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a failure')
}
