/**
 * `TaskGroup`: structured concurrency (asyncio's `taskgroups.py`, 3.12 semantics).
 *
 * asyncio writes `async with asyncio.TaskGroup() as tg:`. The block is a function here, because JavaScript's
 * `await using` cannot see the block's error: `await new TaskGroup().run(async (tg) => { tg.createTask(...) })`.
 * When a child fails, the others and the block are cancelled, and every error is thrown together in an
 * `ExceptionGroup`.
 *
 * @module
 */
import type { Context } from './context.js';
import { ExceptionGroup, RuntimeError, isCancelledError } from './errors.js';
import type { Future } from './futures.js';
import type { Coroutine, Task } from './tasks.js';
import { currentTask } from './tasks.js';
import type { BaseEventLoop } from './base-event-loop.js';

/**
 * A group of tasks that all end before the group's block returns.
 */
export class TaskGroup {
  #entered = false;
  #exiting = false;
  #aborting = false;
  #loop: BaseEventLoop | null = null;
  #parent: Task<unknown> | null = null;
  #parentCancelRequested = false;
  #tasks = new Set<Task<unknown>>();
  #errors: unknown[] = [];
  #onCompleted: Future<boolean> | null = null;

  /**
   * Enters the group in the current task (asyncio's `__aenter__`). Prefer `run()`.
   *
   * @throws RuntimeError when entered twice or outside a task.
   */
  enter(): this {
    if (this.#entered) throw new RuntimeError(`TaskGroup ${this.#describe()} has already been entered`);
    const parent = currentTask();
    if (parent === null) throw new RuntimeError(`TaskGroup ${this.#describe()} cannot determine the parent task`);
    this.#loop = parent.getLoop();
    this.#parent = parent;
    this.#entered = true;
    return this;
  }

  /**
   * Waits for every task of the group, then throws what must be thrown (asyncio's `__aexit__`).
   *
   * @param error - what the block threw, if anything.
   * @throws the block's `CancelledError` when the group is cancelled from outside; an `ExceptionGroup` of the
   * children's errors (and the block's) otherwise.
   */
  async exit(error?: unknown): Promise<void> {
    this.#exiting = true;
    const failed = arguments.length > 0 && error !== undefined;
    let propagateCancellation: unknown = failed && isCancelledError(error) ? error : undefined;
    if (failed && !this.#aborting) this.#abort();
    while (this.#tasks.size > 0) {
      this.#onCompleted ??= (this.#loop as BaseEventLoop).createFuture<boolean>();
      try {
        await this.#onCompleted;
      } catch (e) {
        if (!isCancelledError(e)) throw e;
        if (!this.#aborting) {
          propagateCancellation = e;
          this.#abort();
        }
      }
      this.#onCompleted = null;
    }
    // After the wait, as asyncio 3.12 does: a child that fails while the block already waits here cancels the
    // parent too, and that request must be withdrawn as well, or the parent's cancelling() stays above 0.
    if (this.#parentCancelRequested && (this.#parent as Task<unknown>).uncancel() === 0) {
      propagateCancellation = undefined;
    }
    if (propagateCancellation !== undefined && this.#errors.length === 0) throw propagateCancellation;
    if (failed && !isCancelledError(error)) this.#errors.push(error);
    if (this.#errors.length > 0) {
      const errors = this.#errors;
      this.#errors = [];
      throw new ExceptionGroup('unhandled errors in a TaskGroup', errors);
    }
  }

  /**
   * Runs `body(group)`, then waits for every task it created.
   *
   * @returns what `body` returned.
   */
  async run<T>(body: (group: this) => PromiseLike<T> | T): Promise<T> {
    this.enter();
    let result: T;
    try {
      result = await body(this);
    } catch (error) {
      await this.exit(error);
      throw error;
    }
    await this.exit();
    return result;
  }

  /**
   * Creates a task in the group.
   *
   * @throws RuntimeError when the group is not entered, finished, or shutting down after a failure.
   */
  createTask<T>(coro: Coroutine<T>, options: { name?: string; context?: Context } = {}): Task<T> {
    if (!this.#entered) throw new RuntimeError(`TaskGroup ${this.#describe()} has not been entered`);
    if (this.#exiting && this.#tasks.size === 0) throw new RuntimeError(`TaskGroup ${this.#describe()} is finished`);
    if (this.#aborting) throw new RuntimeError(`TaskGroup ${this.#describe()} is shutting down`);
    const task = (this.#loop as BaseEventLoop).createTask(coro, options);
    this.#tasks.add(task as Task<unknown>);
    task.addDoneCallback((t) => this.#onTaskDone(t as Task<unknown>));
    return task;
  }

  #abort(): void {
    this.#aborting = true;
    for (const t of this.#tasks) if (!t.done()) t.cancel();
  }

  #onTaskDone(task: Task<unknown>): void {
    this.#tasks.delete(task);
    if (this.#onCompleted !== null && this.#tasks.size === 0 && !this.#onCompleted.done()) {
      this.#onCompleted.setResult(true);
    }
    if (task.cancelled()) return;
    const exc = task.exception();
    if (exc === null) return;
    this.#errors.push(exc);
    const parent = this.#parent as Task<unknown>;
    if (parent.done()) {
      (this.#loop as BaseEventLoop).callExceptionHandler({
        message: `Task ${task._describe()} has errored out but its parent task ${parent._describe()} is already completed`,
        exception: exc,
        task,
      });
      return;
    }
    if (!this.#aborting && !this.#parentCancelRequested) {
      // Stop what the block is doing: cancel the children and the parent, which exit() will uncancel.
      this.#abort();
      this.#parentCancelRequested = true;
      parent.cancel();
    }
  }

  #describe(): string {
    const info = [];
    if (this.#tasks.size) info.push(`tasks=${this.#tasks.size}`);
    if (this.#errors.length) info.push(`errors=${this.#errors.length}`);
    if (this.#aborting) info.push('cancelling');
    else if (this.#entered) info.push('entered');
    return `<TaskGroup ${info.join(' ')}>`;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.#describe();
  }
}
