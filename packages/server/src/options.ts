/**
 * Checking the options objects of the loop methods (Python refuses an unknown keyword argument).
 *
 * @module
 */
import { InvalidArgTypeError } from '@loopwork/core';

/**
 * @internal Refuses an options object with a key the method does not know, as Python refuses an unexpected
 * keyword argument: `createServer() got an unexpected keyword argument 'reuse_port'`.
 *
 * @throws TypeError for a key not in `known`, or when `options` is not an object.
 */
export function checkOptions(options: object, known: readonly string[], method: string): void {
  if (typeof options !== 'object' || options === null) {
    throw new InvalidArgTypeError(`${method}() options must be an object, got ${String(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new InvalidArgTypeError(`${method}() got an unexpected keyword argument '${key}'`);
  }
}
