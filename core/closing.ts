import { describeError } from './errors.ts'
import type { Logger } from './log.ts'

/**
 * Puts `close` on a daemon's stack of closers (AsyncDisposableStack closes
 * them in reverse order, also after a start that failed half way). A part
 * that fails to close is logged under its name, and the parts opened before
 * it still close. A part opened after the stack closed (a stop during the
 * start) is closed at once, so nothing is left running.
 */
export function deferClose (stack: AsyncDisposableStack, part: string, close: () => Promise<void> | void, log: Logger): void {
  const closeLogged = async (): Promise<void> => {
    try {
      await close()
    } catch (err) {
      log.error({ part, err: describeError(err) }, 'error while stopping')
    }
  }
  if (stack.disposed) void closeLogged()
  else stack.defer(closeLogged)
}
