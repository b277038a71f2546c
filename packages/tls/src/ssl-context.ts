/**
 * `SSLContext`, the analogue of Python's `ssl.SSLContext`: the certificates, trust anchors, verification
 * rules and TLS versions that a TLS connection uses, mapped onto `tls.createSecureContext()` and the options of
 * `tls.connect()` / `new tls.TLSSocket()`.
 *
 * The Node objects are built once and cached until the context is changed, so that many connections share one
 * OpenSSL `SSL_CTX` as they share one `SSLContext` in Python.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { inspect } from 'node:util';
import { InvalidArgTypeError, ValueError, withOSErrors } from '@loopwork/core';

/** Either side: no verification, no host name check (Python's deprecated generic `PROTOCOL_TLS`). */
export const PROTOCOL_TLS = 2;
/** Client side: verification and host name check on by default. */
export const PROTOCOL_TLS_CLIENT = 16;
/** Server side: client certificates not requested by default. */
export const PROTOCOL_TLS_SERVER = 17;
/** One of `PROTOCOL_TLS`, `PROTOCOL_TLS_CLIENT`, `PROTOCOL_TLS_SERVER`. */
export type SSLProtocolVersion = typeof PROTOCOL_TLS | typeof PROTOCOL_TLS_CLIENT | typeof PROTOCOL_TLS_SERVER;

/** No certificate is requested (server) or verified (client). */
export const CERT_NONE = 0;
/** Server side: a client certificate is requested and verified if sent. Client side: as `CERT_REQUIRED`. */
export const CERT_OPTIONAL = 1;
/** The peer must present a certificate that verifies; the handshake fails otherwise. */
export const CERT_REQUIRED = 2;
/** The values of `SSLContext.verifyMode` (Python's `ssl.VerifyMode`). */
export const VerifyMode = { CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED } as const;
/** One of `CERT_NONE`, `CERT_OPTIONAL`, `CERT_REQUIRED`. */
export type VerifyMode = (typeof VerifyMode)[keyof typeof VerifyMode];

/**
 * TLS protocol versions for `minimumVersion`/`maximumVersion` (Python's `ssl.TLSVersion`); the values are the
 * strings node:tls takes.
 */
export const TLSVersion = {
  MINIMUM_SUPPORTED: 'TLSv1',
  TLSv1: 'TLSv1',
  TLSv1_1: 'TLSv1.1',
  TLSv1_2: 'TLSv1.2',
  TLSv1_3: 'TLSv1.3',
  MAXIMUM_SUPPORTED: 'TLSv1.3',
} as const;
/** A TLS protocol version, as node:tls names it. */
export type TLSVersion = (typeof TLSVersion)[keyof typeof TLSVersion];
const TLS_VERSIONS: readonly string[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** What a context created by `createDefaultContext` is for (Python's `ssl.Purpose`). */
export const Purpose = {
  /** A client context, to authenticate servers. */
  SERVER_AUTH: 'SERVER_AUTH',
  /** A server context, to authenticate clients. */
  CLIENT_AUTH: 'CLIENT_AUTH',
} as const;
/** `Purpose.SERVER_AUTH` or `Purpose.CLIENT_AUTH`. */
export type Purpose = (typeof Purpose)[keyof typeof Purpose];

/** Certificate or key material: PEM text, a file path, or a Buffer (PEM, or DER for certificates). */
export type CertSource = string | Buffer;

/** A passphrase for an encrypted key, or a function returning it (called at once, as Python calls it). */
export type KeyPassword = string | Buffer | (() => string | Buffer);

/** Trust anchors for `loadVerifyLocations` and `createDefaultContext` (Python's keyword arguments). */
export interface VerifyLocations {
  /** A file of PEM certificates. */
  cafile?: string | null;
  /** A directory of certificate files (PEM; OpenSSL's hashed `c_rehash` layout works too). */
  capath?: string | null;
  /** PEM text (a string) or DER bytes of one certificate (a Buffer; PEM in a Buffer is accepted too). */
  cadata?: string | Buffer | null;
}

/** Options of {@link createDefaultContext}. */
export interface DefaultContextOptions extends VerifyLocations {
  /** `Purpose.SERVER_AUTH` (default: a client context) or `Purpose.CLIENT_AUTH` (a server context). */
  purpose?: Purpose;
}

/**
 * Called on the server when a client names a host with SNI; returns the context to continue with (its certificate
 * is used), or `null`/`undefined` to keep this one. An exception aborts the handshake.
 *
 * @param serverName - the host name the client asked for.
 * @param context - the context the connection was made with.
 * @param sslObject - the `tls.TLSSocket` (the connection's `ssl_object`).
 */
export type SNICallback = (
  serverName: string,
  context: SSLContext,
  sslObject: tls.TLSSocket,
) => SSLContext | null | undefined | Promise<SSLContext | null | undefined>;

const BRAND = Symbol.for('loopwork.tls.SSLContext');
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * True when `value` is an `SSLContext`, even one made by another installed copy of `@loopwork/tls`.
 */
export function isSSLContext(value: unknown): value is SSLContext {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/**
 * A TLS configuration shared by many connections (Python's `ssl.SSLContext`): certificates and key, trust
 * anchors, verification mode, host name checking, ALPN, SNI, TLS versions and ciphers.
 *
 * Pass it as `ssl` to `createServer`/`createConnection`, or to `loop.startTls()`. A context may be changed at any
 * time; connections made afterwards see the change.
 *
 * @example
 * ```ts
 * const ctx = new SSLContext(PROTOCOL_TLS_SERVER);
 * ctx.loadCertChain('server.pem', 'server.key');
 * const server = await loop.createServer(() => new Echo(), '127.0.0.1', 0, { ssl: ctx });
 * ```
 */
export class SSLContext {
  /** The protocol the context was made for. */
  readonly protocol: SSLProtocolVersion;
  /** @internal */
  _verifyMode: VerifyMode;
  /** @internal */
  _checkHostname: boolean;
  /** @internal */
  _minimumVersion: TLSVersion = TLSVersion.TLSv1_2;
  /** @internal */
  _maximumVersion: TLSVersion = TLSVersion.MAXIMUM_SUPPORTED;
  /** @internal the `{cert, key, passphrase}` of `loadCertChain`. */
  _certChain: { cert: string; key: string; passphrase?: string } | null = null;
  /** @internal PEM certificates from `loadVerifyLocations`. */
  _caCerts: string[] = [];
  /** @internal true after `loadDefaultCerts()`: Node's bundled root certificates are trusted. */
  _defaultCerts = false;
  /** @internal */
  _ciphers: string | null = null;
  /** @internal */
  _ecdhCurve: string | null = null;
  /** @internal */
  _alpnProtocols: string[] | null = null;
  /** @internal */
  _sniCallback: SNICallback | null = null;
  /** @internal the cached SecureContext; `null` when something changed since it was built. */
  _secureContext: tls.SecureContext | null = null;

  /**
   * Makes a context with Python's defaults for `protocol`: `PROTOCOL_TLS_CLIENT` verifies the server and checks
   * its host name (but trusts nothing until `loadVerifyLocations()` or `loadDefaultCerts()`), the others verify
   * nothing. TLS 1.0 and 1.1 are never negotiated unless `minimumVersion` is lowered.
   *
   * @param protocol - `PROTOCOL_TLS_CLIENT`, `PROTOCOL_TLS_SERVER` or `PROTOCOL_TLS` (the default: either side).
   * @throws ValueError for another protocol.
   */
  constructor(protocol: SSLProtocolVersion = PROTOCOL_TLS) {
    if (protocol !== PROTOCOL_TLS && protocol !== PROTOCOL_TLS_CLIENT && protocol !== PROTOCOL_TLS_SERVER) {
      throw new ValueError(`invalid or unsupported protocol version ${inspect(protocol)}`);
    }
    this.protocol = protocol;
    const client = protocol === PROTOCOL_TLS_CLIENT;
    this._verifyMode = client ? CERT_REQUIRED : CERT_NONE;
    this._checkHostname = client;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * Whether a client checks that the server's certificate matches `serverHostname`. Turning it on raises
   * `verifyMode` from `CERT_NONE` to `CERT_REQUIRED`, as in Python.
   */
  get checkHostname(): boolean {
    return this._checkHostname;
  }
  set checkHostname(value: boolean) {
    const on = Boolean(value);
    if (on && this._verifyMode === CERT_NONE) this._verifyMode = CERT_REQUIRED;
    this._checkHostname = on;
  }

  /**
   * Whether the peer's certificate is requested and verified: `CERT_NONE`, `CERT_OPTIONAL` or `CERT_REQUIRED`.
   *
   * @throws ValueError for another value, or for `CERT_NONE` while `checkHostname` is on.
   */
  get verifyMode(): VerifyMode {
    return this._verifyMode;
  }
  set verifyMode(value: VerifyMode) {
    if (value !== CERT_NONE && value !== CERT_OPTIONAL && value !== CERT_REQUIRED) {
      throw new ValueError('invalid value for verifyMode');
    }
    if (value === CERT_NONE && this._checkHostname) {
      throw new ValueError('Cannot set verifyMode to CERT_NONE when checkHostname is enabled.');
    }
    this._verifyMode = value;
  }

  /** The lowest TLS version negotiated (default `TLSVersion.TLSv1_2`). @throws ValueError for an unknown version. */
  get minimumVersion(): TLSVersion {
    return this._minimumVersion;
  }
  set minimumVersion(value: TLSVersion) {
    this._minimumVersion = checkVersion(value);
    this._secureContext = null;
  }

  /** The highest TLS version negotiated (default `TLSVersion.TLSv1_3`). @throws ValueError for an unknown version. */
  get maximumVersion(): TLSVersion {
    return this._maximumVersion;
  }
  set maximumVersion(value: TLSVersion) {
    this._maximumVersion = checkVersion(value);
    this._secureContext = null;
  }

  /**
   * The server's SNI hook (Python's `sni_callback`): see {@link SNICallback}. `null` turns it off.
   *
   * @throws TypeError when it is not a function or `null`.
   */
  get sniCallback(): SNICallback | null {
    return this._sniCallback;
  }
  set sniCallback(callback: SNICallback | null) {
    if (callback !== null && typeof callback !== 'function') {
      throw new InvalidArgTypeError(`not a callable object: ${inspect(callback)}`);
    }
    this._sniCallback = callback;
  }

  /**
   * Sets the SNI hook (Python's `set_servername_callback`); the same as assigning `sniCallback`.
   *
   * @param callback - see {@link SNICallback}; `null` turns it off.
   */
  setServernameCallback(callback: SNICallback | null): void {
    this.sniCallback = callback;
  }

  /**
   * Loads this side's certificate (with its chain) and private key. Errors (a file that cannot be read, a key
   * that does not match, a wrong password) are thrown here, not at the first connection.
   *
   * @param certfile - PEM text, a file path, or a Buffer; it may also hold the key.
   * @param keyfile - the private key (PEM text, path or Buffer); by default taken from `certfile`.
   * @param password - the passphrase of an encrypted key, or a function returning it.
   */
  loadCertChain(certfile: CertSource, keyfile?: CertSource | null, password?: KeyPassword | null): void {
    const cert = readCertMaterial(certfile, 'certfile');
    const key = keyfile === undefined || keyfile === null ? cert : readKeyMaterial(keyfile);
    let passphrase: string | undefined;
    if (password !== undefined && password !== null) {
      const p = typeof password === 'function' ? password() : password;
      if (typeof p !== 'string' && !Buffer.isBuffer(p)) {
        throw new InvalidArgTypeError('password should be a string or bytes');
      }
      passphrase = p.toString();
    }
    const chain = passphrase === undefined ? { cert, key } : { cert, key, passphrase };
    // Built now so that a bad key or a wrong password is reported by this call, as Python reports it.
    tls.createSecureContext(chain);
    this._certChain = chain;
    this._secureContext = null;
  }

  /**
   * Adds trust anchors used to verify the peer's certificate. Calling it means that only the anchors loaded so
   * (plus Node's bundled roots if `loadDefaultCerts()` was called) are trusted.
   *
   * @param locations - `cafile` (a path), `capath` (a directory), `cadata` (PEM text or DER bytes); a plain
   * string is a `cafile`.
   * @throws TypeError when all three are missing, or `cafile`/`capath` is not a string; ValueError when no
   * certificate is found; `FileNotFoundError` (an `OSError`) for a file or directory that is not there.
   */
  loadVerifyLocations(locations: VerifyLocations | string): void {
    const { cafile, capath, cadata } = typeof locations === 'string' ? { cafile: locations } : locations;
    const none = (v: unknown): boolean => v === undefined || v === null;
    if (none(cafile) && none(capath) && none(cadata)) {
      throw new InvalidArgTypeError('cafile, capath and cadata cannot be all omitted');
    }
    // A number would be read as a file descriptor (0 is stdin: the call would wait for it to end).
    if (!none(cafile) && typeof cafile !== 'string') {
      throw new InvalidArgTypeError(`cafile should be a valid filesystem path, got ${inspect(cafile)}`);
    }
    if (!none(capath) && typeof capath !== 'string') {
      throw new InvalidArgTypeError(`capath should be a valid filesystem path, got ${inspect(capath)}`);
    }
    const found: string[] = [];
    if (!none(cafile)) found.push(...pemCertificates(readText(cafile as string), `cafile ${cafile}`));
    if (!none(capath)) {
      const dir = capath as string;
      for (const name of withOSErrors(() => readdirSync(dir)).sort()) {
        const path = join(dir, name);
        if (!withOSErrors(() => statSync(path)).isFile()) continue;
        found.push(...(readText(path).match(PEM_CERT) ?? []));
      }
    }
    if (!none(cadata)) {
      const data = cadata as string | Buffer;
      if (typeof data === 'string') found.push(...pemCertificates(data, 'cadata'));
      else if (Buffer.isBuffer(data)) {
        const text = data.toString('latin1');
        if (text.includes('-----BEGIN')) found.push(...pemCertificates(text, 'cadata'));
        else found.push(new X509Certificate(data).toString());
      } else throw new InvalidArgTypeError('cadata should be a string or a Buffer');
    }
    this._caCerts.push(...found);
    this._secureContext = null;
  }

  /**
   * Trusts Node's bundled root certificates (and `NODE_EXTRA_CA_CERTS`), as Python's `load_default_certs` trusts
   * the system's.
   *
   * @param purpose - accepted for Python's signature; both purposes load the same roots.
   */
  loadDefaultCerts(purpose: Purpose = Purpose.SERVER_AUTH): void {
    void purpose;
    this._defaultCerts = true;
    this._secureContext = null;
  }

  /** The same as `loadDefaultCerts()` (Python's `set_default_verify_paths`). */
  setDefaultVerifyPaths(): void {
    this.loadDefaultCerts();
  }

  /**
   * Sets the protocols offered (client) or accepted in this order of preference (server) with ALPN.
   *
   * @param protocols - e.g. `['h2', 'http/1.1']`; the one chosen is the connection's
   * `getExtraInfo('ssl_object').alpnProtocol`.
   * @throws ValueError when a name is empty or longer than 255 bytes.
   */
  setAlpnProtocols(protocols: Iterable<string>): void {
    const list = [...protocols];
    for (const p of list) {
      if (typeof p !== 'string') throw new InvalidArgTypeError(`ALPN protocols must be strings, got ${inspect(p)}`);
      const n = Buffer.byteLength(p);
      if (n < 1 || n > 255) throw new ValueError('ALPN protocols must be 1 to 255 in length');
    }
    this._alpnProtocols = list;
  }

  /**
   * Sets the cipher list (OpenSSL's cipher list format; TLS 1.3 suites such as `TLS_AES_128_GCM_SHA256` may be
   * listed too).
   *
   * @throws Node's error when no cipher matches (Python's "No cipher can be selected.").
   */
  setCiphers(ciphers: string): void {
    if (typeof ciphers !== 'string') throw new InvalidArgTypeError('ciphers should be a string');
    tls.createSecureContext({ ciphers });
    this._ciphers = ciphers;
    this._secureContext = null;
  }

  /** Sets the curve for ECDH key exchange (Python's `set_ecdh_curve`), e.g. `'prime256v1'`. */
  setEcdhCurve(curveName: string): void {
    if (typeof curveName !== 'string') throw new InvalidArgTypeError('curveName should be a string');
    tls.createSecureContext({ ecdhCurve: curveName });
    this._ecdhCurve = curveName;
    this._secureContext = null;
  }

  /** The PEM certificates loaded as trust anchors by `loadVerifyLocations` (Python's `get_ca_certs`, as text). */
  getCaCerts(): string[] {
    return [...this._caCerts];
  }

  /** @internal The node:tls SecureContext of this configuration, built once until the context changes. */
  _getSecureContext(): tls.SecureContext {
    let sc = this._secureContext;
    if (sc !== null) return sc;
    const options: tls.SecureContextOptions = {
      minVersion: this._minimumVersion,
      maxVersion: this._maximumVersion,
      // Required by OpenSSL for session resumption with client certificates; Python sets its own too.
      sessionIdContext: 'loopwork',
    };
    if (this._certChain !== null) {
      options.cert = this._certChain.cert;
      options.key = this._certChain.key;
      if (this._certChain.passphrase !== undefined) options.passphrase = this._certChain.passphrase;
    }
    if (this._caCerts.length > 0) {
      options.ca = this._defaultCerts ? [...tls.rootCertificates, ...this._caCerts] : [...this._caCerts];
    } else if (!this._defaultCerts) {
      // Python's contexts trust nothing until told to; Node's default would be its bundled roots.
      options.ca = [];
    }
    if (this._ciphers !== null) options.ciphers = this._ciphers;
    if (this._ecdhCurve !== null) options.ecdhCurve = this._ecdhCurve;
    sc = tls.createSecureContext(options);
    this._secureContext = sc;
    return sc;
  }

  /**
   * @internal The options of `tls.connect()` for a client connection over `socket`.
   *
   * @throws ValueError when the context is a server one, or when `checkHostname` is on without a host name.
   */
  _clientOptions(socket: tls.ConnectionOptions['socket'], serverHostname: string | null): tls.ConnectionOptions {
    if (this.protocol === PROTOCOL_TLS_SERVER) {
      throw new ValueError('Cannot create a client socket with a PROTOCOL_TLS_SERVER context');
    }
    if (this._checkHostname && !serverHostname) {
      throw new ValueError('checkHostname requires serverHostname');
    }
    const options: tls.ConnectionOptions = {
      socket,
      secureContext: this._getSecureContext(),
      rejectUnauthorized: this._verifyMode !== CERT_NONE,
    };
    if (serverHostname) {
      // RFC 6066 forbids an IP address in SNI (Node warns); the certificate check still uses it.
      if (isIP(serverHostname) === 0) options.servername = serverHostname;
      const host = serverHostname;
      options.checkServerIdentity = this._checkHostname
        ? (_name: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert)
        : () => undefined;
    } else {
      options.checkServerIdentity = () => undefined;
    }
    if (this._alpnProtocols !== null) options.ALPNProtocols = this._alpnProtocols;
    return options;
  }

  /**
   * @internal The options of `new tls.TLSSocket()` for a server connection.
   *
   * @throws ValueError when the context is a client one.
   */
  _serverOptions(): tls.TLSSocketOptions {
    if (this.protocol === PROTOCOL_TLS_CLIENT) {
      throw new ValueError('Cannot create a server socket with a PROTOCOL_TLS_CLIENT context');
    }
    const options: tls.TLSSocketOptions = {
      isServer: true,
      secureContext: this._getSecureContext(),
      requestCert: this._verifyMode !== CERT_NONE,
      // With it, OpenSSL fails the handshake when no certificate comes; a certificate that does not verify is
      // refused by the transport once the handshake is done (Node's verify callback accepts everything).
      rejectUnauthorized: this._verifyMode === CERT_REQUIRED,
    };
    if (this._alpnProtocols !== null) options.ALPNProtocols = this._alpnProtocols;
    if (this._sniCallback !== null) options.SNICallback = nodeSniCallback(this, this._sniCallback);
    return options;
  }

  /** @internal */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    const names: Record<number, string> = {
      [PROTOCOL_TLS]: 'PROTOCOL_TLS',
      [PROTOCOL_TLS_CLIENT]: 'PROTOCOL_TLS_CLIENT',
      [PROTOCOL_TLS_SERVER]: 'PROTOCOL_TLS_SERVER',
    };
    const modes = ['CERT_NONE', 'CERT_OPTIONAL', 'CERT_REQUIRED'];
    return (
      `<SSLContext ${names[this.protocol]} verifyMode=${modes[this._verifyMode]} ` +
      `checkHostname=${this._checkHostname} cert=${this._certChain !== null} ` +
      `ca=${this._caCerts.length}${this._defaultCerts ? '+default' : ''}>`
    );
  }
}

/**
 * Makes a context with secure defaults (Python's `ssl.create_default_context`): for `Purpose.SERVER_AUTH` (the
 * default) a client context that verifies the server and checks its host name, trusting the given anchors or
 * else Node's bundled roots; for `Purpose.CLIENT_AUTH` a server context (load its certificate with
 * `loadCertChain`).
 *
 * @param options - `purpose`, and `cafile`/`capath`/`cadata` as for `loadVerifyLocations`.
 * @example
 * ```ts
 * const ctx = createDefaultContext({ cafile: 'ca.pem' });
 * await loop.createConnection(() => new Client(), 'localhost', 8443, { ssl: ctx });
 * ```
 */
export function createDefaultContext(options: DefaultContextOptions = {}): SSLContext {
  const { purpose = Purpose.SERVER_AUTH, cafile, capath, cadata } = options;
  let ctx: SSLContext;
  if (purpose === Purpose.SERVER_AUTH) ctx = new SSLContext(PROTOCOL_TLS_CLIENT);
  else if (purpose === Purpose.CLIENT_AUTH) ctx = new SSLContext(PROTOCOL_TLS_SERVER);
  else throw new ValueError(`invalid purpose ${inspect(purpose)}`);
  const has = (v: unknown): boolean => v !== undefined && v !== null;
  if (has(cafile) || has(capath) || has(cadata)) {
    const locations: VerifyLocations = {};
    if (has(cafile)) locations.cafile = cafile as string;
    if (has(capath)) locations.capath = capath as string;
    if (has(cadata)) locations.cadata = cadata as string | Buffer;
    ctx.loadVerifyLocations(locations);
  } else if (ctx.verifyMode !== CERT_NONE) {
    ctx.loadDefaultCerts(purpose);
  }
  return ctx;
}

/** Node's `SNICallback` for an `SNICallback`: Node calls it as a method of the TLSSocket. */
function nodeSniCallback(context: SSLContext, sni: SNICallback): tls.TLSSocketOptions['SNICallback'] {
  return function (this: unknown, serverName, cb) {
    const sslObject = this as tls.TLSSocket;
    const done = (chosen: SSLContext | null | undefined): void => {
      if (chosen === null || chosen === undefined) cb(null, context._getSecureContext());
      else if (!isSSLContext(chosen)) {
        cb(new InvalidArgTypeError(`sniCallback must return an SSLContext or null, got ${inspect(chosen)}`));
      } else cb(null, chosen._getSecureContext());
    };
    const fail = (error: unknown): void => cb(error instanceof Error ? error : new Error(String(error)));
    let result: ReturnType<SNICallback>;
    try {
      result = sni(serverName, context, sslObject);
    } catch (error) {
      fail(error);
      return;
    }
    if (result instanceof Promise) result.then(done, fail);
    else done(result);
  };
}

const defaultContexts: { checked?: SSLContext; unchecked?: SSLContext } = {};

/**
 * @internal The context of `ssl: true` (asyncio's `_create_transport_context`): `createDefaultContext()`, with
 * host name checking off when there is no host name. Made once per process, since loading the root
 * certificates is slow; connections share it as they share any context.
 */
export function defaultClientContext(checkHostname: boolean): SSLContext {
  const key = checkHostname ? 'checked' : 'unchecked';
  let ctx = defaultContexts[key];
  if (ctx === undefined) {
    ctx = createDefaultContext();
    ctx.checkHostname = checkHostname;
    defaultContexts[key] = ctx;
  }
  return ctx;
}

function checkVersion(value: unknown): TLSVersion {
  if (typeof value !== 'string' || !TLS_VERSIONS.includes(value)) {
    throw new ValueError(`invalid TLS version ${inspect(value)}; use TLSVersion.TLSv1_2 or TLSVersion.TLSv1_3`);
  }
  return value as TLSVersion;
}

function pemCertificates(text: string, what: string): string[] {
  const found = text.match(PEM_CERT);
  if (found === null) throw new ValueError(`no certificate found in ${what}`);
  for (const pem of found) new X509Certificate(pem);
  return found;
}

/** A file's text; a missing file is Python's `FileNotFoundError` (an `OSError`), Node's error its `cause`. */
function readText(path: string): string {
  return withOSErrors(() => readFileSync(path, 'utf8'));
}

function readCertMaterial(source: CertSource, what: string): string {
  if (typeof source === 'string') return source.includes('-----BEGIN') ? source : readText(source);
  if (Buffer.isBuffer(source)) {
    const text = source.toString('latin1');
    return text.includes('-----BEGIN') ? source.toString('utf8') : new X509Certificate(source).toString();
  }
  throw new InvalidArgTypeError(`${what} should be a string (PEM or path) or a Buffer, got ${inspect(source)}`);
}

function readKeyMaterial(source: CertSource): string {
  if (typeof source === 'string') return source.includes('-----BEGIN') ? source : readText(source);
  if (Buffer.isBuffer(source)) return source.toString('utf8');
  throw new InvalidArgTypeError(`keyfile should be a string (PEM or path) or a Buffer, got ${inspect(source)}`);
}
