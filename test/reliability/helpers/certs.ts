/**
 * Certificates for the TLS cases, made with the `openssl` CLI into a temporary directory once per process: a CA,
 * a server certificate for localhost/127.0.0.1 signed by it, and one for another name (`wrong.test`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key: paths and PEM text. */
export interface CertPair {
  certfile: string;
  keyfile: string;
  cert: string;
  key: string;
}

/** What the TLS cases use. */
export interface Certs {
  ca: CertPair;
  /** localhost, 127.0.0.1. */
  server: CertPair;
  /** wrong.test only: a host name check against 127.0.0.1 or localhost fails. */
  wrongHost: CertPair;
}

let cached: Certs | null | undefined;

/** True when the `openssl` CLI runs. */
export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function run(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pair(dir: string, name: string): CertPair {
  const certfile = join(dir, `${name}.pem`);
  const keyfile = join(dir, `${name}.key`);
  return { certfile, keyfile, cert: readFileSync(certfile, 'utf8'), key: readFileSync(keyfile, 'utf8') };
}

function leaf(dir: string, name: string, cn: string, san: string): CertPair {
  run(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  run(dir, ['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  run(dir, [
    ...['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`],
  ]);
  return pair(dir, name);
}

/** The certificates, or `null` when openssl is missing (the caller skips, saying so). */
export function certs(): Certs | null {
  if (cached !== undefined) return cached;
  if (!haveOpenssl()) return (cached = null);
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-reliability-certs-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  run(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ca.key']);
  run(dir, [
    ...['req', '-x509', '-new', '-key', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=reliability CA'],
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  ]);
  cached = {
    ca: pair(dir, 'ca'),
    server: leaf(dir, 'server', 'localhost', 'DNS:localhost,IP:127.0.0.1'),
    wrongHost: leaf(dir, 'wrong', 'wrong.test', 'DNS:wrong.test'),
  };
  return cached;
}
