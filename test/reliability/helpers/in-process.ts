/**
 * The reliability app in the test process, with a logger that records its lines: for the cases that need no
 * process of their own (fuzzing, the hostile corpus), where a crash would take the test runner down with it.
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type { TestContext } from 'node:test';
import type { App } from '@loopwork/service';
import { requestIdMixin } from '@loopwork/service';
import { buildApp } from '../fixtures/app.js';
import type { Counters, FixtureConfig } from '../fixtures/app.js';
import type { LogLine } from './child.js';

// pino is the service's dependency, not the root's: load the very copy the service logs with.
const pino = createRequire(new URL('../../../packages/service/package.json', import.meta.url))('pino') as (
  options: object,
  stream: Writable,
) => App['log'];

/** The app serving in this process. */
export interface LocalServer {
  readonly app: App;
  readonly counters: Counters;
  readonly port: number;
  readonly tlsPort: number | undefined;
  readonly respPort: number | undefined;
  readonly linesPort: number | undefined;
  readonly framesPort: number | undefined;
  readonly rawPort: number | undefined;
  /** Every log line so far. */
  readonly lines: LogLine[];
  /** Lines at error level or above. */
  errors(): LogLine[];
}

/** Serves the app on loopback, port 0; closed after the test. */
export async function serveLocal(t: TestContext, config: FixtureConfig = {}): Promise<LocalServer> {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
      cb();
    },
  });
  const logger = pino({ level: 'warn', mixin: requestIdMixin }, stream);
  const { app, counters, listen } = buildApp(config, { logger, accessLog: false });
  await app.listen(listen);
  t.after(() => app.close({ deadline: 2 }));
  const addresses = app.addresses();
  const tcp = addresses.filter((a) => a.kind === 'tcp');
  return {
    app,
    counters,
    port: addresses.find((a) => a.kind === 'http')!.port!,
    tlsPort: addresses.find((a) => a.kind === 'tls')?.port,
    respPort: tcp[0]?.port,
    linesPort: tcp[1]?.port,
    framesPort: tcp[2]?.port,
    rawPort: tcp[3]?.port,
    lines,
    errors: () => lines.filter((l) => l.level >= 50),
  };
}
