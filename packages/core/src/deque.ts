/**
 * A FIFO queue on a growable ring buffer: O(1) `push` and `shift` whatever the length, which a JS array's
 * `shift()` does not promise. The loop's ready queue.
 *
 * @internal
 * @module
 */
export class Deque<T> {
  #items: (T | undefined)[] = new Array<T | undefined>(16);
  #head = 0;
  #length = 0;

  /** How many items are queued. */
  get length(): number {
    return this.#length;
  }

  /** Appends `item` at the tail. */
  push(item: T): void {
    const items = this.#items;
    if (this.#length === items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = item;
    this.#length++;
  }

  /** Removes and returns the head, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const items = this.#items;
    const item = items[this.#head];
    items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (items.length - 1);
    this.#length--;
    return item;
  }

  /** Removes every item. */
  clear(): void {
    this.#items = new Array<T | undefined>(16);
    this.#head = 0;
    this.#length = 0;
  }

  /** Iterates from head to tail without removing. */
  *[Symbol.iterator](): IterableIterator<T> {
    const items = this.#items;
    for (let i = 0; i < this.#length; i++) yield items[(this.#head + i) & (items.length - 1)] as T;
  }

  #grow(): void {
    const old = this.#items;
    const items = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & (old.length - 1)];
    this.#items = items;
    this.#head = 0;
  }
}
