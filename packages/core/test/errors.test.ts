import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoopClosedError, RuntimeError, IncompleteReadError, ValueError } from '@loopwork/core';
test('errors', () => {
  const e = new LoopClosedError();
  assert.equal(e.message, 'Event loop is closed');
  assert.equal(e.code, 'ERR_LOOPWORK_LOOP_CLOSED');
  assert.ok(e instanceof RuntimeError);
  assert.ok(RuntimeError.isInstance(e));
  assert.equal(e.name, 'RuntimeError');
  const i = new IncompleteReadError(Buffer.from('ab'), 5);
  assert.equal(i.message, '2 bytes read on a total of 5 expected bytes');
  assert.ok(new ValueError('x') instanceof RangeError);
  const c = new ValueError('x', { cause: 1 });
  assert.equal(c.cause, 1);
});
