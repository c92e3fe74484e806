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
//   POST    /v1.0/backup-retention/prune[?dryrun]  admin   200 [PruneDecision, ...]    400 (no rule, bad rules: serde's and
//           body: retention rules, or none: the handler's `retention` option          humantime's words), 409, 503
//
//   Not served here (the Rust server's; this host has no schedule and no metrics): GET
//   /metrics, GET /openapi.json, GET /v1.0/backup-schedule: 404.
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
//
// The answers' shapes live in http-wire.js (errors.rs, wire.rs), the streams in
// http-download.js (download.rs), the create body's reader in http-json.js (serde_json's),
// the prune body's in http-retention.js (schedule.rs, serde's and humantime's).

import crypto from 'node:crypto';
import fs from 'node:fs';

import { download, read } from './http-download.js';
import { JsonNumber, JsonSyntaxError, hexValue, parseJson } from './http-json.js';
import { ApiError, apiErrorFrom, named, toJson, wireBackupFile, wireDrill, wirePruneDecision, wireRestoration, wireTime, wireVerification } from './http-wire.js';
import { requestedRules, rustDebug } from './http-retention.js';

export { ApiError, apiErrorFrom, toJson, wireBackupFile, wireDrill, wireRestoration, wireTime, wireVerification } from './http-wire.js';
export { JsonSyntaxError, parseJson } from './http-json.js';
export { byteRange, contentDisposition } from './http-download.js';

/** The largest request body accepted (a create request is a few dozen bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

/** What a handler adds to its request's log line (which backup a change was about). */
const NOTE = Symbol('litegraph-backup log note');

/** How long a client may take to send a request body. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------
// The routes (mod.rs `routes()`), in the Rust table's order (which sets `Allow`'s)

const ROUTES = [
  ['GET', '/health', 'anyone', health],
  ['GET', '/v1.0/backups', 'admin', list],
  ['POST', '/v1.0/backups', 'admin', create],
  ['GET', '/v1.0/backups/{filename}', 'admin', (c, req, res, params) => read(c, req, res, filenameParam(params))],
  ['HEAD', '/v1.0/backups/{filename}', 'admin', exists],
  ['DELETE', '/v1.0/backups/{filename}', 'admin', remove],
  ['GET', '/v1.0/backups/{filename}/download', 'admin', (c, req, res, params) => download(c, req, res, filenameParam(params))],
  ['POST', '/v1.0/backups/{filename}/verify', 'admin', verify],
  ['POST', '/v1.0/backups/{filename}/drill', 'admin', drill],
  ['POST', '/v1.0/backups/{filename}/restore', 'admin', restore],
  // Not under /v1.0/backups/{filename}: a backup may be called `prune`.
  ['POST', '/v1.0/backup-retention/prune', 'admin', prune],
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
 * `retention` (the rules a prune without a body applies, as the service's `prune` takes
 * them: `{ keepLast, keepDaily, ..., keepWithinSeconds, includeNamed }`),
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
    adminDigest: crypto.createHash('sha256').update(adminToken, 'utf8').digest(),
    backups: options.backups ?? service.backups ?? service.options?.backups,
    database: options.database ?? service.database ?? service.options?.database,
    retention: options.retention,
  };
  // The backup directory as it is now, so that /health can tell it was replaced.
  context.backupsIdentity = identity(context.backups);

  return function litegraphBackups(req, res, next) {
    const started = process.hrtime.bigint();
    const { path: rawPath, query } = splitTarget(req.url);
    const matched = matchPath(rawPath);
    if (matched.length === 0 && typeof next === 'function') {
      next();
      return;
    }
    res.once('close', () => {
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
      const now = fs.statSync(backups);
      const then = context.backupsIdentity;
      if (then && (now.dev !== then.dev || now.ino !== then.ino)) {
        problems.push(
          `the backup directory ${backups} was moved or replaced while in use; restart to use the directory now at that path`,
        );
        inPlace = false;
      } else if (!now.isDirectory()) {
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

/** A path's device and inode, or undefined. */
function identity(file) {
  try {
    const { dev, ino } = fs.statSync(file);
    return { dev, ino };
  } catch {
    return undefined;
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
 * `POST /v1.0/backup-retention/prune[?dryrun]`: applies the rules in the body, or the
 * handler's `retention` option when there is none; answers every backup's decision.
 */
async function prune(context, req, res, params, query) {
  const dryRun = queryFlag(query, 'dryrun');
  const body = await readBody(req, context.requestTimeoutMs);
  const rules = requestedRules(body, context.retention);
  const decisions = await context.service.prune(rules, dryRun);
  const goes = decisions.filter((d) => !d.keep);
  res[NOTE] = dryRun
    ? `dry run, ${goes.length} to remove`
    : `${goes.filter((d) => d.removalFailed === undefined).length} removed`;
  sendJson(req, res, decisions.map(wirePruneDecision));
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
    `${flag} must be true or false (or 1/0, yes/no), not ${rustDebug(value)}`,
  );
}

function asciiLower(text) {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
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
      req.off('close', onAborted);
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
    // 'close' also follows a complete body's 'end', by which time the promise is settled.
    const onAborted = () => finish(new ApiError('BadRequest', 'the client closed the connection'));
    const timer = setTimeout(() => finish(new ApiError('RequestTimeout')), timeoutMs);
    timer.unref?.();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onAborted);
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
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof JsonNumber) {
    throw new ApiError('BadRequest', 'The request body must be a JSON object.');
  }
  if (!Object.hasOwn(value, 'Filename')) return undefined;
  const name = value.Filename;
  if (typeof name === 'string' && name !== '') return name;
  throw new ApiError('BadRequest', 'Filename must be a non-empty string.');
}
