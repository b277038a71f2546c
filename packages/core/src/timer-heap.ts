/**
 * A binary min-heap of timer handles ordered by (deadline, scheduling sequence): equal deadlines come out in the
 * order they were scheduled (asyncio leaves that undefined; loopwork defines it).
 *
 * @internal
 * @module
 */

/** What the heap orders: a deadline in seconds and a sequence number that breaks ties. */
export interface HeapItem {
  readonly _when: number;
  readonly _seq: number;
}

function less(a: HeapItem, b: HeapItem): boolean {
  return a._when < b._when || (a._when === b._when && a._seq < b._seq);
}

export class TimerHeap<T extends HeapItem> {
  #items: T[] = [];

  /** How many timers are in the heap (cancelled ones included until they are swept). */
  get length(): number {
    return this.#items.length;
  }

  /** The earliest timer, without removing it. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Adds `item`. */
  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as T;
      if (!less(item, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = item;
  }

  /** Removes and returns the earliest timer. */
  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) this.#siftDown(last, 0);
    return top;
  }

  /** Keeps only the items for which `keep` is true, then restores the heap order in O(n). */
  filter(keep: (item: T) => boolean): void {
    this.#items = this.#items.filter(keep);
    for (let i = (this.#items.length >> 1) - 1; i >= 0; i--) this.#siftDown(this.#items[i] as T, i);
  }

  /** Removes every item and returns them (in no particular order). */
  drain(): T[] {
    const items = this.#items;
    this.#items = [];
    return items;
  }

  #siftDown(item: T, i: number): void {
    const items = this.#items;
    const n = items.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && less(items[right] as T, items[child] as T)) child = right;
      const c = items[child] as T;
      if (!less(c, item)) break;
      items[i] = c;
      i = child;
    }
    items[i] = item;
  }
}
