// SQLite for the snapshot capability: connections to the live database and to backup files,
// error mapping, database headers, and the copy pass that `take` and `take-for-restore`
// share (host/src/snapshot/{mod.rs, pass.rs, pages.rs} in the Rust host).
//
// How a copy is made without `sqlite_dbpage` (better-sqlite3 12.11.1 does not build it):
// `Database#serialize()` is SQLite's `sqlite3_serialize`, which reads pages 1..page_count
// through the pager of the connection's open transaction: synchronous (jco calls imports
// synchronously), one transaction (a consistent moment), and the source's pages byte for
// byte, as the Rust host's pass copies them. Its cost is memory: the whole database is held
// once in memory while it is written out (see node-host's README).

import buffer from 'node:buffer';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { threeDigests } from './digests.js';
import os from 'node:os';
import path from 'node:path';

import Database from 'better-sqlite3';

import { WitError } from './errors.js';

const { O_RDONLY, O_NOFOLLOW, O_WRONLY, O_CREAT, O_EXCL } = fs.constants;

/** The first bytes of every SQLite database file. */
const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
/** The length of the database header at the start of page 1. */
export const HEADER_BYTES = 100;
/** Reads and writes go in pieces of this size. */
const CHUNK = 1 << 20;
/** The largest database a copy can hold: one Buffer's limit. */
const MOST_BYTES_IN_MEMORY = buffer.constants.MAX_LENGTH;

/**
 * A WIT error for a failure of SQLite (`busy` when locked, otherwise `io`) or of the
 * filesystem (`io`). Anything else is a host bug and stays what it is: it traps.
 */
export function sqliteError(error, what = 'SQLite') {
  if (error instanceof WitError) return error;
  if (isBusy(error)) return new WitError('busy');
  if (String(error?.code ?? '').startsWith('SQLITE_')) return new WitError('io', `${what}: ${error.message}`);
  if (error?.syscall !== undefined) return new WitError('io', `${error.message}`);
  return error;
}

export function isBusy(error) {
  const code = String(error?.code ?? '');
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

export function isCorrupt(error) {
  const code = String(error?.code ?? '');
  return code.startsWith('SQLITE_CORRUPT') || code.startsWith('SQLITE_NOTADB');
}

/** `name` as an SQL identifier, whatever it holds. */
export function quoted(name) {
  return `"${String(name).replaceAll('"', '""')}"`;
}

/** Sleeps `ms` milliseconds, blocking this thread (a worker's: never the main thread's loop). */
export function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** What a read-only connection cannot read past: a hot journal, a WAL index to recover. */
const NEEDS_WRITER = new Set(['SQLITE_READONLY_ROLLBACK', 'SQLITE_READONLY_RECOVERY', 'SQLITE_READONLY_CANTINIT']);

/**
 * A dedicated connection to the live database at `database`; never creates one. `readonly`
 * for a copy: such a connection never checkpoints the live database's WAL when it closes.
 */
export function connectLive(database, busyTimeoutMs, { readonly }) {
  let stat;
  try {
    stat = fs.statSync(database);
  } catch (error) {
    if (error.code === 'ENOENT') throw new WitError('no-database', `the live database ${database} does not exist`);
    throw new WitError('no-database', `cannot stat the live database ${database}: ${error.message}`);
  }
  if (!stat.isFile()) throw new WitError('no-database', `the live database ${database} is not a regular file`);
  let connection;
  try {
    connection = new Database(database, { readonly, fileMustExist: true, timeout: busyTimeoutMs });
  } catch (error) {
    throw new WitError('no-database', `cannot open the live database ${database}: ${error.message}`);
  }
  try {
    // A restore rebuilds tables in an order of its own: no foreign key may stop it.
    if (!readonly) connection.pragma('foreign_keys = OFF');
    untilNotBusy(connection, busyTimeoutMs, () => connection.pragma('schema_version'));
  } catch (error) {
    connection.close();
    if (readonly && NEEDS_WRITER.has(error.code)) {
      // A writer died mid-transaction (a hot journal) or the WAL index needs rebuilding:
      // only a read-write connection puts that right, as any SQLite client does on opening.
      return connectLive(database, busyTimeoutMs, { readonly: false });
    }
    if (String(error.code).startsWith('SQLITE_NOTADB')) {
      throw new WitError('no-database', `${database} is not a SQLite database`);
    }
    if (isBusy(error)) throw new WitError('busy');
    throw new WitError('io', `cannot read the live database ${database}: ${error.message}`);
  }
  return connection;
}

/** How long a copy or restore waits between two tries for a lock (pages.rs WRITE_LOCK_RETRY). */
const LOCK_RETRY_MS = 0.1;

/**
 * Runs `step` (which takes a lock) until it succeeds, trying again every 0.1 ms while the
 * database is busy, for up to `patienceMs`: then `busy`. SQLite's own busy handler sleeps up
 * to 100 ms between tries, and a writer committing back to back takes the lock again in the
 * microseconds between two of its transactions, every time: the copy or restore would never
 * get its turn (found with a writer on a rollback-journal database; the Rust host's
 * `begin_write` for the same reason). `undo` runs after a busy try (ends a transaction begun).
 */
function untilNotBusy(connection, patienceMs, step, undo = () => {}) {
  const deadline = performance.now() + patienceMs;
  connection.pragma('busy_timeout = 0');
  try {
    for (;;) {
      try {
        return step();
      } catch (error) {
        if (!isBusy(error) || performance.now() >= deadline) throw error;
        undo();
        sleepSync(LOCK_RETRY_MS);
      }
    }
  } finally {
    // Later steps (a commit waiting for readers) use SQLite's handler again.
    connection.pragma(`busy_timeout = ${Math.trunc(patienceMs)}`);
  }
}

/** Begins the write transaction a restore holds, within `patienceMs` (`busy` after). */
export function beginWrite(connection, patienceMs) {
  try {
    untilNotBusy(connection, patienceMs, () => connection.exec('BEGIN IMMEDIATE'));
  } catch (error) {
    throw sqliteError(error);
  }
}

/**
 * Begins a read transaction and takes its lock (a snapshot of one commit), within
 * `patienceMs` (`busy` after).
 */
export function beginRead(connection, patienceMs) {
  const rollback = () => {
    if (connection.inTransaction) connection.exec('ROLLBACK');
  };
  try {
    untilNotBusy(connection, patienceMs, () => {
      connection.exec('BEGIN');
      connection.pragma('page_count');
    }, rollback);
  } catch (error) {
    rollback();
    throw sqliteError(error);
  }
}

function be32(bytes, at) {
  return bytes.readUInt32BE(at);
}

/**
 * What must agree between a backup and the live database for an online restore (pages.rs
 * `Layout`): page size, reserved bytes per page, text encoding (1 UTF-8, 2 UTF-16le, 3
 * UTF-16be), auto-vacuum (0 none, 1 full, 2 incremental). `undefined` for no database header.
 */
export function layoutOfHeader(header) {
  if (!header || header.length < HEADER_BYTES || !header.subarray(0, 16).equals(MAGIC)) return undefined;
  const raw = header.readUInt16BE(16);
  let pageSize;
  if (raw === 1) pageSize = 65536;
  else if (raw >= 512 && (raw & (raw - 1)) === 0) pageSize = raw;
  else return undefined;
  const autoVacuum = be32(header, 52) === 0 ? 0 : be32(header, 64) === 0 ? 1 : 2;
  return { pageSize, reservedBytes: header[20], encoding: Math.max(be32(header, 56), 1), autoVacuum };
}

const ENCODINGS = { 1: 'UTF-8', 2: 'UTF-16le', 3: 'UTF-16be' };
const VACUUM_MODES = { 0: 'none', 1: 'full', 2: 'incremental' };

/** Why a backup of layout `backup` cannot be restored online into a database of layout `live`. */
export function layoutMismatch(backup, live) {
  let what;
  let theirs;
  let ours;
  if (backup.pageSize !== live.pageSize) {
    [what, theirs, ours] = ['page size', `${backup.pageSize} bytes`, `${live.pageSize} bytes`];
  } else if (backup.reservedBytes !== live.reservedBytes) {
    [what, theirs, ours] = ['reserved bytes per page', String(backup.reservedBytes), String(live.reservedBytes)];
  } else if (backup.encoding !== live.encoding) {
    [what, theirs, ours] = ['text encoding', ENCODINGS[backup.encoding] ?? 'UTF-8', ENCODINGS[live.encoding] ?? 'UTF-8'];
  } else if (backup.autoVacuum !== live.autoVacuum) {
    [what, theirs, ours] = ['auto_vacuum mode', VACUUM_MODES[backup.autoVacuum], VACUUM_MODES[live.autoVacuum]];
  } else {
    return undefined;
  }
  return `the backup's ${what} is ${theirs} and the live database's ${ours}: an online restore ` +
    'writes pages as they are and cannot convert them; stop the server and copy the backup over ' +
    "the database file instead (the README's manual procedure)";
}

/**
 * The live database's layout, inside its write transaction: SQLite's pragmas, and the reserved
 * bytes from the file's header (no pragma tells them; they change only with a VACUUM).
 */
export function liveLayout(connection, database) {
  const value = (name) => connection.pragma(name, { simple: true });
  const encoding = { 'UTF-8': 1, 'UTF-16le': 2, 'UTF-16be': 3 }[value('encoding')] ?? 1;
  let reservedBytes = 0;
  if (value('page_count') > 0) {
    const header = readHeaderOfPath(database);
    reservedBytes = layoutOfHeader(header)?.reservedBytes ?? 0;
  }
  return { pageSize: value('page_size'), reservedBytes, encoding, autoVacuum: value('auto_vacuum') };
}

function readHeaderOfPath(file) {
  const fd = fs.openSync(file, O_RDONLY);
  try {
    return readHeader(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The first 100 bytes of the file open as `fd` (fewer when it is shorter). */
export function readHeader(fd) {
  const header = Buffer.alloc(HEADER_BYTES);
  let filled = 0;
  while (filled < HEADER_BYTES) {
    const n = fs.readSync(fd, header, filled, HEADER_BYTES - filled, filled);
    if (n === 0) break;
    filled += n;
  }
  return header.subarray(0, filled);
}

/**
 * Page 1 of a copy that stands on its own: a rollback-journal database (opening it never
 * makes -wal/-shm files) whose header's page count is trusted (bytes 92-95 equal to the
 * change counter at 24-27). As pages.rs `mark_self_contained`.
 */
export function markSelfContained(pageOne, pages) {
  if (pageOne.length >= HEADER_BYTES && pageOne.subarray(0, 16).equals(MAGIC)) {
    pageOne[18] = 1;
    pageOne[19] = 1;
    // The true page count: the source's may be stale (SQLite before 3.7.0 leaves it so,
    // marked untrusted), and marking it trusted unchanged made a copy claim half its size.
    pageOne.writeUInt32BE(pages, 28);
    pageOne.writeUInt32BE(be32(pageOne, 24), 92);
  }
}

/** Page 1 of an empty database of `pageSize` bytes a page, as SQLite writes it. */
function emptyPageOne(pageSize) {
  const empty = new Database(':memory:');
  try {
    empty.pragma(`page_size = ${pageSize}`);
    empty.pragma('user_version = 0');
    return empty.serialize();
  } finally {
    empty.close();
  }
}

/**
 * Every page the connection's open transaction sees, as one buffer: page 1 made
 * self-contained. The transaction stays open (the caller ends it).
 */
export function readPages(connection) {
  let pageSize;
  let pageCount;
  try {
    pageSize = connection.pragma('page_size', { simple: true });
    pageCount = connection.pragma('page_count', { simple: true });
  } catch (error) {
    throw sqliteError(error);
  }
  if (pageCount === 0) {
    // An empty (0-byte) database: the copy is an empty database all the same, one page
    // that SQLite reads, verifies and restores.
    const page = emptyPageOne(pageSize);
    markSelfContained(page, 1);
    return page;
  }
  const length = pageCount * pageSize;
  if (length > MOST_BYTES_IN_MEMORY) {
    // Past this, better-sqlite3 could not hand the copy over as one Buffer (it would abort
    // the process, not fail).
    throw new WitError('io', `the database is ${length} bytes: the Node host copies it in memory and handles at most ${MOST_BYTES_IN_MEMORY} bytes (the Rust host has no such limit)`);
  }
  let pages;
  try {
    pages = connection.serialize();
  } catch (error) {
    throw sqliteError(error, 'SQLite could not copy the database');
  }
  if (pages.length !== length) {
    throw new WitError('io', `SQLite gave ${pages.length} bytes of the database's ${pageCount} pages of ${pageSize} bytes: the copy was abandoned`);
  }
  markSelfContained(pages, pageCount);
  return pages;
}

function hex(hash) {
  return hash.digest('hex').toUpperCase();
}

/**
 * Writes `bytes` to the temporary `{ fd, path, name }` (its fd is closed), flushes it to disk,
 * and returns their digests `{ md5, sha1, sha256 }` (uppercase hex), computed from the bytes
 * as they are written: one pass, the copy is in memory already. The file's length is checked
 * after the flush.
 */
export function writeFlushedAndDigested(temporary, bytes, backupsPath) {
  const failed = (action, error) => new WitError('io', `cannot ${action} in the backup directory ${backupsPath}: ${error.message}`);
  const digests = threeDigests();
  try {
    let at = 0;
    while (at < bytes.length) {
      const end = Math.min(at + CHUNK, bytes.length);
      const piece = bytes.subarray(at, end);
      let written = 0;
      while (written < piece.length) {
        written += fs.writeSync(temporary.fd, piece, written, piece.length - written, at + written);
      }
      digests.update(piece);
      at = end;
    }
    fs.fsyncSync(temporary.fd);
    const length = fs.fstatSync(temporary.fd).size;
    if (length !== bytes.length) throw new Error(`the copy is ${length} bytes long, ${bytes.length} were written`);
  } catch (error) {
    throw failed('write the copy (disk full or file size limit?)', error);
  } finally {
    fs.closeSync(temporary.fd);
  }
  return digests.hex();
}

/**
 * Opens `name` of the backup directory for reading, without following a symbolic link:
 * `{ fd, path, size }`. `not-found` when there is none, `not-permitted` when it is not a
 * regular file. The caller closes `fd`.
 */
export function openRegular(dir, name) {
  const file = dir.confine(name);
  let fd;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW);
  } catch (error) {
    if (error.code === 'ENOENT') throw new WitError('not-found');
    if (error.code === 'ELOOP') throw new WitError('not-permitted', `${JSON.stringify(name)} is a symbolic link`);
    throw new WitError('io', `cannot open ${file}: ${error.message}`);
  }
  const stat = fs.fstatSync(fd);
  if (!stat.isFile()) {
    fs.closeSync(fd);
    throw new WitError('not-permitted', `${JSON.stringify(name)} is not a regular file`);
  }
  return { fd, path: file, size: stat.size };
}

/**
 * A new directory only this user can enter, in the system's temporary directory (never the
 * backup directory): `{ path, remove() }`.
 */
export function privateDirectory(purpose) {
  let dir;
  try {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `litegraph-backup-${purpose}-`));
    fs.chmodSync(dir, 0o700);
  } catch (error) {
    throw new WitError('io', `cannot create a scratch directory in ${os.tmpdir()}: ${error.message}`);
  }
  return {
    path: dir,
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Copies the file open as `fd` into a new file `destination`, reading it once: returns the
 * SHA-256 (uppercase hex) and length of the bytes read, which are exactly the bytes written.
 * A copy whose header says WAL is then marked a rollback-journal database (after hashing),
 * so that SQLite opens it without -wal/-shm files.
 */
export function copyHashed(fd, destination) {
  const out = fs.openSync(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  const sha256 = crypto.createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  let at = 0;
  let header;
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, CHUNK, at);
      if (n === 0) break;
      const piece = buffer.subarray(0, n);
      sha256.update(piece);
      if (at === 0) header = Buffer.from(piece.subarray(0, HEADER_BYTES));
      let written = 0;
      while (written < n) written += fs.writeSync(out, piece, written, n - written, at + written);
      at += n;
    }
    if (header && header.length >= 20 && header[18] === 2 && header[19] === 2) {
      fs.writeSync(out, Buffer.from([1, 1]), 0, 2, 18);
    }
  } catch (error) {
    throw new WitError('io', `cannot copy the backup into ${path.dirname(destination)} (the temporary directory, TMPDIR, needs room for one copy of the backup): ${error.message}`);
  } finally {
    fs.closeSync(out);
  }
  return { sha256: hex(sha256), length: at };
}

/** SQLite's `*** in database main ***` before a database's findings. */
function isDatabaseHeading(line) {
  return line.startsWith('*** in database') && line.endsWith('***');
}

/** A check's findings one per line (SQLite puts several in one row, after a heading). */
export function onePerLine(rows) {
  return rows
    .flatMap((row) => String(row).split('\n'))
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !isDatabaseHeading(line));
}

/** The first column of every row `sql` answers. */
export function firstColumn(connection, sql) {
  return connection.prepare(sql).pluck().all();
}
