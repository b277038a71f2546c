/**
 * Setting a kernel parameter (a file under /proc/sys) for one test, and putting the old value back after it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Cleanup } from './measure.js';

/** What {@link setSysctl} did: set (the value was written, or already there), or why it could not. */
export type SysctlOutcome = { set: true; previous: string } | { set: false; why: string };

/**
 * Sets `/proc/sys/<name>` (dots or slashes: `net.ipv4.tcp_migrate_req`) to `value` until the test ends.
 *
 * @returns `set: true` when the parameter has `value` now; `set: false` and why (no such parameter on this
 * kernel, not writable: not root, or a read-only /proc/sys in a container).
 */
export function setSysctl(t: Cleanup, name: string, value: string): SysctlOutcome {
  const file = `/proc/sys/${name.replaceAll('.', '/')}`;
  let previous: string;
  try {
    previous = readFileSync(file, 'utf8').trim();
  } catch (err) {
    return { set: false, why: `${name} is not on this kernel (${(err as NodeJS.ErrnoException).code ?? err})` };
  }
  if (previous === value) return { set: true, previous };
  try {
    writeFileSync(file, value);
  } catch (err) {
    return { set: false, why: `${name} is ${previous} and cannot be set (${(err as NodeJS.ErrnoException).code})` };
  }
  t.after(() => writeFileSync(file, previous));
  return { set: true, previous };
}
