/**
 * Keeping the memory that reads land in warm.
 *
 * A protocol owns the bytes `dataReceived()` gives it (asyncio hands it `bytes`), so every read lands in memory of
 * its own, which is garbage once the protocol is done with it. V8 frees `ArrayBuffer` memory only in a scavenge of
 * the young generation, and starts one by itself only after about 32 MiB of it: a busy connection's reads cycle
 * through 32 MiB, and on the machine we measure on each read then lands in memory that has gone cold.
 *
 * TCP echo (bench/README.md), server CPU per request. When the machine is in a phase where cold memory shows, a
 * scavenge asked for after every 4 or 8 MiB read halved it at 10 KiB messages, and after every 4 to 16 MiB at
 * 100 KiB; after every 32 MiB, nothing. In phases where it does not show, at 100 KiB, every 4 MiB cost more than it
 * saved and every 8 MiB about as much (each scavenge frees a burst of slabs, glibc gives them back to the kernel,
 * and the next ones fault in: 5 page faults a request at 4 MiB, 1.2 at 16), and every 16 MiB saved about a fifth.
 *
 * So the plain and pipe transports report what they hand to protocols ({@link readMemoryUsed}; not the TLS one, see
 * docs/deployment.md), and after every `interval` bytes
 * (16 MiB to begin with) loopwork asks V8 for a scavenge: `gc({ type: 'minor' })`, from a `vm` context made while
 * `--expose-gc` is set, which is unset again (no context gets a `gc` global). A scavenge costs in proportion to
 * what is alive in the young generation, not to the garbage: about 0.1 ms in an echo server. In an application
 * whose young generation holds much more, the interval adapts: it doubles (up to 64 MiB, past V8's own trigger)
 * while a scavenge costs more than 0.1 ms per MiB of interval, and halves (down to 16 MiB) when one costs less
 * than a quarter of that.
 *
 * `LOOPWORK_READ_GC=0` in the environment turns it off.
 *
 * @module
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const MIB = 1024 * 1024;
/** The shortest interval between two scavenges asked for, in bytes read. */
const MIN_INTERVAL = 16 * MIB;
/** The longest: past V8's own trigger, so that a heavy young generation is scavenged about as V8 would. */
const MAX_INTERVAL = 64 * MIB;
/** A scavenge costing more than this many milliseconds per MiB of interval doubles the interval. */
const SLOW_MS_PER_MIB = 0.1;

type MinorGc = (options: { type: 'minor' }) => void;

/** Bytes left until the next scavenge. */
let left = process.env.LOOPWORK_READ_GC === '0' ? Infinity : MIN_INTERVAL;
let interval = MIN_INTERVAL;
/** V8's `gc` function, fetched at the first scavenge; `null` if it could not be. */
let minorGc: MinorGc | null | undefined;

/**
 * Notes that `bytes` bytes of fresh memory went to a protocol (the transports call it for each `dataReceived()`
 * they make with memory they allocated), and asks V8 for a scavenge once enough has gone by (see the module's
 * documentation).
 *
 * @internal
 */
export function readMemoryUsed(bytes: number): void {
  left -= bytes;
  if (left <= 0) scavenge();
}

function scavenge(): void {
  if (minorGc === undefined) minorGc = fetchGc();
  if (minorGc === null) {
    left = Infinity;
    return;
  }
  const start = performance.now();
  minorGc({ type: 'minor' });
  interval = nextInterval(interval, performance.now() - start);
  left = interval;
}

/**
 * The interval, in bytes read, until the scavenge after one that took `ms` milliseconds at `interval`: twice as
 * long while scavenges are slow for the memory they give back, half as long when they are quick (see the module's
 * documentation).
 *
 * @internal exported for the tests.
 */
export function nextInterval(interval: number, ms: number): number {
  const msPerMib = ms / (interval / MIB);
  if (msPerMib > SLOW_MS_PER_MIB) return Math.min(interval * 2, MAX_INTERVAL);
  if (msPerMib < SLOW_MS_PER_MIB / 4) return Math.max(interval / 2, MIN_INTERVAL);
  return interval;
}

function fetchGc(): MinorGc | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as MinorGc;
  try {
    // The flag only while one context is made: contexts made later (a test runner's) get no `gc` global either.
    setFlagsFromString('--expose-gc');
    try {
      const gc: unknown = runInNewContext('gc');
      return typeof gc === 'function' ? (gc as MinorGc) : null;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  } catch {
    return null;
  }
}
