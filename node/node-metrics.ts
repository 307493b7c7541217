/**
 * The node's Prometheus metrics, registered on the daemon's own registry.
 * Gauges of the store are read when scraped, so they are never stale.
 */
import { Counter, Gauge, type Registry } from 'prom-client'

export interface StoreGauges {
  readonly used: number
  readonly count: number
  readonly capacity: number
}

export interface NodeMetrics {
  bytesServed: Counter<'route'>
  requests: Counter<'route' | 'status'>
  orders: Counter<'kind' | 'outcome'>
  blobsFetched: Counter<'outcome'>
}

export function createNodeMetrics (registry: Registry, store: StoreGauges): NodeMetrics {
  const registers = [registry]
  new Gauge({
    name: 'cdn_node_blobs',
    help: 'Blobs held on disk',
    registers,
    collect () { this.set(store.count) }
  })
  new Gauge({
    name: 'cdn_node_used_bytes',
    help: 'Bytes held on disk',
    registers,
    collect () { this.set(store.used) }
  })
  new Gauge({
    name: 'cdn_node_capacity_bytes',
    help: 'Bytes the node may hold',
    registers,
    collect () { this.set(store.capacity) }
  })
  return {
    bytesServed: new Counter({ name: 'cdn_node_served_bytes_total', help: 'Body bytes sent by the data plane', labelNames: ['route'], registers }),
    requests: new Counter({ name: 'cdn_node_http_requests_total', help: 'Data plane requests by route and status (status "aborted" when the client left early)', labelNames: ['route', 'status'], registers }),
    orders: new Counter({ name: 'cdn_node_orders_total', help: 'Control orders handled, by kind and outcome', labelNames: ['kind', 'outcome'], registers }),
    blobsFetched: new Counter({ name: 'cdn_node_blob_fetches_total', help: 'Blobs fetched for store orders, by outcome', labelNames: ['outcome'], registers })
  }
}
