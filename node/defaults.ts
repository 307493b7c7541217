/**
 * The node daemon's defaults, stated once: the daemon falls back to them and
 * `cdn node start --help` prints them.
 */
export const NODE_DEFAULTS = {
  /** bytes of disk offered */
  capacity: 10_000_000_000,
  /** bytes/s; Infinity is no cap */
  maxEgress: Infinity,
  /** address the data plane and libp2p listen on */
  httpHost: '127.0.0.1',
  /** Longer than the manager's upload deadline (6 h), so no chunk of an upload still in progress is collected. */
  gcGraceMs: 24 * 3_600_000,
  keepData: false
} as const
