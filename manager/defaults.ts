/**
 * The manager daemon's defaults, stated once (a minimal version written for
 * the CLI's help; the manager's own code adopts it in the manager stream).
 */
export const MANAGER_DEFAULTS = {
  httpHost: '127.0.0.1',
  httpPort: 7070,
  p2pPort: 7071,
  replicas: 3,
  chunkSize: 1024 * 1024,
  maxUploadBytes: 64 * 1024 ** 3,
  uploadTimeoutMs: 6 * 3_600_000,
  heartbeatMs: 5000,
  reconcileMs: 10_000,
  moveShare: 0.2,
  minCopies: 2,
  maxCopies: 8
} as const
