/**
 * The module-level `createTask` (asyncio's `asyncio.create_task`).
 *
 * @module
 */
import type { CreateTaskOptions } from './base-event-loop.js';
import { getRunningLoop } from './events.js';
import type { Coroutine, Task } from './tasks.js';

/**
 * Wraps `coro` in a Task on the running loop and schedules it.
 *
 * @throws RuntimeError ("no running event loop") outside a running loop.
 */
export function createTask<T>(coro: Coroutine<T>, options: CreateTaskOptions = {}): Task<T> {
  return getRunningLoop().createTask(coro, options);
}
