import assert from 'node:assert/strict';
import { test } from 'node:test';
import { interleaveAddrinfos } from '@loopwork/server';

const a = (family: number, n: number): [number, string] => [family, `${family}-${n}`];

test('interleaveAddrinfos alternates families, as asyncio does', () => {
  const infos = [a(10, 1), a(10, 2), a(10, 3), a(2, 1), a(2, 2)];
  assert.deepEqual(
    interleaveAddrinfos(infos).map((i) => i[1]),
    ['10-1', '2-1', '10-2', '2-2', '10-3'],
  );
  assert.deepEqual(
    interleaveAddrinfos(infos, 2).map((i) => i[1]),
    ['10-1', '10-2', '2-1', '10-3', '2-2'],
  );
  assert.deepEqual(
    interleaveAddrinfos(infos, 3).map((i) => i[1]),
    ['10-1', '10-2', '10-3', '2-1', '2-2'],
  );
  assert.deepEqual(
    interleaveAddrinfos([a(2, 1), a(10, 1), a(2, 2)]).map((i) => i[1]),
    ['2-1', '10-1', '2-2'],
  );
  assert.deepEqual(interleaveAddrinfos([]), []);
  // The input is not changed.
  assert.equal(infos.length, 5);
});
