import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Protocol, native } from '@loopwork/server';
import type { BaseTransport, Transport } from '@loopwork/server';
import { Recorder, haveCommand, portOf, runCommand, runLoop, settle } from './helpers.js';

/** Echoes, and answers the peer's EOF with "bye" before closing (a half-close both ways). */
class Echo extends Protocol {
  t: Transport | null = null;
  override connectionMade(t: BaseTransport): void {
    this.t = t as Transport;
  }
  override dataReceived(data: Buffer): void {
    this.t!.write(data);
  }
  override eofReceived(): boolean {
    this.t!.write(Buffer.from('bye\n'));
    this.t!.close();
    return true;
  }
}

const PY_CLIENT = `
import asyncio, sys
async def main(kind, where):
    if kind == 'tcp':
        r, w = await asyncio.open_connection('127.0.0.1', int(where))
    else:
        r, w = await asyncio.open_unix_connection(where)
    for line in (b'alpha\\n', b'beta\\n'):
        w.write(line)
        await w.drain()
        sys.stdout.write((await r.readline()).decode())
    w.write_eof()
    sys.stdout.write((await r.read()).decode())
    w.close()
    await w.wait_closed()
asyncio.run(main(sys.argv[1], sys.argv[2]))
`;

const PY_SERVER = `
import asyncio, sys
async def handle(r, w):
    data = await r.read()
    w.write(data.upper())
    await w.drain()
    w.close()
async def main(kind, where):
    if kind == 'tcp':
        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        print(server.sockets[0].getsockname()[1], flush=True)
    else:
        # '@name' stands for the abstract name '\\0name' (a command line cannot carry a NUL byte).
        if where.startswith('@'):
            where = '\\0' + where[1:]
        server = await asyncio.start_unix_server(handle, where)
        print('ready', flush=True)
    async with server:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ''))
`;

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loopwork-interop-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('socat and nc talk to a loopwork TCP server', async (t) => {
  const socat = await haveCommand('socat');
  const nc = await haveCommand('nc');
  if (!socat && !nc) return t.skip('neither socat nor nc is installed');
  await runLoop(async (loop) => {
    const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    const port = portOf(server.sockets[0]!.getsockname());
    if (socat) {
      const r = await runCommand('socat', ['-t', '5', '-', `TCP:127.0.0.1:${port}`], { input: 'from socat\n' });
      assert.equal(r.stdout, 'from socat\nbye\n', r.stderr);
    }
    if (nc) {
      const r = await runCommand('nc', ['-N', '127.0.0.1', String(port)], { input: 'from nc\n' });
      assert.equal(r.stdout, 'from nc\nbye\n', r.stderr);
    }
    server.close();
    await server.waitClosed();
  });
});

test('socat talks to a loopwork Unix server', async (t) => {
  if (!(await haveCommand('socat'))) return t.skip('socat is not installed');
  const p = path.join(tmpDir(t), 'socat.sock');
  await runLoop(async (loop) => {
    const server = await loop.createUnixServer(() => new Echo(), p);
    const r = await runCommand('socat', ['-t', '5', '-', `UNIX-CONNECT:${p}`], { input: 'unix socat\n' });
    assert.equal(r.stdout, 'unix socat\nbye\n', r.stderr);
    server.close();
    await server.waitClosed();
  });
});

test('a Python asyncio client talks to a loopwork server (TCP and Unix)', async (t) => {
  if (!(await haveCommand('python3'))) return t.skip('python3 is not installed');
  const p = path.join(tmpDir(t), 'py.sock');
  await runLoop(async (loop) => {
    const tcp = await loop.createServer(() => new Echo(), '127.0.0.1', 0);
    const unix = await loop.createUnixServer(() => new Echo(), p);
    const port = portOf(tcp.sockets[0]!.getsockname());
    for (const [kind, where] of [
      ['tcp', String(port)],
      ['unix', p],
    ]) {
      const r = await runCommand('python3', ['-c', PY_CLIENT, kind!, where!]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'alpha\nbeta\nbye\n');
    }
    tcp.close();
    unix.close();
    await tcp.waitClosed();
    await unix.waitClosed();
  });
});

test('a loopwork client talks to a Python asyncio server (TCP, Unix path, abstract name)', async (t) => {
  if (!(await haveCommand('python3'))) return t.skip('python3 is not installed');
  const dir = tmpDir(t);
  const targets: [string, string][] = [
    ['tcp', ''],
    ['unix', path.join(dir, 'pyserver.sock')],
  ];
  // Abstract names need the native addon: Node's net pads them, Python does not.
  if (process.platform === 'linux' && native.nativeAvailable())
    targets.push(['unix', `@loopwork-py-${process.pid}-${Date.now()}`]);
  for (const [kind, where] of targets) {
    const py = spawn('python3', ['-c', PY_SERVER, kind, where], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const [first] = (await once(py.stdout, 'data')) as [Buffer];
      const line = first.toString().trim();
      await runLoop(async (loop) => {
        const proto = new Recorder(loop);
        const [transport] =
          kind === 'tcp'
            ? await loop.createConnection(() => proto, '127.0.0.1', Number(line))
            : await loop.createUnixConnection(() => proto, where.replace(/^@/, '\0'));
        transport.write(Buffer.from('hello python'));
        transport.writeEof();
        assert.equal(await settle(proto.lost), null);
        assert.equal(proto.text(), 'HELLO PYTHON');
        assert.match(proto.grammar(), /^connectionMade,dataReceived(,dataReceived)*,eofReceived,connectionLost$/);
      });
    } finally {
      py.stdin.end();
      py.kill();
      await once(py, 'close');
    }
  }
});
