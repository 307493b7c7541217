import { Counter, Gauge, Histogram, type Registry } from 'prom-client'

/** What the fetch engine counts; optional, so library users (the CLI) need no registry. */
export interface FetchMetrics {
  chunkRequests: Counter<'result'>
  chunkBytes: Counter
  chunkSeconds: Histogram
  badCopyReports: Counter<'result'>
  openReads: Gauge
  /** slow requests duplicated on another source (started), and which copy answered first (won: the duplicate) */
  hedges: Counter<'event'>
  /** sources left out because the pool's signed node list does not vouch for them, by where they were learned */
  unvouchedSources: Counter<'from'>
}

/** What the gateway counts. */
export interface GatewayMetrics {
  requests: Counter<'route' | 'status'>
  bytesServed: Counter
}

export type ProxyMetrics = FetchMetrics & GatewayMetrics

export function createProxyMetrics (registry: Registry): ProxyMetrics {
  const registers = [registry]
  return {
    chunkRequests: new Counter({ name: 'cdn_proxy_chunk_requests_total', help: 'chunk requests to sources by outcome (ok, error, timeout, hash, lost: aborted because a duplicate answered first)', labelNames: ['result'], registers }),
    chunkBytes: new Counter({ name: 'cdn_proxy_chunk_bytes_total', help: 'verified chunk bytes received from sources', registers }),
    chunkSeconds: new Histogram({ name: 'cdn_proxy_chunk_seconds', help: 'duration of chunk requests', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }),
    badCopyReports: new Counter({ name: 'cdn_proxy_bad_copy_reports_total', help: 'bad copies reported to the manager by outcome (sent, failed)', labelNames: ['result'], registers }),
    openReads: new Gauge({ name: 'cdn_proxy_open_reads', help: 'contents being read right now', registers }),
    hedges: new Counter({ name: 'cdn_proxy_hedges_total', help: 'slow chunk requests duplicated on another source (started), and whether the duplicate answered first (won) or not (lost)', labelNames: ['event'], registers }),
    unvouchedSources: new Counter({ name: 'cdn_proxy_unvouched_sources_total', help: 'sources left out because the pool\'s signed node list does not vouch for them, by where they were learned (dht: provider records; manager: holders it named)', labelNames: ['from'], registers }),
    requests: new Counter({ name: 'cdn_proxy_http_requests_total', help: 'gateway HTTP requests by route and status', labelNames: ['route', 'status'], registers }),
    bytesServed: new Counter({ name: 'cdn_proxy_served_bytes_total', help: 'plaintext bytes sent to HTTP clients', registers })
  }
}
