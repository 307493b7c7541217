/**
 * The manager daemon's defaults, stated once: startManager and the services
 * it wires read them here, and the CLI's help shows them. Option name (as in
 * ManagerConfig and the `cdn manager start` flags) → default value.
 */
import { DEFAULT_POLICY } from './replication/policy-types.ts'

export const MANAGER_DEFAULTS = {
  /** address the HTTP API and libp2p listen on */
  httpHost: '127.0.0.1',
  /** the HTTP port a fresh data directory takes (`cdn manager start`; later starts reuse the last one) */
  httpPort: 7070,
  /** the libp2p port a fresh data directory takes */
  p2pPort: 7071,
  /** copies per chunk when an upload names none */
  replicas: 3,
  chunkSize: 1024 * 1024,
  /** how uploads are cut unless they say: 'fixed' (chunkSize) or 'cdc' (by content, core/cdc-chunker.ts) */
  chunking: 'fixed' as 'fixed' | 'cdc',
  maxUploadBytes: 64 * 1024 ** 3,
  uploadTimeoutMs: 6 * 3_600_000,
  /** told to nodes when they join */
  heartbeatMs: 5000,
  /** heartbeats a node may miss before it is dead (deadNodeMs = this × heartbeatMs) */
  deadNodeHeartbeats: 3,
  /** replication controller round */
  reconcileMs: 10_000,
  /** share of the pool's egress its own moves may use */
  moveShare: 0.2,
  /** no chunk ever drops below this many confirmed copies through our deletes */
  minCopies: DEFAULT_POLICY.minCopies,
  /** most copies demand may raise a content to */
  maxCopies: DEFAULT_POLICY.maxCopies,
  /** blobs per store order of a publish */
  blobsPerOrder: 16,
  /** orders a publish has out at once */
  ordersInFlight: 8,
  /** ms per store order */
  orderTimeoutMs: 120_000,
  /** bytes of staged blobs kept in memory for nodes to fetch; past it they wait on disk */
  stagingMemoryBytes: 128 * 1024 * 1024,
  /** ms the delete orders of a failed upload may take */
  cleanupTimeoutMs: 30_000
} as const
