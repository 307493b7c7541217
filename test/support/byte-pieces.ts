/** Feeds `data` in pieces of the given (odd) sizes, cycling through them: a stream cut where a socket might cut it. */
export async function * pieces (data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let offset = 0
  let i = 0
  while (offset < data.length) {
    const n = sizes[i++ % sizes.length]
    yield data.slice(offset, offset + n)
    offset += n
  }
}
