/**
 * STARTTLS, the reference's "TLS Upgrade" (`loop.start_tls`): a tiny SMTP-like line protocol that starts in
 * plain text and upgrades the live connection to TLS when the client asks for it.
 *
 * The server speaks enough SMTP for `openssl s_client -starttls smtp` and Python's `smtplib` to talk to it:
 *
 * ```
 * S: 220 loopwork ESMTP ready           C: EHLO me
 * S: 250-loopwork greets me             C: STARTTLS
 * S: 250-STARTTLS                       S: 220 2.0.0 Ready to start TLS
 * S: 250 HELP                           ... TLS handshake (loop.startTls, server side) ...
 * C: EHLO me      S: 250-… 250 HELP     C: ECHO hello   S: 250 hello      C: QUIT   S: 221 2.0.0 Bye
 * ```
 *
 * `ECHO` is refused before TLS ("530 Must issue a STARTTLS command first"). The server is a `Protocol` that calls
 * `loop.startTls()` itself; the client uses streams and `StreamWriter.startTls()`.
 *
 * Run:
 * - `node --conditions=loopwork-source --import tsx apps/examples/src/starttls.ts server --cert server.pem
 *   --key server.key [--host 127.0.0.1] [--port 0]` prints `listening on HOST:PORT`; SIGINT/SIGTERM stop it.
 * - `… starttls.ts client --port PORT --cafile ca.pem [--host 127.0.0.1] [--server-hostname localhost] [words…]`
 *   prints the conversation (`C:`/`S:` lines) and exits 0.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import {
  PROTOCOL_TLS_SERVER,
  Protocol,
  SSLContext,
  createDefaultContext,
  newEventLoop,
  openConnection,
} from '@loopwork/server';
import type { BaseEventLoop, BaseTransport, StreamReader, Transport } from '@loopwork/server';

const CRLF = '\r\n';

/**
 * The server side of one connection: reads CRLF-terminated commands and answers them; on STARTTLS it upgrades
 * the connection and goes on with the same protocol object over the TLS transport.
 */
export class StartTlsServerProtocol extends Protocol {
  declare transport?: Transport;
  /** @internal bytes of an incomplete line */
  buf = '';
  /** @internal true while the TLS handshake runs: lines that arrive meanwhile wait for it */
  upgrading = false;
  /** @internal */
  secure = false;

  constructor(
    readonly loop: BaseEventLoop,
    readonly sslcontext: SSLContext,
    readonly log: (line: string) => void = () => {},
  ) {
    super();
  }

  override connectionMade(transport: BaseTransport): void {
    this.transport = transport as Transport;
    this.log(`connection from ${JSON.stringify(transport.getExtraInfo('peername'))}`);
    this.send('220 loopwork ESMTP ready');
  }

  override dataReceived(data: Buffer): void {
    this.buf += data.toString('latin1');
    if (!this.upgrading) this.processLines();
  }

  override connectionLost(exc: Error | null): void {
    this.log(`connection closed${exc === null ? '' : `: ${exc.message}`}`);
  }

  send(line: string): void {
    this.transport?.write(Buffer.from(line + CRLF, 'latin1'));
  }

  processLines(): void {
    let i: number;
    while (!this.upgrading && (i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).replace(/\r$/, '');
      this.buf = this.buf.slice(i + 1);
      this.command(line);
    }
  }

  command(line: string): void {
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const arg = space < 0 ? '' : line.slice(space + 1);
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        this.send(`250-loopwork greets ${arg || 'you'}`);
        if (!this.secure) this.send('250-STARTTLS');
        this.send('250 HELP');
        return;
      case 'STARTTLS':
        if (this.secure) {
          this.send('503 5.5.1 TLS already active');
          return;
        }
        this.send('220 2.0.0 Ready to start TLS');
        // RFC 3207: nothing the client pipelined after STARTTLS may be used.
        this.buf = '';
        void this.upgrade();
        return;
      case 'ECHO':
        if (!this.secure) this.send('530 5.7.0 Must issue a STARTTLS command first');
        else this.send(`250 ${arg}`);
        return;
      case 'NOOP':
        this.send('250 2.0.0 OK');
        return;
      case 'QUIT':
        this.send('221 2.0.0 Bye');
        this.transport?.close();
        return;
      default:
        this.send('500 5.5.2 Command unrecognized');
    }
  }

  async upgrade(): Promise<void> {
    const plain = this.transport as Transport;
    this.upgrading = true;
    try {
      this.transport = await this.loop.startTls(plain, this, this.sslcontext, { serverSide: true });
    } catch (error) {
      this.log(`TLS handshake failed: ${(error as Error).message}`);
      return;
    }
    this.secure = true;
    this.upgrading = false;
    const cipher = this.transport.getExtraInfo('cipher');
    this.log(`TLS established: ${cipher?.[1]} ${cipher?.[0]}`);
    // Lines that came with the end of the handshake, before startTls returned.
    this.processLines();
  }
}

/** Reads one SMTP reply (all its `NNN-` lines and the final `NNN ` line); returns the lines. */
async function readReply(reader: StreamReader, print: (line: string) => void): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const line = (await reader.readline()).toString('latin1').replace(/\r?\n$/, '');
    if (line === '') throw new Error('connection closed by the server');
    print(`S: ${line}`);
    lines.push(line);
    if (line[3] !== '-') return lines;
  }
}

/** Options of {@link runClient}. */
export interface ClientOptions {
  host: string;
  port: number;
  cafile: string;
  serverHostname: string;
  words: string[];
  print?: (line: string) => void;
}

/**
 * Talks to the server as an SMTP client does: EHLO, STARTTLS, EHLO again over TLS, one ECHO per word, QUIT.
 *
 * @returns the TLS version and cipher negotiated.
 */
export async function runClient(options: ClientOptions): Promise<string> {
  const print = options.print ?? ((line: string) => console.log(line));
  const [reader, writer] = await openConnection(options.host, options.port);
  const say = async (line: string): Promise<string[]> => {
    print(`C: ${line}`);
    writer.write(Buffer.from(line + CRLF, 'latin1'));
    await writer.drain();
    return readReply(reader, print);
  };
  await readReply(reader, print);
  const ehlo = await say('EHLO loopwork-client');
  if (!ehlo.some((l) => l.slice(4).toUpperCase() === 'STARTTLS')) throw new Error('the server offers no STARTTLS');
  const ready = await say('STARTTLS');
  if (!ready[0]?.startsWith('220')) throw new Error(`STARTTLS refused: ${ready.join(' ')}`);
  await writer.startTls(createDefaultContext({ cafile: options.cafile }), {
    serverHostname: options.serverHostname,
  });
  const cipher = writer.getExtraInfo('cipher');
  const tlsInfo = `${cipher?.[1]} ${cipher?.[0]}`;
  print(`-- TLS established: ${tlsInfo}`);
  await say('EHLO loopwork-client');
  for (const word of options.words) await say(`ECHO ${word}`);
  await say('QUIT');
  writer.close();
  await writer.waitClosed();
  return tlsInfo;
}

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      cert: { type: 'string' },
      key: { type: 'string' },
      cafile: { type: 'string' },
      'server-hostname': { type: 'string', default: 'localhost' },
    },
  });
  const [mode, ...words] = positionals;
  const loop = newEventLoop();
  try {
    if (mode === 'server') {
      if (values.cert === undefined || values.key === undefined) throw new Error('server needs --cert and --key');
      const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
      ctx.loadCertChain(values.cert, values.key);
      return await loop.runUntilComplete(async () => {
        const server = await loop.createServer(
          () => new StartTlsServerProtocol(loop, ctx, (line) => console.log(line)),
          values.host,
          Number(values.port),
        );
        const name = server.sockets[0]?.getsockname();
        console.log(`listening on ${Array.isArray(name) ? `${String(name[0])}:${String(name[1])}` : String(name)}`);
        const stop = loop.createFuture<void>();
        for (const sig of ['SIGINT', 'SIGTERM'] as const) {
          loop.addSignalHandler(sig, () => {
            if (!stop.done()) stop.setResult(undefined);
          });
        }
        await stop;
        server.close();
        server.closeClients();
        await server.waitClosed();
        console.log('stopped');
        return 0;
      });
    }
    if (mode === 'client') {
      if (values.cafile === undefined) throw new Error('client needs --cafile');
      const cafile = values.cafile;
      await loop.runUntilComplete(() =>
        runClient({
          host: values.host,
          port: Number(values.port),
          cafile,
          serverHostname: values['server-hostname'],
          words: words.length > 0 ? words : ['hello'],
        }),
      );
      return 0;
    }
    console.error('usage: starttls.ts server --cert FILE --key FILE | client --port N --cafile FILE [words…]');
    return 2;
  } finally {
    loop.close();
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  process.exitCode = await main(process.argv.slice(2));
}
