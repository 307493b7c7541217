/**
 * The proxy daemon's defaults, stated once (a minimal version written for
 * the CLI's help; the proxy's own code adopts it in the proxy stream).
 */
export const PROXY_DEFAULTS = {
  httpHost: '127.0.0.1',
  httpPort: 8080,
  cacheBytes: 2e9,
  suffix: 'cdn'
} as const
