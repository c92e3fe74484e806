// LiteGraph's backup routes over `node:http`, answering as `litegraph-backup serve` does
// (host/src/http/{mod.rs, routes.rs, errors.rs, download.rs}, host/src/wire.rs): the same
// paths, status codes, headers that matter, JSON bodies byte for byte, and error bodies.
//
// Route table (every admin route needs `Authorization: Bearer <admin token>`):
//
//   method  path                                   auth    success                     failures
//   GET     /health                                anyone  200 {"Status":"Healthy"}    503 {"Problems":[..],"Status":"Degraded"}
//   GET     /v1.0/backups                          admin   200 [BackupFile, ...]       401, 500/503 (store faults)
//   POST    /v1.0/backups  body {"Filename":"x"}   admin   200 BackupFile (no Data)    400 (empty body, bad JSON, not an
//                                                                                      object, Filename null/""/not a string,
//                                                                                      invalid name), 409 Conflict (exists),
//                                                                                      409 InUse (busy), 413, 408, 503, 500
//   GET     /v1.0/backups/{f}                      admin   200 BackupFile + "Data"     400 (bad name), 404 (described)
//   HEAD    /v1.0/backups/{f}                      admin   200, empty body             400, 404 (no body: HEAD never has one)
//   DELETE  /v1.0/backups/{f}                      admin   200, empty body             400, 404 (described)
//   GET     /v1.0/backups/{f}/download             admin   200/206 raw bytes           400, 404, 416 (+ Content-Range */len)
//   POST    /v1.0/backups/{f}/verify[?full]        admin   200 Verification            400 (bad flag, bad name), 404
//   POST    /v1.0/backups/{f}/drill                admin   200 Drill                   400, 404
//   POST    /v1.0/backups/{f}/restore              admin   200 Restoration             400 (fails verification...), 404
//
//   Not served here (the Rust server's, which the service does not offer): GET /metrics,
//   GET /openapi.json, GET /v1.0/backup-schedule, POST /v1.0/backup-retention/prune: 404.
//
// - Every answer is `Content-Type: application/json` (the raw download `application/octet-
//   stream`); an empty 200 (HEAD exists, DELETE) carries that type too, as LiteGraph's do.
// - Errors: `{"Error","Message","StatusCode","Description"?}` in that order, LiteGraph's exact
//   messages (two spaces in BadRequest's). A missing backup on a named route is described
//   `Unable to find backup with filename {f}`; HEAD's 404 has no body at all.
// - Auth: `Authorization` must be visible ASCII and start with `bearer ` in any case (one
//   space); the rest is the token, compared in constant time (SHA-256 of both, then
//   `crypto.timingSafeEqual` on the two 32-byte digests: no early exit on length). Otherwise
//   401 `{"Error":"AuthenticationFailed",...}`. Auth is checked only once the path and the
//   method have matched a route: an unknown path is 404 and a known path with another method
//   405 whatever the token (axum's `route_layer`).
// - Routing is on the raw (percent-encoded) path, segment by segment, case-sensitive, no
//   trailing-slash or double-slash folding: `/v1.0/backups/` and `//v1.0/backups` are 404.
//   `{f}` is one non-empty segment, percent-decoded (`%XY` only, `+` stays `+`); bytes that
//   are not UTF-8 are a 400 `Invalid URL: Invalid UTF-8 in \`filename\``. The name's rules
//   (no `..`, `/`, control characters, leading `.`, > 255 bytes...) are the policy's: its
//   `invalid-name` text is the Description.
// - 405 carries `Allow` as axum builds it: `GET,HEAD,POST` on /v1.0/backups and
//   `GET,HEAD,HEAD,DELETE` on /v1.0/backups/{f} (GET routes answer HEAD too).
// - HEAD answers lose their body and say `Content-Length: 0`, except the download's, which
//   keeps the file's length and its other headers.
// - Query strings are ignored (`?incldata`, `?x=1`: GET one always carries Data, as
//   LiteGraph's documented route does) except verify's `full` flag: absent = false; `full`,
//   `full=`, true/1/yes = true; false/0/no = false, any case; anything else or twice = 400.
// - Create's body: at most 64 KiB (a larger Content-Length, or more bytes arriving, is 413
//   TooLarge), within 30 s (408). Empty: 400 without Description. It is read as serde_json
//   reads it (this file carries a port of its parser so that a bad body gets the same
//   Description: `The request body is not valid JSON: EOF while parsing an object at line 1
//   column 1`). `{}` or no case-exact `Filename`: the default name. Unknown properties are
//   ignored.
// - BackupFile JSON: Filename, Length, MD5Hash, SHA1Hash, SHA256Hash, CreatedUtc,
//   LastUpdateUtc, LastAccessUtc, in that order; u64 (BigInt) as JSON numbers; times
//   `yyyy-MM-ddTHH:mm:ss.ffffffZ` (microseconds truncated, clamped to 9999-12-31T23:59:59.999999Z).
// - GET one: `Data` (standard base64 of the whole file) comes last; the body is streamed
//   in 192 KiB chunks (a multiple of 3, so chunks concatenate) with its exact Content-Length
//   computed up front, so memory stays flat whatever the size. The file is opened
//   O_NOFOLLOW right after the policy's `read`; a file that shrinks mid-stream cuts the
//   connection rather than sending fewer bytes than promised.
// - Download: the raw file, `Accept-Ranges: bytes`, `ETag: "<SHA256Hash>"`,
//   `Content-Disposition: attachment; filename="x"` (RFC 5987 `filename*=` when not plain
//   ASCII); one `Range` honoured (206 + Content-Range), several or unparsable ignored (200),
//   beyond the file 416.
// - Error mapping from the service's BackupError tags: invalid-name, invalid-argument,
//   corrupt, not-permitted -> 400 with the text; not-found -> 404; exist -> 409 Conflict;
//   busy -> 409 InUse; no-database -> 503 with the text; io -> 500 with the text; anything
//   else (a trap, a host fault) -> 500 without detail (logged).
//
// As Express middleware (`app.use(handler)`), a path that is not one of these routes is
// passed to `next()` rather than answered 404, and a body another middleware already read
// (`req.body` as a Buffer or string) is used as it is.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The largest request body accepted (a create request is a few dozen bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

/** What a handler adds to its request's log line (which backup a change was about). */
const NOTE = Symbol('litegraph-backup log note');

/** How long a client may take to send a request body. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** Bytes of backup read per chunk when streaming: a multiple of 3 (see the header). */
const STREAM_CHUNK_BYTES = 3 * 64 * 1024;

// ---------------------------------------------------------------------------------------
// Errors, in LiteGraph's shape (errors.rs)

const KINDS = {
  AuthenticationFailed: [401, 'Your authentication material was not accepted.'],
  BadRequest: [
    400,
    'We were unable to discern your request.  Please check your URL, query, and request body.',
  ],
  NotFound: [404, 'The requested resource was not found.'],
  Conflict: [409, 'Operation failed as it would create a conflict with an existing resource.'],
  InUse: [409, 'The requested resource is in use.'],
  TooLarge: [413, 'The size of your request exceeds the maximum allowed by this server.'],
  RequestTimeout: [408, 'The request timed out before it could be completed.'],
  InternalError: [500, 'An internal error has been encountered.'],
  ServiceUnavailable: [
    503,
    'The service cannot handle requests until the problem described is fixed.',
  ],
  MethodNotAllowed: [405, 'The requested method is not allowed on this resource.'],
  RangeNotSatisfiable: [416, 'The requested range lies beyond the file.'],
};

/** An error answer: `kind` one of KINDS, `description` optional. */
export class ApiError extends Error {
  constructor(kind, description) {
    super(description ? `${kind}: ${description}` : kind);
    if (!Object.hasOwn(KINDS, kind)) throw new TypeError(`not an error kind: ${kind}`);
    this.name = 'ApiError';
    this.kind = kind;
    this.status = KINDS[kind][0];
    this.description = description;
    this.headers = {};
  }

  /** The body, `{"Error","Message","StatusCode","Description"?}` in that order. */
  body() {
    const body = { Error: this.kind, Message: KINDS[this.kind][1], StatusCode: this.status };
    if (this.description !== undefined) body.Description = this.description;
    return JSON.stringify(body);
  }
}

/**
 * The answer for a failure of the service (errors.rs `From<Error>`). `log` hears the faults
 * whose detail is not sent.
 */
export function apiErrorFrom(error, log = () => {}) {
  if (error instanceof ApiError) return error;
  const detail = typeof error?.detail === 'string' ? error.detail : '';
  switch (error?.tag) {
    case 'invalid-name':
    case 'invalid-argument':
    case 'corrupt':
    case 'not-permitted':
      return new ApiError('BadRequest', detail);
    case 'not-found':
      return new ApiError('NotFound');
    case 'exist':
      return new ApiError(
        'Conflict',
        'A backup with that filename exists already; it was left untouched.',
      );
    case 'busy':
      return new ApiError(
        'InUse',
        'The database stayed locked for longer than the busy timeout; try again.',
      );
    case 'no-database':
      log(`error: ${detail}`);
      return new ApiError('ServiceUnavailable', detail);
    case 'io':
      log(`error: ${detail}`);
      return new ApiError('InternalError', detail);
    default:
      // The policy's own faults (a trap) or the host's: nothing a caller can act on.
      log(`internal error: ${error?.stack ?? error}`);
      return new ApiError('InternalError');
  }
}

// ---------------------------------------------------------------------------------------
// LiteGraph's wire format (wire.rs)

/** 9999-12-31T23:59:59: the last second LiteGraph's DateTime can hold. */
const LATEST_SECONDS = 253_402_300_799n;

/** A WIT datetime `{seconds: bigint, nanoseconds: number}` as `2025-05-27T03:31:10.904886Z`. */
export function wireTime(datetime) {
  let seconds = BigInt(datetime.seconds);
  let nanoseconds = Math.min(Number(datetime.nanoseconds), 999_999_999);
  if (seconds > LATEST_SECONDS) {
    seconds = LATEST_SECONDS;
    nanoseconds = 999_999_999;
  }
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  const micros = String(Math.floor(nanoseconds / 1000)).padStart(6, '0');
  return `${whole}.${micros}Z`;
}

/** A u64 (BigInt or number) for the JSON writer: kept exact beyond 2^53. */
class U64 {
  constructor(value) {
    this.digits = BigInt(value).toString();
  }
}

/** LiteGraph's BackupFile, from the WIT record as jco gives it. */
export function wireBackupFile(b) {
  return {
    Filename: b.filename,
    Length: new U64(b.length),
    MD5Hash: b.md5Hash,
    SHA1Hash: b.sha1Hash,
    SHA256Hash: b.sha256Hash,
    CreatedUtc: wireTime(b.createdUtc),
    LastUpdateUtc: wireTime(b.lastUpdateUtc),
    LastAccessUtc: wireTime(b.lastAccessUtc),
  };
}

function wireDigests(d) {
  return { MD5Hash: d.md5, SHA1Hash: d.sha1, SHA256Hash: d.sha256 };
}

export function wireVerification(v) {
  return {
    Verified: v.problems.length === 0,
    Check: v.full ? 'integrity_check' : 'quick_check',
    DigestsRecordedNow: v.recordedNow,
    Problems: v.problems,
    Backup: wireBackupFile(v.backup),
    Actual: wireDigests(v.actual),
  };
}

export function wireRestoration(r) {
  return { Restored: wireBackupFile(r.restored), SafetyBackup: wireBackupFile(r.safetyBackup) };
}

export function wireDrill(d) {
  const count = (n) => (n === undefined || n === null ? null : new U64(n));
  return {
    Passed: d.problems.length === 0,
    Problems: d.problems,
    Backup: wireBackupFile(d.backup),
    StartedUtc: wireTime(d.at),
    Milliseconds: new U64(d.milliseconds),
    LiteGraphSchema: d.litegraph,
    Tables: d.tables.map((t) => ({
      Name: t.name,
      InBackup: count(t.inBackup),
      Restored: count(t.restored),
    })),
  };
}

/**
 * JSON as serde_json writes it: no spaces, u64 exact, `undefined` properties left out.
 * Strings are escaped as JSON.stringify does, which is serde_json's escaping for every
 * string Rust can hold (short forms for \b\f\n\r\t, \u00xx lowercase for other controls,
 * nothing else escaped).
 */
export function toJson(value) {
  if (value instanceof U64) return value.digits;
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = [];
    for (const [key, member] of Object.entries(value)) {
      if (member === undefined) continue;
      members.push(`${JSON.stringify(key)}:${toJson(member)}`);
    }
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------
// The routes (mod.rs `routes()`), in the Rust table's order (which sets `Allow`'s)

const ROUTES = [
  ['GET', '/health', 'anyone', health],
  ['GET', '/v1.0/backups', 'admin', list],
  ['POST', '/v1.0/backups', 'admin', create],
  ['GET', '/v1.0/backups/{filename}', 'admin', read],
  ['HEAD', '/v1.0/backups/{filename}', 'admin', exists],
  ['DELETE', '/v1.0/backups/{filename}', 'admin', remove],
  ['GET', '/v1.0/backups/{filename}/download', 'admin', download],
  ['POST', '/v1.0/backups/{filename}/verify', 'admin', verify],
  ['POST', '/v1.0/backups/{filename}/drill', 'admin', drill],
  ['POST', '/v1.0/backups/{filename}/restore', 'admin', restore],
].map(([method, pattern, access, handle]) => ({
  method,
  pattern,
  segments: pattern.split('/'),
  access,
  handle,
}));

/** The routes whose pattern `rawPath` matches, with their raw parameters. */
function matchPath(rawPath) {
  const segments = rawPath.split('/');
  const matched = [];
  for (const route of ROUTES) {
    if (route.segments.length !== segments.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const want = route.segments[i];
      if (want.startsWith('{')) {
        if (segments[i] === '') ok = false;
        else params[want.slice(1, -1)] = segments[i];
      } else if (want !== segments[i]) {
        ok = false;
      }
    }
    if (ok) matched.push({ route, params });
  }
  return matched;
}

/** The route for `method` among those matching the path: HEAD falls back to GET. */
function pickMethod(matched, method) {
  const exact = matched.find(({ route }) => route.method === method);
  if (exact || method !== 'HEAD') return exact;
  return matched.find(({ route }) => route.method === 'GET');
}

/** `Allow` as axum writes it: each route's method in order, a GET adding HEAD. */
function allowHeader(matched) {
  return matched
    .flatMap(({ route }) => (route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]))
    .join(',');
}

/** Path and query of a request target (origin-form, or absolute-form as hyper accepts). */
function splitTarget(url) {
  let target = url ?? '/';
  const absolute = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (absolute) target = target.slice(absolute[0].length) || '/';
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const question = target.indexOf('?');
  return question < 0
    ? { path: target, query: undefined }
    : { path: target.slice(0, question), query: target.slice(question + 1) };
}

/** Percent-decoding as the `percent-encoding` crate does: `%XY` only, the rest verbatim. */
function percentDecode(text) {
  const bytes = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const hi = hexValue(bytes[i + 1]);
    const lo = hexValue(bytes[i + 2]);
    if (bytes[i] === 0x25 && hi >= 0 && lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else {
      out[n++] = bytes[i];
    }
  }
  return out.subarray(0, n);
}

function hexValue(byte) {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x37;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x57;
  return -1;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The `{filename}` parameter, decoded; undecodable is a bad request (axum's text). */
function filenameParam(params) {
  try {
    return strictUtf8.decode(percentDecode(params.filename));
  } catch {
    throw new ApiError('BadRequest', 'Invalid URL: Invalid UTF-8 in `filename`');
  }
}

// ---------------------------------------------------------------------------------------
// The admin token

/** Whether `header` (the Authorization value) presents the admin token. */
function admits(adminDigest, header) {
  if (typeof header !== 'string') return false;
  // hyper's `to_str`: visible ASCII (and tab) only.
  if (!/^[\t\x20-\x7e]*$/.test(header)) return false;
  if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return false;
  const presented = crypto.createHash('sha256').update(header.slice(7), 'latin1').digest();
  return crypto.timingSafeEqual(presented, adminDigest);
}

// ---------------------------------------------------------------------------------------
// The handler

/**
 * A request handler for `node:http` (and Express-style servers) serving LiteGraph's backup
 * routes from `service` (createBackupService's). Options: `adminToken` (not empty),
 * `requestTimeoutMs` (a request body's deadline), `log` (a function given one line per
 * request and each fault; none by default), and `backups`/`database` (the paths, when the
 * service does not tell them: GET one and download open the backup file, /health checks
 * both places).
 */
export function createHandler(service, options = {}) {
  const {
    adminToken = 'litegraphadmin',
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
    log = () => {},
  } = options;
  if (typeof adminToken !== 'string' || adminToken === '') {
    throw new TypeError('the admin token must not be empty: an empty token would let anyone in');
  }
  const context = {
    service,
    log,
    requestTimeoutMs,
    adminDigest: crypto.createHash('sha256').update(adminToken, 'latin1').digest(),
    backups: options.backups ?? service.backups ?? service.options?.backups,
    database: options.database ?? service.database ?? service.options?.database,
  };

  return function litegraphBackups(req, res, next) {
    const started = process.hrtime.bigint();
    const { path: rawPath, query } = splitTarget(req.url);
    const matched = matchPath(rawPath);
    if (matched.length === 0 && typeof next === 'function') {
      next();
      return;
    }
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const client = `${req.socket?.remoteAddress ?? '-'}:${req.socket?.remotePort ?? ''}`;
      const note = res[NOTE] ? ` (${res[NOTE]})` : '';
      log(`${client} ${req.method} ${rawPath} ${res.statusCode} ${ms.toFixed(1)}ms${note}`);
    });
    dispatch(context, req, res, matched, query).catch((error) => {
      fail(res, req, apiErrorFrom(error, log));
    });
  };
}

async function dispatch(context, req, res, matched, query) {
  if (matched.length === 0) throw new ApiError('NotFound');
  const picked = pickMethod(matched, req.method);
  if (!picked) {
    const error = new ApiError('MethodNotAllowed');
    error.headers.allow = allowHeader(matched);
    throw error;
  }
  if (picked.route.access === 'admin' && !admits(context.adminDigest, req.headers.authorization)) {
    throw new ApiError('AuthenticationFailed');
  }
  await picked.route.handle(context, req, res, picked.params, query);
}

/** Sends `body` (a string or Buffer) as JSON; HEAD gets the head alone. */
function send(req, res, status, body = '', headers = {}) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head = req.method === 'HEAD';
  res.writeHead(status, {
    'content-type': 'application/json',
    ...headers,
    'content-length': head ? 0 : bytes.length,
  });
  res.end(head ? undefined : bytes);
}

function fail(res, req, error) {
  // A body left unread (a 401, a 413) is read and dropped by node:http once the answer is
  // sent, so the client sees the answer rather than a reset connection.
  send(req, res, error.status, error.body(), error.headers);
}

function sendJson(req, res, value) {
  send(req, res, 200, toJson(value));
}

/** Runs one call about the backup `name`: a missing one gets LiteGraph's description. */
async function named(name, call) {
  try {
    return await call();
  } catch (error) {
    if (error?.tag === 'not-found') {
      throw new ApiError('NotFound', `Unable to find backup with filename ${name}`);
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// The handlers (routes.rs)

/**
 * `GET /health`: what an operator must fix (`status`'s rules without a schedule, which this
 * host does not run): the backup directory or the live database gone, the backups
 * unlistable, the newest backup's last drill failed.
 */
async function health(context, req, res) {
  const problems = [];
  const { backups, database, service } = context;
  let inPlace = true;
  if (backups !== undefined) {
    try {
      if (!fs.statSync(backups).isDirectory()) {
        problems.push(`the backup directory ${backups} is not a directory`);
        inPlace = false;
      }
    } catch (error) {
      inPlace = false;
      problems.push(
        error.code === 'ENOENT'
          ? `the backup directory ${backups} was moved or deleted while in use; put it back or restart`
          : `cannot stat the backup directory ${backups}: ${error.message}`,
      );
    }
  }
  if (database !== undefined) {
    try {
      if (!fs.statSync(database).isFile()) {
        problems.push(`the live database ${database} is not a regular file`);
      }
    } catch (error) {
      problems.push(
        error.code === 'ENOENT'
          ? `the live database ${database} does not exist`
          : `cannot stat the live database ${database}: ${error.message}`,
      );
    }
  }
  if (inPlace) {
    try {
      const listed = await service.list();
      const newest = listed.at(-1);
      if (newest !== undefined && typeof service.details === 'function') {
        const drill = await service.details(newest.filename).then(
          (details) => details.lastDrill,
          () => undefined,
        );
        if (drill && !drill.passed) {
          const why = drill.summary ? `: ${drill.summary}` : '';
          problems.push(
            `the newest backup, ${newest.filename}, failed its last restore drill (${wireTime(drill.at)})${why}; it may not restore`,
          );
        }
      }
    } catch (error) {
      problems.push(`the backups cannot be listed: ${describe(error)}`);
    }
  }
  if (problems.length === 0) {
    send(req, res, 200, toJson({ Status: 'Healthy' }));
  } else {
    // serde_json's `json!` keeps keys sorted: Problems before Status.
    send(req, res, 503, toJson({ Problems: problems, Status: 'Degraded' }));
  }
}

function describe(error) {
  if (error?.tag) return error.detail ? `${error.tag}: ${error.detail}` : error.tag;
  return String(error?.message ?? error);
}

async function list(context, req, res) {
  const backups = await context.service.list();
  sendJson(req, res, backups.map(wireBackupFile));
}

async function create(context, req, res) {
  const body = await readBody(req, context.requestTimeoutMs);
  const name = requestedFilename(body);
  res[NOTE] = name === undefined ? 'backup (default name)' : `backup ${JSON.stringify(name)}`;
  const backup = await context.service.create(name);
  res[NOTE] = `backup ${JSON.stringify(backup.filename)}`;
  sendJson(req, res, wireBackupFile(backup));
}

async function exists(context, req, res, params) {
  const name = filenameParam(params);
  const found = await named(name, () => context.service.exists(name));
  if (!found) throw new ApiError('NotFound');
  send(req, res, 200);
}

async function remove(context, req, res, params) {
  const name = filenameParam(params);
  res[NOTE] = `backup ${JSON.stringify(name)}`;
  await named(name, () => context.service.delete(name));
  send(req, res, 200);
}

async function verify(context, req, res, params, query) {
  const name = filenameParam(params);
  const full = queryFlag(query, 'full');
  const verdict = await named(name, () => context.service.verify(name, full));
  sendJson(req, res, wireVerification(verdict));
}

async function drill(context, req, res, params) {
  const name = filenameParam(params);
  const report = await named(name, () => context.service.drill(name));
  sendJson(req, res, wireDrill(report));
}

async function restore(context, req, res, params) {
  const name = filenameParam(params);
  res[NOTE] = `backup ${JSON.stringify(name)}`;
  const restoration = await named(name, () => context.service.restore(name));
  res[NOTE] += `, safety backup ${JSON.stringify(restoration.safetyBackup.filename)}`;
  sendJson(req, res, wireRestoration(restoration));
}

/**
 * A flag in the query (routes.rs `query_flag`): absent = false; present without a value =
 * true; true/1/yes or false/0/no in any case; anything else, or twice, is a bad request.
 */
export function queryFlag(query, flag) {
  const values = (query ?? '')
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair === flag ? '' : undefined;
      return pair.slice(0, eq) === flag ? pair.slice(eq + 1) : undefined;
    })
    .filter((value) => value !== undefined);
  if (values.length > 1) {
    throw new ApiError('BadRequest', `${flag} is given more than once; give it once.`);
  }
  const value = values[0];
  const lower = value === undefined ? undefined : asciiLower(value);
  if (lower === undefined || lower === 'false' || lower === '0' || lower === 'no') return false;
  if (lower === '' || lower === 'true' || lower === '1' || lower === 'yes') return true;
  throw new ApiError(
    'BadRequest',
    `${flag} must be true or false (or 1/0, yes/no), not ${rustDebugString(value)}`,
  );
}

function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** A string as Rust's `{:?}` shows it (quotes, and escapes for `"`, `\` and controls). */
function rustDebugString(text) {
  let out = '"';
  for (const ch of text) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\0') out += '\\0';
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

// ---------------------------------------------------------------------------------------
// The create body

/** Reads a request body of at most MAX_BODY_BYTES within `timeoutMs` (routes.rs `read_body`). */
function readBody(req, timeoutMs) {
  // Another middleware (express.raw, express.text, express.json) may have read it already.
  if (req.readableEnded) {
    let body = Buffer.alloc(0);
    if (Buffer.isBuffer(req.body) || typeof req.body === 'string') body = Buffer.from(req.body);
    else if (req.body !== undefined) body = Buffer.from(JSON.stringify(req.body), 'utf8');
    if (body.length > MAX_BODY_BYTES) return Promise.reject(new ApiError('TooLarge'));
    return Promise.resolve(body);
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && /^\d+$/.test(declared) && BigInt(declared) > BigInt(MAX_BODY_BYTES)) {
    return Promise.reject(new ApiError('TooLarge'));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let length = 0;
    let settled = false;
    const finish = (error, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (error) {
        reject(error);
      } else {
        resolve(value);
      }
    };
    const onData = (chunk) => {
      length += chunk.length;
      if (length > MAX_BODY_BYTES) finish(new ApiError('TooLarge'));
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null, Buffer.concat(chunks, length));
    const onError = (error) => finish(new ApiError('BadRequest', error.message));
    const onAborted = () => finish(new ApiError('BadRequest', 'the client closed the connection'));
    const timer = setTimeout(() => finish(new ApiError('RequestTimeout')), timeoutMs);
    timer.unref?.();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/**
 * The name a create request asks for (routes.rs `requested_filename`): no body is a bad
 * request; an object without a case-exact `Filename` asks for the default name; a
 * `Filename` that is null, empty or not a string is a bad request.
 */
export function requestedFilename(body) {
  if (body.length === 0) throw new ApiError('BadRequest');
  let value;
  try {
    value = parseJson(body);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new ApiError('BadRequest', `The request body is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError('BadRequest', 'The request body must be a JSON object.');
  }
  if (!Object.hasOwn(value, 'Filename')) return undefined;
  const name = value.Filename;
  if (typeof name === 'string' && name !== '') return name;
  throw new ApiError('BadRequest', 'Filename must be a non-empty string.');
}

// ---------------------------------------------------------------------------------------
// serde_json's reader (1.0.154, without float_roundtrip or arbitrary_precision), ported so
// that a body it refuses is refused here with the same words and position: de.rs
// (deserialize_any, SeqAccess, MapAccess, parse_* and end_*) and read.rs (SliceRead).
// Objects come out as null-prototype objects (the last of duplicate keys wins, as in
// serde_json's Map); numbers as JavaScript numbers (only their syntax matters here).

export class JsonSyntaxError extends Error {
  constructor(message, line, column) {
    super(`${message} at line ${line} column ${column}`);
    this.name = 'JsonSyntaxError';
  }
}

const POW10 = Array.from({ length: 309 }, (_, i) => Number(`1e${i}`));
const U64_MAX = (1n << 64n) - 1n;
const I32_MAX = 2 ** 31 - 1;

/** Parses `bytes` (a Buffer) as `serde_json::from_slice::<Value>` does. */
export function parseJson(bytes) {
  const reader = new JsonReader(bytes);
  const value = reader.value();
  reader.end();
  return value;
}

class JsonReader {
  constructor(bytes) {
    this.slice = bytes;
    this.index = 0;
    this.remainingDepth = 128;
  }

  // SliceRead

  positionOf(i) {
    const before = this.slice.subarray(0, i);
    const lastNewline = before.lastIndexOf(0x0a);
    const startOfLine = lastNewline < 0 ? 0 : lastNewline + 1;
    let line = 1;
    for (let k = 0; k < startOfLine; k++) if (this.slice[k] === 0x0a) line++;
    return { line, column: i - startOfLine };
  }

  error(message) {
    const { line, column } = this.positionOf(this.index);
    return new JsonSyntaxError(message, line, column);
  }

  peekError(message) {
    const { line, column } = this.positionOf(Math.min(this.slice.length, this.index + 1));
    return new JsonSyntaxError(message, line, column);
  }

  peek() {
    return this.index < this.slice.length ? this.slice[this.index] : undefined;
  }

  peekOrNull() {
    return this.peek() ?? 0;
  }

  next() {
    return this.index < this.slice.length ? this.slice[this.index++] : undefined;
  }

  eat() {
    this.index++;
  }

  // Deserializer

  whitespace() {
    for (;;) {
      const b = this.peek();
      if (b === 0x20 || b === 0x0a || b === 0x09 || b === 0x0d) this.eat();
      else return b;
    }
  }

  end() {
    if (this.whitespace() !== undefined) throw this.peekError('trailing characters');
  }

  value() {
    const peek = this.whitespace();
    if (peek === undefined) throw this.peekError('EOF while parsing a value');
    switch (peek) {
      case 0x6e: // n
        this.eat();
        this.ident('ull');
        return null;
      case 0x74: // t
        this.eat();
        this.ident('rue');
        return true;
      case 0x66: // f
        this.eat();
        this.ident('alse');
        return false;
      case 0x2d: // -
        this.eat();
        return this.integer(false);
      case 0x22: // "
        this.eat();
        return this.string();
      case 0x5b: // [
        return this.nested(() => this.sequence());
      case 0x7b: // {
        return this.nested(() => this.map());
      default:
        if (peek >= 0x30 && peek <= 0x39) return this.integer(true);
        throw this.peekError('expected value');
    }
  }

  nested(visit) {
    this.remainingDepth -= 1;
    if (this.remainingDepth === 0) throw this.peekError('recursion limit exceeded');
    this.eat();
    const value = visit();
    this.remainingDepth += 1;
    return value;
  }

  ident(rest) {
    for (const expected of Buffer.from(rest, 'latin1')) {
      const next = this.next();
      if (next === undefined) throw this.error('EOF while parsing a value');
      if (next !== expected) throw this.error('expected ident');
    }
  }

  sequence() {
    const items = [];
    let first = true;
    for (;;) {
      const peek = this.whitespace();
      if (peek === undefined) throw this.peekError('EOF while parsing a list');
      if (peek === 0x5d) break;
      if (first) {
        first = false;
      } else if (peek === 0x2c) {
        this.eat();
        const after = this.whitespace();
        if (after === 0x5d) throw this.peekError('trailing comma');
        if (after === undefined) throw this.peekError('EOF while parsing a value');
      } else {
        throw this.peekError('expected `,` or `]`');
      }
      items.push(this.value());
    }
    // end_seq: the `]` seen above
    this.eat();
    return items;
  }

  map() {
    const object = Object.create(null);
    let first = true;
    for (;;) {
      const peek = this.whitespace();
      if (peek === undefined) throw this.peekError('EOF while parsing an object');
      if (peek === 0x7d) break;
      if (first) {
        first = false;
        if (peek !== 0x22) throw this.peekError('key must be a string');
      } else if (peek === 0x2c) {
        this.eat();
        const after = this.whitespace();
        if (after === 0x7d) throw this.peekError('trailing comma');
        if (after === undefined) throw this.peekError('EOF while parsing a value');
        if (after !== 0x22) throw this.peekError('key must be a string');
      } else {
        throw this.peekError('expected `,` or `}`');
      }
      this.eat(); // the key's opening quote
      const key = this.string();
      const colon = this.whitespace();
      if (colon === 0x3a) this.eat();
      else if (colon === undefined) throw this.peekError('EOF while parsing an object');
      else throw this.peekError('expected `:`');
      object[key] = this.value();
    }
    // end_map: the `}` seen above
    this.eat();
    return object;
  }

  // Numbers (only whether they parse matters; values are approximate)

  integer(positive) {
    const next = this.next();
    if (next === undefined) throw this.error('EOF while parsing a value');
    if (next === 0x30) {
      const peek = this.peekOrNull();
      if (peek >= 0x30 && peek <= 0x39) throw this.peekError('invalid number');
      return this.number(positive, 0n);
    }
    if (next >= 0x31 && next <= 0x39) {
      let significand = BigInt(next - 0x30);
      for (;;) {
        const c = this.peekOrNull();
        if (c >= 0x30 && c <= 0x39) {
          const candidate = significand * 10n + BigInt(c - 0x30);
          if (candidate > U64_MAX) return this.longInteger(positive, significand);
          this.eat();
          significand = candidate;
        } else {
          return this.number(positive, significand);
        }
      }
    }
    throw this.error('invalid number');
  }

  number(positive, significand) {
    const peek = this.peekOrNull();
    if (peek === 0x2e) return this.decimal(positive, significand, 0);
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, 0);
    return positive ? Number(significand) : -Number(significand);
  }

  decimal(positive, significand, exponentBefore) {
    this.eat();
    let after = 0;
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      const candidate = significand * 10n + BigInt(c - 0x30);
      if (candidate > U64_MAX) return this.decimalOverflow(positive, significand, exponentBefore + after);
      this.eat();
      significand = candidate;
      after -= 1;
    }
    if (after === 0) {
      if (this.peek() !== undefined) throw this.peekError('invalid number');
      throw this.peekError('EOF while parsing a value');
    }
    const exponent = exponentBefore + after;
    const peek = this.peekOrNull();
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, exponent);
    return this.fromParts(positive, significand, exponent);
  }

  exponent(positive, significand, startingExp) {
    this.eat();
    let positiveExp = true;
    const sign = this.peekOrNull();
    if (sign === 0x2b) this.eat();
    else if (sign === 0x2d) {
      this.eat();
      positiveExp = false;
    }
    const next = this.next();
    if (next === undefined) throw this.error('EOF while parsing a value');
    if (!(next >= 0x30 && next <= 0x39)) throw this.error('invalid number');
    let exp = next - 0x30;
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
      const candidate = exp * 10 + (c - 0x30);
      if (candidate > I32_MAX) return this.exponentOverflow(positive, significand === 0n, positiveExp);
      exp = candidate;
    }
    const saturate = (n) => Math.max(-(2 ** 31), Math.min(I32_MAX, n));
    const finalExp = saturate(positiveExp ? startingExp + exp : startingExp - exp);
    return this.fromParts(positive, significand, finalExp);
  }

  exponentOverflow(positive, zeroSignificand, positiveExp) {
    if (!zeroSignificand && positiveExp) throw this.error('number out of range');
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
    }
    return positive ? 0 : -0;
  }

  longInteger(positive, significand) {
    let exponent = 0;
    for (;;) {
      const c = this.peekOrNull();
      if (c >= 0x30 && c <= 0x39) {
        this.eat();
        exponent += 1;
      } else if (c === 0x2e) {
        return this.decimal(positive, significand, exponent);
      } else if (c === 0x65 || c === 0x45) {
        return this.exponent(positive, significand, exponent);
      } else {
        return this.fromParts(positive, significand, exponent);
      }
    }
  }

  decimalOverflow(positive, significand, exponent) {
    for (;;) {
      const c = this.peekOrNull();
      if (!(c >= 0x30 && c <= 0x39)) break;
      this.eat();
    }
    const peek = this.peekOrNull();
    if (peek === 0x65 || peek === 0x45) return this.exponent(positive, significand, exponent);
    return this.fromParts(positive, significand, exponent);
  }

  fromParts(positive, significand, exponent) {
    let f = Number(significand);
    for (;;) {
      const pow = POW10[Math.abs(exponent)];
      if (pow !== undefined) {
        if (exponent >= 0) {
          f *= pow;
          if (!Number.isFinite(f)) throw this.error('number out of range');
        } else {
          f /= pow;
        }
        break;
      }
      if (f === 0) break;
      if (exponent >= 0) throw this.error('number out of range');
      f /= 1e308;
      exponent += 308;
    }
    return positive ? f : -f;
  }

  // Strings (SliceRead::parse_str_bytes with validation, then as_str)

  string() {
    const scratch = [];
    let start = this.index;
    for (;;) {
      while (this.index < this.slice.length && !isEscape(this.slice[this.index])) this.index++;
      if (this.index === this.slice.length) throw this.error('EOF while parsing a string');
      const b = this.slice[this.index];
      if (b === 0x22) {
        scratch.push(this.slice.subarray(start, this.index));
        this.index += 1;
        return this.asStr(Buffer.concat(scratch));
      }
      if (b === 0x5c) {
        scratch.push(this.slice.subarray(start, this.index));
        this.index += 1;
        scratch.push(this.escape());
        start = this.index;
      } else {
        this.index += 1;
        throw this.error('control character (\\u0000-\\u001F) found while parsing a string');
      }
    }
  }

  asStr(bytes) {
    const validUpTo = utf8ValidUpTo(bytes);
    if (validUpTo === bytes.length) return bytes.toString('utf8');
    const { line, column } = this.positionOf(this.index);
    throw new JsonSyntaxError(
      'invalid unicode code point',
      line,
      Math.max(0, column - (bytes.length - validUpTo)),
    );
  }

  nextOrEof() {
    const b = this.next();
    if (b === undefined) throw this.error('EOF while parsing a string');
    return b;
  }

  peekOrEof() {
    const b = this.peek();
    if (b === undefined) throw this.error('EOF while parsing a string');
    return b;
  }

  /** One escape after its backslash, as UTF-8 bytes. */
  escape() {
    const ch = this.nextOrEof();
    const simple = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };
    if (Object.hasOwn(simple, ch)) return Buffer.from([simple[ch]]);
    if (ch === 0x75) return this.unicodeEscape();
    throw this.error('invalid escape');
  }

  hexEscape() {
    if (this.slice.length - this.index < 4) {
      this.index = this.slice.length;
      throw this.error('EOF while parsing a string');
    }
    const text = this.slice.subarray(this.index, this.index + 4);
    this.index += 4;
    let value = 0;
    for (const byte of text) {
      const digit = hexValue(byte);
      if (digit < 0) throw this.error('invalid escape');
      value = value * 16 + digit;
    }
    return value;
  }

  unicodeEscape() {
    const n = this.hexEscape();
    if (n >= 0xdc00 && n <= 0xdfff) throw this.error('lone leading surrogate in hex escape');
    if (n < 0xd800 || n > 0xdbff) return Buffer.from(String.fromCodePoint(n), 'utf8');
    if (this.peekOrEof() !== 0x5c) {
      this.eat();
      throw this.error('unexpected end of hex escape');
    }
    this.eat();
    if (this.peekOrEof() !== 0x75) {
      this.eat();
      throw this.error('unexpected end of hex escape');
    }
    this.eat();
    const n2 = this.hexEscape();
    if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error('lone leading surrogate in hex escape');
    const code = (((n - 0xd800) << 10) | (n2 - 0xdc00)) + 0x10000;
    return Buffer.from(String.fromCodePoint(code), 'utf8');
  }
}

function isEscape(byte) {
  return byte === 0x22 || byte === 0x5c || byte < 0x20;
}

/** How many leading bytes of `bytes` are valid UTF-8 (Rust's `Utf8Error::valid_up_to`). */
function utf8ValidUpTo(bytes) {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let width;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) width = 1;
    else if (b >= 0xc2 && b <= 0xdf) width = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      width = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      width = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + width > bytes.length) return i;
    for (let k = 1; k < width; k++) {
      const c = bytes[i + k];
      const [min, max] = k === 1 ? [lo, hi] : [0x80, 0xbf];
      if (c < min || c > max) return i;
    }
    i += width;
  }
  return i;
}

// ---------------------------------------------------------------------------------------
// Backups going out (download.rs)

/** The policy's view of a backup and the file opened for reading, with its length. */
async function openBackup(context, params) {
  const name = filenameParam(params);
  return named(name, async () => {
    const backup = await context.service.read(name);
    if (context.backups === undefined) {
      throw new ApiError('InternalError', 'the handler was not told where the backups are');
    }
    // The policy accepted the name; it is still checked to be one plain entry here.
    if (name.includes('/') || name.includes('\0') || name === '.' || name === '..') {
      throw new ApiError('BadRequest', 'not a single file name');
    }
    let handle;
    try {
      handle = await fs.promises.open(
        path.join(context.backups, name),
        fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW,
      );
    } catch (error) {
      if (error.code === 'ENOENT') throw Object.assign(new Error('gone'), { tag: 'not-found' });
      throw Object.assign(new Error(error.message), {
        tag: 'io',
        detail: `cannot open ${path.join(context.backups, name)}: ${error.message}`,
      });
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw Object.assign(new Error('not a file'), { tag: 'not-found' });
      return { backup, handle, length: stat.size };
    } catch (error) {
      await handle.close();
      throw error;
    }
  });
}

/**
 * `GET /v1.0/backups/{f}`: the BackupFile with `Data`, the whole file in base64, streamed
 * with its Content-Length known up front.
 */
async function read(context, req, res, params) {
  const { backup, handle, length } = await openBackup(context, params);
  try {
    const json = toJson(wireBackupFile(backup));
    const head = Buffer.from(`${json.slice(0, -1)},"Data":"`, 'utf8');
    const tail = Buffer.from('"}', 'utf8');
    const encoded = Math.ceil(length / 3) * 4;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': head.length + encoded + tail.length,
    });
    if (!(await write(res, head))) return;
    const complete = await streamFile(handle, 0, length, res, (chunk) =>
      Buffer.from(chunk.toString('base64'), 'latin1'),
    );
    if (complete) res.end(tail);
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * `GET /v1.0/backups/{f}/download`: the raw file, with a single `Range` honoured.
 */
async function download(context, req, res, params) {
  const { backup, handle, length } = await openBackup(context, params);
  try {
    const range = byteRange(req.headers.range, length);
    if (range === 'unsatisfiable') {
      const error = new ApiError('RangeNotSatisfiable', `The backup is ${length} bytes long.`);
      error.headers['content-range'] = `bytes */${length}`;
      throw error;
    }
    const [start, end] = range === 'whole' ? [0, length] : range;
    const headers = {
      'content-type': 'application/octet-stream',
      'content-length': end - start,
      'accept-ranges': 'bytes',
      etag: `"${backup.sha256Hash}"`,
      'content-disposition': contentDisposition(backup.filename),
    };
    const status = range === 'whole' ? 200 : 206;
    if (status === 206) headers['content-range'] = `bytes ${start}-${end - 1}/${length}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (await streamFile(handle, start, end, res, (chunk) => chunk)) res.end();
  } finally {
    await handle.close().catch(() => {});
  }
}

/** Writes `chunk`, waiting for the socket to drain; false when the client has gone. */
function write(res, chunk) {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

/**
 * Streams bytes `start..end` of the open file in bounded chunks, each through `encode`;
 * true when all were sent. A file shorter than promised cuts the connection.
 */
async function streamFile(handle, start, end, res, encode) {
  let position = start;
  while (position < end) {
    const want = Math.min(end - position, STREAM_CHUNK_BYTES);
    const chunk = Buffer.allocUnsafe(want);
    let filled = 0;
    while (filled < want) {
      const { bytesRead } = await handle.read(chunk, filled, want - filled, position + filled);
      if (bytesRead === 0) {
        res.destroy(new Error('the backup became shorter while it was sent'));
        return false;
      }
      filled += bytesRead;
    }
    position += want;
    if (!(await write(res, encode(chunk)))) return false;
  }
  return true;
}

/** What a `Range` header asks of a file of `length` bytes (RFC 9110 section 14). */
export function byteRange(header, length) {
  if (typeof header !== 'string') return 'whole';
  const trimmed = header.trim();
  if (!trimmed.startsWith('bytes=')) return 'whole';
  const spec = trimmed.slice('bytes='.length);
  if (spec.includes(',')) return 'whole';
  const dash = spec.indexOf('-');
  if (dash < 0) return 'whole';
  const first = spec.slice(0, dash).trim();
  const last = spec.slice(dash + 1).trim();
  const number = (text) => (/^[0-9]+$/.test(text) ? BigInt(text) : undefined);
  const total = BigInt(length);
  const min = (a, b) => (a < b ? a : b);
  let start;
  let end;
  const a = number(first);
  const b = number(last);
  if (a === undefined && b !== undefined && first === '') {
    if (b === 0n) return 'unsatisfiable';
    start = total > b ? total - b : 0n;
    end = total;
  } else if (a !== undefined && b === undefined && last === '') {
    start = a;
    end = total;
  } else if (a !== undefined && b !== undefined && b >= a) {
    start = a;
    end = min(b + 1n, total);
  } else {
    return 'whole';
  }
  return start < end ? [Number(start), Number(end)] : 'unsatisfiable';
}

/** `attachment; filename="..."`, with anything not plain ASCII escaped RFC 5987-style. */
export function contentDisposition(name) {
  const plain = [...name].every(
    (c) => (c >= '!' && c <= '~' && c !== '"' && c !== '\\') || c === ' ',
  );
  if (plain) return `attachment; filename="${name}"`;
  let encoded = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c)) encoded += c;
    else encoded += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `attachment; filename*=UTF-8''${encoded}`;
}
