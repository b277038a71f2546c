/**
 * Trailing options objects for variadic functions (`callSoon(cb, ...args, { context })`,
 * `gather(...aws, { returnExceptions })`).
 *
 * A trailing argument is taken as the options object when it is a plain object (its prototype is
 * `Object.prototype` or `null`) whose own keys are all known option names. To pass such an object as the last
 * positional argument, add an explicit options object after it (`{}`).
 *
 * @internal
 * @module
 */
import { InvalidArgTypeError } from './errors.js';

/** True when `value` is a plain object whose keys are all in `known`. */
export function isOptionsObject(value: unknown, known: ReadonlySet<string>): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in value) if (!known.has(key)) return false;
  return true;
}

/** Splits `args` into the positional arguments and the trailing options object (if any). */
export function splitOptions<O extends object>(args: unknown[], known: ReadonlySet<string>): [unknown[], Partial<O>] {
  const last = args[args.length - 1];
  if (args.length > 0 && isOptionsObject(last, known)) return [args.slice(0, -1), last as Partial<O>];
  return [args, {}];
}

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
