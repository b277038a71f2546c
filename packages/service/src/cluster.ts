/**
 * `workers: N`: the app served by N processes on the same listeners, with node:cluster.
 *
 * The primary forks N workers running the same program; in each, `app.listen()` listens as usual (Node's
 * cluster shares the primary's listening sockets, so port 0 gives every worker the same port; with `reusePort`
 * each worker binds its own socket on a fixed port instead). The primary serves nothing: it restarts workers that
 * die, and on SIGTERM/SIGINT passes the signal on to every worker (each drains gracefully) and exits 0 once all
 * have exited 0.
 *
 * @module
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { acquireLoop } from './loop-host.js';
import type { LoopLease } from './loop-host.js';

/** The message a worker sends the primary once it listens. */
export interface ListeningMessage {
  readonly loopwork: 'listening';
  readonly address: string;
}

/** @internal Tells the primary (if any) that this worker listens. */
export function announceListening(address: string): void {
  if (cluster.isWorker && typeof process.send === 'function') {
    const msg: ListeningMessage = { loopwork: 'listening', address };
    process.send(msg);
  }
}

function isListening(msg: unknown): msg is ListeningMessage {
  return typeof msg === 'object' && msg !== null && (msg as ListeningMessage).loopwork === 'listening';
}

/** Options of the primary. */
export interface PrimaryOptions {
  readonly workers: number;
  readonly signals: readonly NodeJS.Signals[];
  /** Seconds the workers get to drain before they are killed. */
  readonly shutdownTimeout: number;
  readonly exitOnSignal: boolean;
  readonly log: Logger;
}

/** @internal The running primary. */
export class Primary {
  readonly #opts: PrimaryOptions;
  readonly #workers = new Set<Worker>();
  #lease: LoopLease | null = null;
  #stopping = false;
  #failures = 0;
  #allExited: (() => void) | null = null;
  #exitCodes: number[] = [];

  constructor(options: PrimaryOptions) {
    this.#opts = options;
  }

  /** Forks the workers and resolves with the address the first one reports, once all of them listen. */
  async start(): Promise<string> {
    this.#lease = acquireLoop();
    const loop = this.#lease.loop;
    for (const sig of this.#opts.signals) loop.addSignalHandler(sig, () => this.#onSignal(sig));
    const addresses: Promise<string>[] = [];
    for (let i = 0; i < this.#opts.workers; i++) addresses.push(this.#fork());
    const all = await Promise.all(addresses);
    this.#opts.log.info({ workers: this.#opts.workers, address: all[0] }, 'cluster listening');
    return all[0]!;
  }

  /** The worker processes' ids. */
  get pids(): number[] {
    return [...this.#workers].map((w) => w.process.pid ?? -1);
  }

  #fork(): Promise<string> {
    const worker = cluster.fork();
    this.#workers.add(worker);
    return new Promise<string>((resolve, reject) => {
      let listening = false;
      worker.on('message', (msg: unknown) => {
        if (!isListening(msg)) return;
        listening = true;
        resolve(msg.address);
      });
      worker.on('exit', (code, signal) => {
        this.#workers.delete(worker);
        if (this.#stopping) {
          this.#exitCodes.push(code ?? 1);
          if (this.#workers.size === 0) this.#allExited?.();
          return;
        }
        // `worker`, not `pid`: pino's own `pid` (the primary's) is on every line, and JSON keeps only one of two.
        this.#opts.log.error({ worker: worker.process.pid, code, signal }, 'cluster worker exited');
        if (!listening) {
          reject(new Error(`cluster worker exited before listening (code ${String(code)}, signal ${String(signal)})`));
          return;
        }
        // Restart, but not in a tight loop when workers keep dying.
        if (++this.#failures <= 10 * this.#opts.workers) void this.#fork().catch(() => undefined);
      });
    });
  }

  #onSignal(sig: NodeJS.Signals): void {
    if (this.#stopping) {
      for (const w of this.#workers) w.process.kill('SIGKILL');
      return;
    }
    this.#opts.log.info({ signal: sig }, 'cluster shutting down');
    void this.stop(sig).then((clean) => {
      if (this.#opts.exitOnSignal) process.exit(clean ? 0 : 1);
    });
  }

  /**
   * Passes `sig` to every worker and waits for them to exit (killing them after the shutdown timeout).
   *
   * @returns true when every worker exited with code 0.
   */
  async stop(sig: NodeJS.Signals = 'SIGTERM'): Promise<boolean> {
    this.#stopping = true;
    const exited = new Promise<void>((resolve) => {
      this.#allExited = resolve;
      if (this.#workers.size === 0) resolve();
    });
    for (const w of this.#workers) w.process.kill(sig);
    const loop = this.#lease?.loop;
    const killer = loop?.callLater(this.#opts.shutdownTimeout + 1, () => {
      for (const w of this.#workers) w.process.kill('SIGKILL');
    });
    await exited;
    killer?.cancel();
    for (const sig of this.#opts.signals) loop?.removeSignalHandler(sig);
    await this.#lease?.release();
    this.#lease = null;
    return this.#exitCodes.every((c) => c === 0);
  }
}
