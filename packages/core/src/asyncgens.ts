/**
 * The analogue of Python's `sys.set_asyncgen_hooks(firstiter=...)`: while a loop runs, every async generator is
 * registered with it on its first `next()`, so that `loop.shutdownAsyncgens()` can close the unfinished ones.
 *
 * JavaScript has no such hook, so the shared `%AsyncGeneratorPrototype%.next` is wrapped once; the wrapper costs
 * one WeakSet lookup per `next()` call while a hook is set, and nothing else.
 *
 * @internal
 * @module
 */

type AnyAsyncGen = AsyncGenerator<unknown, unknown, unknown>;
type Firstiter = (agen: AnyAsyncGen) => void;

const AsyncGeneratorPrototype = Object.getPrototypeOf(async function* () {}.prototype) as {
  next: (this: AnyAsyncGen, ...args: unknown[]) => Promise<IteratorResult<unknown>>;
};

let firstiter: Firstiter | null = null;
let installed = false;
const seen = new WeakSet<object>();

function install(): void {
  if (installed) return;
  installed = true;
  const originalNext = AsyncGeneratorPrototype.next;
  Object.defineProperty(AsyncGeneratorPrototype, 'next', {
    configurable: true,
    writable: true,
    value: function next(this: AnyAsyncGen, ...args: unknown[]) {
      const hook = firstiter;
      if (hook !== null && !seen.has(this)) {
        seen.add(this);
        hook(this);
      }
      return originalNext.apply(this, args);
    },
  });
}

/** Sets the hook called on an async generator's first iteration; returns the previous one. */
export function setAsyncgenFirstiter(hook: Firstiter | null): Firstiter | null {
  if (hook !== null) install();
  const previous = firstiter;
  firstiter = hook;
  return previous;
}
