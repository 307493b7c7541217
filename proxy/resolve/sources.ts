/** Where a blob can be fetched from: a node's peer id (its identity in reports and scores) and its HTTP data plane. */
export interface SourceAddress {
  /** the node's peer id */
  id: string
  /** base URL of the node's data plane, e.g. http://127.0.0.1:9103 */
  url: string
}

/** A source together with which chunks of one content it holds. */
export interface ContentSource extends SourceAddress {
  have: Uint8Array
}

/**
 * Merges source lists from several discoverers (the manager's hint, the DHT),
 * keeping the first address seen for each peer id and at most `max` sources.
 */
export function mergeSources (lists: ReadonlyArray<readonly SourceAddress[]>, max = Infinity): SourceAddress[] {
  const seen = new Map<string, SourceAddress>()
  for (const list of lists) {
    for (const s of list) {
      if (seen.size >= max) break
      if (!seen.has(s.id)) seen.set(s.id, { id: s.id, url: s.url })
    }
  }
  return [...seen.values()]
}
