/**
 * @loopwork/core: the asyncio event loop on Node.js.
 *
 * @packageDocumentation
 */
export * from './errors.js';
export {
  Context,
  ContextVar,
  Token,
  captureContext,
  copyContext,
  enterOwnScope,
  enterScope,
  exitOwnScope,
  exitScope,
  runInScope,
} from './context.js';
export type { ContextOwner } from './context.js';
export type { Scope } from './context.js';
export { Handle, TimerHandle } from './handles.js';
export { readMemoryUsed } from './read-memory.js';
export type { Callback, ExceptionContextInput } from './handles.js';
export { Future, cancellablePromise, cancellableWait, isFuture, isThenable, promiseCanceller } from './futures.js';
export type { DoneCallback, FutureOptions, PromiseCanceller } from './futures.js';
export {
  ALL_COMPLETED,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  GatheringFuture,
  Task,
  allTasks,
  asCompleted,
  currentTask,
  ensureFuture,
  gather,
  runCancellable,
  shield,
  sleep,
  wait,
  waitFor,
} from './tasks.js';
export type { AsCompletedIterator, Awaitable, Coroutine, GatherOptions, TaskOptions, WaitOptions } from './tasks.js';
export { Timeout, timeout, timeoutAt } from './timeouts.js';
export { TaskGroup } from './taskgroups.js';
// `export *` (not a named re-export): packages augment `BaseEventLoop` through '@loopwork/core', and TypeScript
// merges such an augmentation into the class only through a star re-export.
export * from './base-event-loop.js';
export type {
  CreateTaskOptions,
  EventLoopOptions,
  ExceptionContext,
  ExceptionHandler,
  Executor,
  TaskFactory,
} from './base-event-loop.js';
export { NodeEventLoop } from './node-event-loop.js';
export { ensureFdNoTransport, registerTransportFd, unregisterTransportFd } from './fd-watchers.js';
export type { FileDescriptorLike } from './fd-watchers.js';
export type { PipeLike, ReadPipeProtocol } from './pipes.js';
export * from './unix-events.js';
export {
  AbstractEventLoop,
  AbstractEventLoopPolicy,
  DefaultEventLoopPolicy,
  SelectorEventLoop,
  getEventLoop,
  getEventLoopPolicy,
  getRunningLoop,
  getRunningLoopOrNull,
  newEventLoop,
  setEventLoop,
  setEventLoopPolicy,
} from './events.js';
export type { EventLoop } from './events.js';
export { KeyboardInterrupt, Runner, run } from './runners.js';
export type { Main, RunnerOptions } from './runners.js';

/** Creates a Task on the running loop (asyncio's `create_task`). */
export { createTask } from './create-task.js';
export {
  BaseProtocol,
  BufferedProtocol,
  DatagramProtocol,
  Protocol,
  SubprocessProtocol,
  isBufferedProtocol,
  protocolBuffer,
} from './protocols.js';
export type { Address, ProtocolFactory } from './protocols.js';
export {
  DEFAULT_HIGH_WATER,
  FlowControlTransport,
  checkBytes,
  setWriteBufferLimits,
  writelinesItems,
} from './transports.js';
export type {
  BaseTransport,
  DatagramTransport,
  ExtraInfo,
  ReadTransport,
  SubprocessTransport,
  Transport,
  WriteTransport,
} from './transports.js';
export * from './executors.js';
export * from './dns.js';
export type { BaseSocketTransportOptions, TransportServer } from './base-socket-transport.js';
export * from './socket-transport.js';
export * from './fd-transport.js';
export * from './socket.js';
export * from './sock-methods.js';
export * from './sendfile.js';
export * as native from './native.js';
export { checkOptions } from './options.js';
