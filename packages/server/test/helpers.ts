/**
 * Shared helpers of the server tests: those of the core tests (a loop runner that records the exception handler's
 * calls, a protocol that records what the transport does to it), and clients, commands and file watching.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { BufferedProtocol } from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, Future, Transport } from '@loopwork/server';

export { Recorder, STREAM_GRAMMAR, collectedAfterGc, runLoop, settle } from '../../core/test/helpers.js';

/** A BufferedProtocol that hands out small buffers, to see the copy loop at work. */
export class SmallBuffers extends BufferedProtocol {
  readonly events: string[] = [];
  readonly received: Buffer[] = [];
  readonly buf: Buffer;
  tp: Transport | null = null;
  readonly lost: Future<Error | null>;
  constructor(
    readonly loop: BaseEventLoop,
    size: number,
  ) {
    super();
    this.buf = Buffer.alloc(size);
    this.lost = loop.createFuture();
  }
  override connectionMade(t: BaseTransport): void {
    this.events.push('connectionMade');
    this.tp = t as Transport;
  }
  override getBuffer(sizehint: number): Uint8Array {
    this.events.push(`getBuffer(${sizehint})`);
    return this.buf;
  }
  override bufferUpdated(n: number): void {
    this.events.push('bufferUpdated');
    this.received.push(Buffer.from(this.buf.subarray(0, n)));
  }
  override eofReceived(): boolean {
    this.events.push('eofReceived');
    return false;
  }
  override connectionLost(exc: Error | null): void {
    this.events.push('connectionLost');
    this.lost.setResult(exc);
  }
}

/** The port of an `[host, port]` or `[host, port, flowinfo, scope]` address. */
export function portOf(addr: unknown): number {
  return (addr as [string, number])[1];
}

/** A plain Node client connected to `port` on `host`; destroyed when the test ends. */
export async function nodeClient(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const s = net.connect({ port, host, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

/**
 * A one-off `net.Server` on 127.0.0.1 (half-open allowed) and one connection to it: `client` is the connecting
 * end, `sock` the accepted one; close `srv` when done.
 */
export async function acceptedSocket(): Promise<{ srv: net.Server; client: net.Socket; sock: net.Socket }> {
  const srv = net.createServer({ allowHalfOpen: true });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const accepted = once(srv, 'connection');
  const client = await nodeClient((srv.address() as net.AddressInfo).port);
  const [sock] = (await accepted) as [net.Socket];
  return { srv, client, sock };
}

/** Reads everything a Node socket sends until it ends or closes. */
export function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    s.once('end', finish);
    s.once('close', finish);
  });
}

/** Runs a command, feeding `input`; resolves with its output and exit code (bounded by `timeoutMs`). */
export function runCommand(
  cmd: string,
  args: string[],
  options: { input?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** True when `cmd` is on PATH. */
export async function haveCommand(cmd: string): Promise<boolean> {
  try {
    const r = await runCommand('sh', ['-c', `command -v ${cmd}`], { timeoutMs: 5000 });
    return r.code === 0;
  } catch {
    return false;
  }
}

/**
 * Runs `act` while watching the directory `dir`, and resolves with the kinds of event (`'rename'` for made or
 * removed, `'change'` for written or chmodded) seen for each file, in order. Waits on a marker file made after
 * `act`, so every event of `act` has been delivered (inotify keeps the order). A file made with its final mode
 * sees `rename` only; one chmodded after it was made sees a `change` too.
 */
export async function fileEventsDuring(dir: string, act: () => Promise<void>): Promise<Record<string, string[]>> {
  const events: Record<string, string[]> = {};
  const marker = `marker-${process.pid}-${Date.now()}`;
  let markerSeen = (): void => undefined;
  const seen = new Promise<void>((resolve) => (markerSeen = resolve));
  const watcher = fs.watch(dir, (event, file) => {
    if (file === marker) markerSeen();
    else if (file !== null) (events[file] ??= []).push(event);
  });
  try {
    await act();
    fs.writeFileSync(path.join(dir, marker), '');
    await seen;
  } finally {
    watcher.close();
    fs.rmSync(path.join(dir, marker), { force: true });
  }
  return events;
}
