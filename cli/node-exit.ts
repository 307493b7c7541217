/**
 * How `cdn node start` ends when the node stops on its own: removed from the
 * pool by an operator (exit 0, one line on stdout), or its join token
 * refused (exit 1, one `cdn: join refused: …` line on stderr).
 */
import type { NodeEnd } from '../node/daemon.ts'

/** Returns the daemon, so it wraps the start call. */
export function exitWhenEnded<D extends { ended: Promise<NodeEnd> }> (daemon: D): D {
  void daemon.ended.then((end) => {
    if (end.kind === 'removed') {
      process.stdout.write(`${end.message}\n`)
      process.exit(0)
    }
    process.stderr.write(`cdn: ${end.message}\n`)
    process.exit(1)
  })
  return daemon
}
