/**
 * Smart batching of one kind of statement (the hot path's reads and completions): a call made
 * while no statement of its kind is in flight goes out at once, alone; calls made while one is in
 * flight wait for it, then go out together as the next statement. An idle worker so pays no
 * delay, and a busy one pays one round trip (and one durable commit) for many jobs — the group
 * commit of databases and of Kafka's producer, applied to our own statements.
 */
export class Batcher<I, O> {
  private waiting: Array<{ item: I; resolve: (out: O) => void; reject: (err: unknown) => void }> = [];
  private busy = false;

  /**
   * @param send - runs one statement for `items` and answers one result per item, in order.
   *   When it throws for several items, each is sent again alone, so that one item's error is
   *   that item's only.
   * @param maxItems - most items in one statement.
   */
  constructor(
    private readonly send: (items: I[]) => Promise<O[]>,
    private readonly maxItems = 64,
  ) {}

  /** Queue `item` for the next statement; resolves with its result or rejects with its error. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.busy) this.next();
    });
  }

  private next(): void {
    const batch = this.waiting.splice(0, this.maxItems);
    if (batch.length === 0) {
      this.busy = false;
      return;
    }
    this.busy = true;
    void this.deliver(batch).finally(() => this.next());
  }

  private async deliver(batch: Array<{ item: I; resolve: (out: O) => void; reject: (err: unknown) => void }>): Promise<void> {
    try {
      const out = await this.send(batch.map((b) => b.item));
      batch.forEach((b, i) => b.resolve(out[i] as O));
    } catch (err) {
      if (batch.length === 1) {
        batch[0]?.reject(err);
        return;
      }
      await Promise.all(
        batch.map(async (b) => {
          try {
            const [out] = await this.send([b.item]);
            b.resolve(out as O);
          } catch (own) {
            b.reject(own);
          }
        }),
      );
    }
  }
}

/**
 * A batched statement's rows placed at their items' positions: `count` slots, `undefined` where
 * no row came back for an item (for example, a fence that wrote nothing).
 * @param indexOf - the item's 0-based position a row answers for.
 */
export function byIndex<R>(rows: readonly R[], count: number, indexOf: (row: R) => number): Array<R | undefined> {
  const out = new Array<R | undefined>(count).fill(undefined);
  for (const row of rows) out[indexOf(row)] = row;
  return out;
}
