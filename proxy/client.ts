import { silentLogger, type Logger } from '../core/log.ts'
import type { FetchEngine } from './fetch/fetch-engine.ts'
import { startFetchStack } from './fetch-stack.ts'
import type { NameResolver } from './resolve/name-records.ts'

export type { FetchEngine, OpenedContent, OpenOptions, Progress } from './fetch/fetch-engine.ts'

export interface FetchClient {
  engine: FetchEngine
  /** where the pool's names point, each record verified against the pool's identity */
  names: NameResolver
  /** Cancels reads in progress and releases the host, connections and timers. */
  close (): Promise<void>
}

/**
 * The fetch engine for one-shot use (`cdn get`): asks the manager for its
 * identity and addresses, joins the DHT as a client through it, and fails
 * at once if no manager answers (given several, each is tried in turn).
 */
export async function createFetchClient (opts: { managerUrl: string | readonly string[], ca?: Buffer, signal?: AbortSignal, logger?: Logger }): Promise<FetchClient> {
  const stack = await startFetchStack({
    managerUrl: opts.managerUrl,
    ca: opts.ca,
    logger: opts.logger ?? silentLogger(),
    requireManager: true,
    signal: opts.signal
  })
  return { engine: stack.engine, names: stack.names, close: stack.close }
}
