import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import * as core from '@loopwork/core';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  AI_CANONNAME,
  AI_NUMERICHOST,
  AI_NUMERICSERV,
  AI_PASSIVE,
  AI_V4MAPPED,
  GaiError,
  IPPROTO_TCP,
  IPPROTO_UDP,
  NI_DGRAM,
  NI_NAMEREQD,
  NI_NUMERICHOST,
  NI_NUMERICSERV,
  SOCK_DGRAM,
  SOCK_RAW,
  SOCK_STREAM,
  getaddrinfo,
  getnameinfo,
  newEventLoop,
} from '@loopwork/core';
import type { AddrInfo, BaseEventLoop, GetaddrinfoOptions, InetAddress } from '@loopwork/core';

const run = promisify(execFile);

/** Python's answers on this machine, as JSON: a list of tuples, or `['ERR', errno]`. */
async function python(script: string, input: unknown): Promise<unknown[]> {
  const { stdout } = await run('python3', ['-c', script, JSON.stringify(input)], { timeout: 30_000 });
  return JSON.parse(stdout) as unknown[];
}

const PY_GETADDRINFO = `
import json, socket, sys
out = []
for host, port, kw in json.loads(sys.argv[1]):
    try:
        out.append([[int(f), int(t), p, c, list(sa)] for f, t, p, c, sa in socket.getaddrinfo(host, port, **kw)])
    except socket.gaierror as e:
        out.append(['ERR', e.errno])
print(json.dumps(out))
`;

const PY_GETNAMEINFO = `
import json, socket, sys
out = []
for sa, flags in json.loads(sys.argv[1]):
    try:
        out.append(list(socket.getnameinfo(tuple(sa), flags)))
    except socket.gaierror as e:
        out.append(['ERR', e.errno])
print(json.dumps(out))
`;

async function ours(host: string | null, port: number | string | null, options: GetaddrinfoOptions): Promise<unknown> {
  try {
    return await getaddrinfo(host, port, options);
  } catch (e) {
    if (GaiError.isInstance(e)) return ['ERR', (e as InstanceType<typeof GaiError>).errno];
    throw e;
  }
}

function loopFor(t: TestContext): BaseEventLoop {
  const loop = newEventLoop();
  t.after(() => loop.close());
  return loop;
}

test("the socket constants have Linux values (as Python's socket module)", async () => {
  const names = [
    'AF_UNSPEC',
    'AF_INET',
    'AF_INET6',
    'AF_UNIX',
    'SOCK_STREAM',
    'SOCK_DGRAM',
    'SOCK_RAW',
    'IPPROTO_TCP',
    'IPPROTO_UDP',
    'AI_PASSIVE',
    'AI_CANONNAME',
    'AI_NUMERICHOST',
    'AI_NUMERICSERV',
    'AI_ADDRCONFIG',
    'AI_V4MAPPED',
    'AI_ALL',
    'NI_NUMERICHOST',
    'NI_NUMERICSERV',
    'NI_NAMEREQD',
    'NI_DGRAM',
    'EAI_NONAME',
    'EAI_SERVICE',
    'EAI_FAMILY',
    'EAI_SOCKTYPE',
    'EAI_BADFLAGS',
    'EAI_ADDRFAMILY',
    'EAI_AGAIN',
    'EAI_FAIL',
  ];
  const [values] = await python(
    'import json, socket, sys\nprint(json.dumps([[int(getattr(socket, n)) for n in json.loads(sys.argv[1])]]))',
    names,
  );
  const exported = core as unknown as Record<string, number>;
  assert.deepEqual(
    names.map((n) => exported[n]),
    values,
  );
});

test('getaddrinfo gives the 5-tuples Python gives, for the same inputs', async () => {
  const cases: [string | null, number | string | null, GetaddrinfoOptions][] = [
    ['localhost', 80, {}],
    ['localhost', 80, { family: AF_INET }],
    ['localhost', 'http', {}],
    ['localhost', null, { type: SOCK_STREAM }],
    ['127.0.0.1', 80, {}],
    ['127.0.0.1', 8080, { type: SOCK_STREAM }],
    ['127.0.0.1', 53, { type: SOCK_DGRAM }],
    ['127.0.0.1', 'domain', {}],
    ['127.0.0.1', '443', { proto: IPPROTO_UDP }],
    ['127.0.0.1', null, { type: SOCK_RAW }],
    ['127.0.0.1', 80, { type: SOCK_RAW }],
    ['127.1', 0, {}],
    ['::1', 80, {}],
    ['0:0:0:0:0:0:0:1', 80, { type: SOCK_STREAM, proto: IPPROTO_TCP }],
    ['fe80::1%1', 80, { type: SOCK_STREAM }],
    ['::ffff:127.0.0.1', 80, {}],
    ['::ffff:127.0.0.1', 80, { family: AF_INET }],
    ['::ffff:7f00:1', 80, { family: AF_INET, type: SOCK_DGRAM }],
    ['::ffff:127.0.0.1%1', 80, { family: AF_INET }],
    ['127.0.0.1', 80, { family: AF_INET6 }],
    ['127.0.0.1', 80, { family: AF_INET6, flags: AI_V4MAPPED }],
    ['::1', 80, { family: AF_INET }],
    [null, 80, {}],
    [null, 0, { flags: AI_PASSIVE, type: SOCK_STREAM }],
    [null, 80, { family: AF_INET6, flags: AI_PASSIVE }],
    [null, null, {}],
    ['localhost', 80, { flags: AI_NUMERICHOST }],
    ['127.0.0.1', 80, { flags: AI_CANONNAME }],
    ['localhost', 80, { flags: AI_CANONNAME, type: SOCK_STREAM }],
    ['localhost', 'http', { flags: AI_NUMERICSERV }],
    ['localhost', 'no-such-service', {}],
    ['127.0.0.1', 'http', { type: SOCK_DGRAM }],
    ['127.0.0.1', 80, { type: SOCK_STREAM, proto: IPPROTO_UDP }],
    ['127.0.0.1', 80, { family: 1 }],
    ['127.0.0.1', 80, { flags: 0xffff }],
    ['', 80, {}],
    ['no-such-host.invalid', 80, {}],
    [null, '', {}],
    ['localhost', ' 80', { type: SOCK_STREAM }],
    ['localhost', '+80', { type: SOCK_STREAM }],
    ['localhost', '-1', { type: SOCK_STREAM }],
    ['localhost', '80 ', { type: SOCK_STREAM }],
    ['localhost', 80, { type: 5 }],
    ['localhost', 80, { proto: 132 }],
    ['localhost', 80, { flags: 0x100 | 0x200 }],
    ['localhost', 80, { flags: 0x800 }],
  ];
  const expected = await python(PY_GETADDRINFO, cases);
  for (const [i, [host, port, options]] of cases.entries()) {
    assert.deepEqual(
      await ours(host, port, options),
      expected[i],
      `getaddrinfo(${host}, ${port}, ${JSON.stringify(options)})`,
    );
  }
});

test('getaddrinfo: the shape of the tuples; numeric hosts need no resolver', async () => {
  const v4 = await getaddrinfo('127.0.0.1', 80);
  assert.deepEqual(v4, [
    [AF_INET, SOCK_STREAM, IPPROTO_TCP, '', ['127.0.0.1', 80]],
    [AF_INET, SOCK_DGRAM, IPPROTO_UDP, '', ['127.0.0.1', 80]],
    [AF_INET, SOCK_RAW, 0, '', ['127.0.0.1', 80]],
  ] satisfies AddrInfo[]);
  const v6 = await getaddrinfo('::1', 'http', { type: SOCK_STREAM });
  assert.deepEqual(v6, [[AF_INET6, SOCK_STREAM, IPPROTO_TCP, '', ['::1', 80, 0, 0]]]);
  const local = await getaddrinfo('localhost', 0, { family: AF_INET, type: SOCK_STREAM });
  assert.ok(local.length >= 1);
  for (const [family, type, proto, canon, sockaddr] of local) {
    assert.deepEqual([family, type, proto, canon], [AF_INET, SOCK_STREAM, IPPROTO_TCP, '']);
    assert.equal(sockaddr.length, 2);
    assert.match(sockaddr[0], /^127\./);
  }
});

test('getaddrinfo with AI_NUMERICHOST refuses a name with gaierror EAI_NONAME', async () => {
  await assert.rejects(getaddrinfo('localhost', 80, { flags: AI_NUMERICHOST }), (e: unknown) => {
    assert.ok(GaiError.isInstance(e));
    const err = e as InstanceType<typeof GaiError>;
    assert.equal(err.name, 'gaierror');
    assert.equal(err.code, 'EAI_NONAME');
    assert.equal(err.errno, -2);
    assert.equal(err.message, '[Errno -2] Name or service not known');
    return true;
  });
  await assert.rejects(getaddrinfo('127.0.0.1', 'http', { flags: AI_NUMERICSERV }), { code: 'EAI_NONAME' });
  await assert.rejects(getaddrinfo('127.0.0.1', 'no-such-service'), { code: 'EAI_SERVICE', errno: -8 });
  await assert.rejects(getaddrinfo(42 as never, 80), TypeError);
  await assert.rejects(getaddrinfo('localhost', 1.5), TypeError);
  await assert.rejects(getaddrinfo('localhost', 80, { socktype: 1 } as never), {
    name: 'TypeError',
    message: "getaddrinfo() got an unexpected keyword argument 'socktype'",
  });
});

test('getnameinfo gives what Python gives, for the same inputs', async () => {
  const cases: [InetAddress, number][] = [
    [['127.0.0.1', 80], 0],
    [['127.0.0.1', 80], NI_NUMERICHOST],
    [['127.0.0.1', 80], NI_NUMERICSERV],
    [['127.0.0.1', 53], NI_DGRAM],
    [['127.0.0.1', 80], NI_DGRAM],
    [['127.0.0.1', 12345], 0],
    [['::1', 80, 0, 0], NI_NUMERICHOST | NI_NUMERICSERV],
    [['fe80::1', 80, 0, 1], NI_NUMERICHOST],
    [['192.0.2.1', 443], NI_NUMERICHOST],
    [['192.0.2.1', 80], 0],
    [['192.0.2.1', 80], NI_NAMEREQD],
    [['localhost', 80], 0],
    [['::1', 80, 0, -1], NI_NUMERICHOST | NI_NUMERICSERV],
  ];
  const expected = await python(PY_GETNAMEINFO, cases);
  for (const [i, [sockaddr, flags]] of cases.entries()) {
    let got: unknown;
    try {
      got = await getnameinfo(sockaddr, flags);
    } catch (e) {
      got = ['ERR', (e as { errno?: number }).errno];
    }
    assert.deepEqual(got, expected[i], `getnameinfo(${JSON.stringify(sockaddr)}, ${flags})`);
  }
});

test('getnameinfo of 127.0.0.1; NI_NAMEREQD; malformed addresses', async () => {
  const [host, service] = await getnameinfo(['127.0.0.1', 80]);
  assert.equal(service, 'http');
  assert.ok(host === 'localhost' || host.length > 0);
  assert.deepEqual(await getnameinfo(['127.0.0.1', 8], NI_NUMERICHOST | NI_NUMERICSERV), ['127.0.0.1', '8']);
  assert.deepEqual(await getnameinfo(['192.0.2.1', 80], NI_NUMERICHOST), ['192.0.2.1', 'http']);
  await assert.rejects(getnameinfo(['localhost', 80]), { code: 'EAI_NONAME' });
  await assert.rejects(getnameinfo(['::1', 80, 1 << 21, 0]), {
    name: 'ValueError',
    message: 'getnameinfo(): flowinfo must be 0-1048575.',
  });
  await assert.rejects(getnameinfo(['127.0.0.1', 80, 0, 0]), (e: Error) => {
    // Python raises a bare OSError here (socketmodule.c's PyErr_SetString(PyExc_OSError, …)).
    assert.ok(core.OSError.isInstance(e), `${e.name}: ${e.message}`);
    assert.equal(e.message, 'IPv4 sockaddr must be 2 tuple');
    return true;
  });
  await assert.rejects(getnameinfo(['127.0.0.1'] as never), {
    name: 'TypeError',
    message: 'getnameinfo(): illegal sockaddr argument',
  });
  await assert.rejects(getnameinfo('127.0.0.1' as never), TypeError);
  await assert.rejects(getnameinfo(['127.0.0.1', '80'] as never), TypeError);
});

test('loop.getaddrinfo and loop.getnameinfo; a closed loop refuses', async (t) => {
  const loop = loopFor(t);
  const [infos, names] = await loop.runUntilComplete(async () =>
    Promise.all([
      loop.getaddrinfo('127.0.0.1', 8000, { type: SOCK_STREAM }),
      loop.getnameinfo(['127.0.0.1', 22], NI_NUMERICHOST),
    ]),
  );
  assert.deepEqual(infos, [[AF_INET, SOCK_STREAM, IPPROTO_TCP, '', ['127.0.0.1', 8000]]]);
  assert.deepEqual(names, ['127.0.0.1', 'ssh']);
  const closed = newEventLoop();
  closed.close();
  await assert.rejects(closed.getaddrinfo('127.0.0.1', 80), { message: 'Event loop is closed' });
  await assert.rejects(closed.getnameinfo(['127.0.0.1', 80]), { message: 'Event loop is closed' });
  assert.equal(AF_UNSPEC, 0);
});

test('loop.getaddrinfo logs its duration in debug mode', async (t) => {
  const lines: string[] = [];
  const loop = loopFor(t);
  loop.setDebug(true);
  loop.logger = { debug: (m: string) => lines.push(m), info: (m: string) => lines.push(m) } as never;
  await loop.runUntilComplete(async () => loop.getaddrinfo('127.0.0.1', 80, { type: SOCK_STREAM }));
  assert.equal(lines[0], 'Get address info 127.0.0.1:80, type=1');
  assert.match(lines[1] ?? '', /^Getting address info 127\.0\.0\.1:80, type=1 took \d+\.\d{3}ms: \[/);
});
