/**
 * Statements over a long list of values (`… WHERE x IN (?, ?, …)`), run in
 * batches well under both engines' parameter limits, each value once.
 */
const BATCH = 500

/** Calls `query` once per batch of the distinct `values`, with the batch and its `?, ?, …` placeholders; the rows of every batch in one list. */
export async function inBatches<T> (values: readonly string[], query: (batch: string[], placeholders: string) => Promise<T[]>): Promise<T[]> {
  const unique = [...new Set(values)]
  const out: T[] = []
  for (let i = 0; i < unique.length; i += BATCH) {
    const batch = unique.slice(i, i + BATCH)
    out.push(...await query(batch, batch.map(() => '?').join(', ')))
  }
  return out
}
