/**
 * Debian's nginx as a reverse proxy in front of app instances: one process (`daemon off; master_process off`)
 * run as the current user, with its config, pid file, logs and temp files in a temporary directory. Stopped and
 * removed after the test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cleanup } from './measure.js';
import { within } from './measure.js';
import { tryConnect } from './raw-client.js';

/** Where nginx is, or `null` (Debian installs it in /usr/sbin, which a non-root PATH may lack). */
export function findNginx(): string | null {
  for (const cmd of ['nginx', '/usr/sbin/nginx']) {
    if (spawnSync(cmd, ['-v']).status === 0) return cmd;
  }
  return null;
}

/** A port free at the time of the call (nginx takes it just after). */
async function freePort(): Promise<number> {
  const srv = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A running nginx. */
export interface Nginx {
  /** The port it serves on (127.0.0.1). */
  readonly port: number;
  /** Its error log so far. */
  errorLog(): string;
}

/**
 * Starts nginx proxying 127.0.0.1:`port` to the upstream `ports`, with keep-alive connections to them, and each
 * request that fails on one (refused, reset, closed before a response: `proxy_next_upstream error timeout`)
 * tried on the next. `max_fails=0`: an instance being replaced is never marked down, so the request is always
 * tried on each in turn.
 *
 * @param nginx - the command ({@link findNginx}).
 * @param ports - the upstream ports.
 */
export async function startNginx(t: Cleanup, nginx: string, ports: readonly number[]): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-nginx-'));
  const port = await freePort();
  const servers = ports.map((p) => `    server 127.0.0.1:${p} max_fails=0;`).join('\n');
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream app {
${servers}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 2s;
      proxy_read_timeout 10s;
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries ${ports.length + 1};
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn(nginx, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const errorLog = (): string => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await within(exited, 5, 'nginx stopping').catch(() => child.kill('SIGKILL'));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  // Ready once it accepts connections.
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break;
    if ((await tryConnect(port)) === 'connected') return { port, errorLog };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nginx did not start (exit ${child.exitCode}): ${stderr} ${errorLog()}`);
}
