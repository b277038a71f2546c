// Real certificates for the TLS tests, made with the `openssl` CLI into a temporary directory: a CA, a server
// certificate for localhost (SAN localhost, 127.0.0.1, ::1), a second server certificate for SNI
// (other.test), a client certificate, and an unknown CA with a server and a client certificate of its own.
// P-256 keys keep generation around 100 ms; every test process makes its own set once.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROTOCOL_TLS_SERVER, SSLContext, createDefaultContext } from '@loopwork/tls';

/** One certificate with its key: the file paths and the PEM text. */
export interface CertPair {
  certfile: string;
  keyfile: string;
  cert: string;
  key: string;
}

/** Everything the TLS tests use. */
export interface TestCerts {
  dir: string;
  /** The test CA; `ca.certfile` is what clients and servers trust. */
  ca: CertPair;
  /** localhost, 127.0.0.1, ::1, signed by `ca`. */
  server: CertPair;
  /** other.test, signed by `ca` (the second SNI certificate). */
  server2: CertPair;
  /** CN=client with clientAuth, signed by `ca`. */
  client: CertPair;
  /** A CA nobody trusts. */
  otherCa: CertPair;
  /** localhost, signed by `otherCa`. */
  untrustedServer: CertPair;
  /** CN=intruder, signed by `otherCa`. */
  untrustedClient: CertPair;
  /** `server.key` encrypted with the passphrase `'secret'` (PKCS#8, AES-256). */
  encryptedServerKeyfile: string;
  /** A new server context with the `server` certificate. */
  serverContext(): SSLContext;
  /** A new client context that trusts `ca` (and checks host names). */
  clientContext(): SSLContext;
  /** Removes the directory. */
  dispose(): void;
}

let cached: TestCerts | undefined;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, name: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
}

function pair(dir: string, name: string): CertPair {
  const certfile = join(dir, `${name}.pem`);
  const keyfile = join(dir, `${name}.key`);
  return { certfile, keyfile, cert: readFileSync(certfile, 'utf8'), key: readFileSync(keyfile, 'utf8') };
}

function makeCa(dir: string, name: string, cn: string): CertPair {
  newKey(dir, name);
  openssl(
    [
      ...['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '3', '-subj', `/CN=${cn}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ],
    dir,
  );
  return pair(dir, name);
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, ext: string): CertPair {
  newKey(dir, name);
  openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    [
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial'],
      ...['-out', `${name}.pem`, '-days', '3', '-extfile', `${name}.ext`],
    ],
    dir,
  );
  return pair(dir, name);
}

/** Makes (once per process) the certificates of the TLS tests. */
export function makeTestCerts(): TestCerts {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'loopwork-tls-'));
  const serverExt = 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n';
  const ca = makeCa(dir, 'ca', 'loopwork test CA');
  const server = makeLeaf(dir, 'server', 'ca', 'localhost', serverExt);
  const server2 = makeLeaf(dir, 'server2', 'ca', 'other.test', 'subjectAltName=DNS:other.test\n');
  const client = makeLeaf(dir, 'client', 'ca', 'client', 'extendedKeyUsage=clientAuth\n');
  const otherCa = makeCa(dir, 'other-ca', 'nobody trusts me');
  const untrustedServer = makeLeaf(dir, 'untrusted-server', 'other-ca', 'localhost', serverExt);
  const untrustedClient = makeLeaf(dir, 'untrusted-client', 'other-ca', 'intruder', 'extendedKeyUsage=clientAuth\n');
  const encryptedServerKeyfile = join(dir, 'server-encrypted.key');
  openssl(['pkey', '-in', 'server.key', '-aes256', '-passout', 'pass:secret', '-out', 'server-encrypted.key'], dir);
  const certs: TestCerts = {
    dir,
    ca,
    server,
    server2,
    client,
    otherCa,
    untrustedServer,
    untrustedClient,
    encryptedServerKeyfile,
    serverContext: () => {
      const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
      ctx.loadCertChain(server.certfile, server.keyfile);
      return ctx;
    },
    clientContext: () => createDefaultContext({ cafile: ca.certfile }),
    dispose() {
      rmSync(dir, { recursive: true, force: true });
      cached = undefined;
    },
  };
  cached = certs;
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return certs;
}
