/**
 * Which transaction the current async flow is inside, the same way on both
 * engines: a statement or a nested transaction from this flow joins it, one
 * from any other flow never does, and work promised for after the commit
 * waits for it.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export interface OpenTx {
  open: boolean
  /** run once the transaction commits; dropped on rollback */
  after: Array<() => void>
}

export class TransactionScope<T extends OpenTx> {
  private readonly storage = new AsyncLocalStorage<T>()

  /** The open transaction of this async flow, if any. */
  get current (): T | undefined {
    const tx = this.storage.getStore()
    return tx?.open === true ? tx : undefined
  }

  async run<R> (tx: T, fn: () => Promise<R>): Promise<R> {
    return await this.storage.run(tx, fn)
  }

  /** Runs `fn` once the current transaction commits, or at once outside one. */
  afterCommit (fn: () => void): void {
    const tx = this.current
    if (tx != null) tx.after.push(fn)
    else fn()
  }

  /** A durability barrier inside a transaction would not cover that transaction's own writes. */
  assertOutside (what: string): void {
    if (this.current != null) throw new Error(`${what} inside a transaction would not cover it`)
  }
}
