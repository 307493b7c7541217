import { collectDefaultMetrics, Registry } from 'prom-client'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Each daemon owns one registry (no global default), so several roles can live in one test process. */
export function createMetricsRegistry (role: string): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  collectDefaultMetrics({ register: registry })
  return registry
}

export async function serveMetrics (registry: Registry, _req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await registry.metrics()
  res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
  res.end(body)
}
