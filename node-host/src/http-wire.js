// LiteGraph's answers for the HTTP handler (http.js): its error bodies (the Rust server's
// host/src/http/errors.rs) and its wire format (host/src/wire.rs): BackupFile and the other
// records as JSON, PascalCase, in the Rust structs' property order, u64 exact, times as
// `yyyy-MM-ddTHH:mm:ss.ffffffZ`.

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

export function wirePruneDecision(d) {
  return {
    Backup: wireBackupFile(d.backup),
    Keep: d.keep,
    Reasons: d.reasons,
    // skip_serializing_if = "Option::is_none"
    RemovalFailed: d.removalFailed ?? undefined,
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

/** Runs one call about the backup `name`: a missing one gets LiteGraph's description. */
export async function named(name, call) {
  try {
    return await call();
  } catch (error) {
    if (error?.tag === 'not-found') {
      throw new ApiError('NotFound', `Unable to find backup with filename ${name}`);
    }
    throw error;
  }
}
