/**
 * Shared helpers of the core tests (and, through packages/server/test/helpers.ts, of the server tests): a loop
 * runner that records the exception handler's calls, a stream protocol that records what its transport does
 * to it, and V8's `gc()` for the tests that watch what is collected.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Protocol, currentTask, newEventLoop } from '@loopwork/core';
import type { BaseEventLoop, BaseTransport, ExceptionContext, Future, Transport } from '@loopwork/core';

/** V8's `gc()`, from a `vm` context made after `--expose-gc` is set. */
export function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * Runs `gc()` until every object `refs` refer to is collected (at most 20 times, 10 ms apart, so that what the
 * loop still had queued can run) and tells, for each, whether it was.
 */
export async function collectedAfterGc(refs: readonly WeakRef<object>[]): Promise<boolean[]> {
  const gc = exposedGc();
  for (let i = 0; i < 20 && refs.some((r) => r.deref() !== undefined); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    gc();
  }
  return refs.map((r) => r.deref() === undefined);
}

/** A promise for a loop Future (node:assert wants a real Promise). */
export const settle = <T>(f: PromiseLike<T>): Promise<T> => Promise.resolve(f);

/**
 * Runs `main` on a fresh loop whose exception handler records into `errors`, then closes the loop. (Not `run()`:
 * its `shutdownAsyncgens()` would also close node:test's own async generators.)
 */
export async function runLoop<T>(
  main: (loop: BaseEventLoop, errors: ExceptionContext[]) => Promise<T>,
  options: { debug?: boolean } = {},
): Promise<T> {
  const loop = newEventLoop(options.debug === undefined ? {} : { debug: options.debug });
  const errors: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => errors.push(ctx));
  try {
    return await loop.runUntilComplete(() => main(loop, errors));
  } finally {
    loop.close();
  }
}

/** The grammar of a stream protocol's callbacks (pause/resumeWriting left out). */
export const STREAM_GRAMMAR = /^connectionMade(,dataReceived)*(,eofReceived)?,connectionLost$/;

/** A protocol that records its callbacks, the bytes it got, and whether a task was current in each callback. */
export class Recorder extends Protocol {
  readonly events: string[] = [];
  readonly chunks: Buffer[] = [];
  readonly tasksSeen: unknown[] = [];
  /** What `probe()` returned in each callback (e.g. a context variable's value). */
  readonly probed: unknown[] = [];
  probe: (() => unknown) | null = null;
  tp: Transport | null = null;
  readonly made: Future<Transport>;
  readonly lost: Future<Error | null>;
  readonly eof: Future<void>;
  keepOpen = false;
  #want = 0;
  #enough: Future<void> | null = null;

  constructor(readonly loop: BaseEventLoop) {
    super();
    this.made = loop.createFuture();
    this.lost = loop.createFuture();
    this.eof = loop.createFuture();
  }

  #note(event: string): void {
    this.events.push(event);
    this.tasksSeen.push(currentTask());
    if (this.probe !== null) this.probed.push(this.probe());
  }

  override connectionMade(transport: BaseTransport): void {
    this.#note('connectionMade');
    this.tp = transport as Transport;
    this.made.setResult(transport as Transport);
  }

  override dataReceived(data: Buffer): void {
    this.#note('dataReceived');
    this.chunks.push(data);
    if (this.#enough !== null && this.size >= this.#want && !this.#enough.done()) this.#enough.setResult(undefined);
  }

  override eofReceived(): boolean {
    this.#note('eofReceived');
    this.eof.setResult(undefined);
    return this.keepOpen;
  }

  override connectionLost(exc: Error | null): void {
    this.#note('connectionLost');
    if (this.#enough !== null && !this.#enough.done()) this.#enough.setResult(undefined);
    this.lost.setResult(exc);
  }

  override pauseWriting(): void {
    this.events.push('pauseWriting');
  }

  override resumeWriting(): void {
    this.events.push('resumeWriting');
  }

  /** The bytes received so far. */
  get size(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }

  /** What was received, as text. */
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Resolves once `n` bytes have arrived (or the connection is lost). */
  async received(n: number): Promise<void> {
    if (this.size >= n) return;
    this.#want = n;
    this.#enough = this.loop.createFuture();
    await this.#enough;
  }

  /** The callbacks in order, without the write flow-control ones. */
  grammar(): string {
    return this.events.filter((e) => e !== 'pauseWriting' && e !== 'resumeWriting').join(',');
  }
}
