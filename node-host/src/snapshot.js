// The `snapshot` capability (wit/snapshot.wit): consistent copies of the live database into
// host-named temporaries of the backup directory, SQLite's checks of backup files, the online
// restore and restore drills. The Rust host's host/src/snapshot/ is the specification; what
// differs for lack of `sqlite_dbpage` in better-sqlite3 is said where it is done
// (snapshot-sqlite.js for the copy, snapshot-rebuild.js for the restore).
//
// Every method is synchronous (jco calls imports synchronously) and throws `WitError`. They
// run on the thread of the component (a worker of the service), never on the caller's.

import fs from 'node:fs';
import path from 'node:path';

import Database from 'better-sqlite3';

import { WitError } from './errors.js';
import { attachBackup, countRows, detachBackup, rebuildFromBackup, tableNames } from './snapshot-rebuild.js';
import {
  beginRead,
  beginWrite,
  connectLive,
  copyHashed,
  isCorrupt,
  layoutMismatch,
  layoutOfHeader,
  liveLayout,
  onePerLine,
  openRegular,
  privateDirectory,
  readHeader,
  readPages,
  sqliteError,
  writeFlushedAndDigested,
} from './snapshot-sqlite.js';

/** How long a snapshot waits for a lock on the live database by default (LiteGraph's own). */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;
/** The most `integrity_check` findings a drill collects. */
const MOST_FINDINGS = 100;

/**
 * The `litegraph:backup/snapshot` import for the live database at `database` and the backup
 * directory `dir` (openBackupDir), plus `endOperation()`.
 */
export function createSnapshot({ database, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS, dir }) {
  if (!database) throw new TypeError('createSnapshot needs the live database path');
  if (!dir) throw new TypeError('createSnapshot needs the backup directory');
  const livePath = path.resolve(database);
  /** A restore prepared by takeForRestore: `{ live, layout, backup }`, holding the write lock. */
  let pending;

  /** The live database's pages as `connection`'s open transaction sees them, in a new temporary. */
  function copyToTemporary(connection) {
    const temporary = dir.createTemporary('tmp');
    try {
      const pages = readPages(connection);
      return { temporary, pages };
    } catch (error) {
      fs.closeSync(temporary.fd);
      dir.removeTemporary(temporary.name);
      throw error;
    }
  }

  function finish(temporary, pages) {
    try {
      return { name: temporary.name, digests: writeFlushedAndDigested(temporary, pages, dir.path) };
    } catch (error) {
      dir.removeTemporary(temporary.name);
      throw error;
    }
  }

  /** Opens the live database for a restore from `name`: layout checked, write lock taken. */
  function beginRestore(name) {
    const source = openRegular(dir, name);
    let layout;
    try {
      layout = layoutOfHeader(readHeader(source.fd));
    } finally {
      fs.closeSync(source.fd);
    }
    if (!layout) throw new WitError('corrupt', `${name} is not a SQLite database`);
    const live = connectLive(livePath, busyTimeoutMs, { readonly: false });
    try {
      // The shadow tables of virtual tables (FTS5) are written directly: better-sqlite3's
      // defensive mode would refuse.
      live.unsafeMode(true);
      beginWrite(live, busyTimeoutMs);
      const why = layoutMismatch(layout, liveLayout(live, livePath));
      if (why) throw new WitError('not-permitted', why);
      return { live, layout, backup: name };
    } catch (error) {
      closeQuietly(live);
      throw sqliteError(error);
    }
  }

  return {
    take() {
      dir.checkInPlace();
      // Connect first: without a database, nothing at all is created.
      const source = connectLive(livePath, busyTimeoutMs, { readonly: true });
      let copy;
      try {
        // One read transaction: every page comes from the same commit. It ends as soon as
        // the pages are read; on a rollback-journal database it blocks writers until then.
        beginRead(source, busyTimeoutMs);
        copy = copyToTemporary(source);
        source.exec('COMMIT');
      } catch (error) {
        if (copy) {
          fs.closeSync(copy.temporary.fd);
          dir.removeTemporary(copy.temporary.name);
        }
        throw sqliteError(error);
      } finally {
        closeQuietly(source);
      }
      return finish(copy.temporary, copy.pages);
    },

    check(name, full) {
      dir.checkInPlace();
      const file = openRegular(dir, name);
      let header;
      try {
        header = readHeader(file.fd);
      } finally {
        fs.closeSync(file.fd);
      }
      return withBackupOpen(file.path, header, (connection) => runCheck(connection, full));
    },

    takeForRestore(name) {
      dir.checkInPlace();
      if (pending) throw new WitError('not-permitted', 'a restore is already prepared in this operation');
      const prepared = beginRestore(name);
      try {
        // The safety copy is of the pages the restore's write transaction sees: no commit
        // can land between the copy and the restore.
        const { temporary, pages } = copyToTemporary(prepared.live);
        const made = finish(temporary, pages);
        pending = prepared;
        return made;
      } catch (error) {
        closeQuietly(prepared.live);
        throw sqliteError(error);
      }
    },

    restore(name, sha256) {
      dir.checkInPlace();
      let prepared;
      if (pending && pending.backup !== name) {
        throw new WitError('not-permitted', `this operation prepared the restore of ${JSON.stringify(pending.backup)}, not ${JSON.stringify(name)}`);
      }
      if (pending) {
        prepared = pending;
        pending = undefined;
      } else {
        prepared = beginRestore(name);
      }
      const { live } = prepared;
      let scratch;
      try {
        scratch = privateDirectory('restore');
        // Read through one descriptor, once: exactly these bytes are hashed and restored.
        const copyPath = path.join(scratch.path, 'backup.db');
        const source = openRegular(dir, name);
        let copied;
        try {
          copied = copyHashed(source.fd, copyPath);
        } finally {
          fs.closeSync(source.fd);
        }
        if (copied.sha256.toUpperCase() !== String(sha256).toUpperCase()) {
          throw new WitError('corrupt', `${name} changed since it was verified (SHA-256 now ${copied.sha256}, verified ${sha256}); nothing was restored`);
        }
        if (copied.length === 0 || copied.length % prepared.layout.pageSize !== 0) {
          throw new WitError('corrupt', `the backup's length is not a whole number of ${prepared.layout.pageSize}-byte pages`);
        }
        attachBackup(live, copyPath);
        rebuildFromBackup(live);
        try {
          live.exec('COMMIT');
        } catch (error) {
          const mapped = sqliteError(error);
          throw mapped.tag === 'io' ? new WitError('io', `cannot commit the restore: ${mapped.payload.val}`) : mapped;
        }
        detachBackup(live);
        checkpointAfterRestore(live);
        // The committed result is SQLite's own pages, not the verified bytes: check it.
        runCheck(live, false, 'the restored database');
      } catch (error) {
        rollbackQuietly(live);
        throw sqliteError(error);
      } finally {
        closeQuietly(live);
        scratch?.remove();
      }
    },

    drill(name) {
      dir.checkInPlace();
      return scratchRestore(dir, name);
    },

    /** Ends the operation: rolls back a prepared restore that was not carried out. */
    endOperation() {
      if (pending) {
        rollbackQuietly(pending.live);
        closeQuietly(pending.live);
        pending = undefined;
      }
    },
  };
}

function closeQuietly(connection) {
  try {
    if (connection?.open) connection.close();
  } catch {
    // Closing after a failure: the failure is what is reported.
  }
}

function rollbackQuietly(connection) {
  try {
    if (connection?.open && connection.inTransaction) connection.exec('ROLLBACK');
  } catch {
    // Closing the connection rolls back all the same.
  }
}

/**
 * After a restore in WAL mode, the restored pages are in the WAL: copy them into the database
 * file (PASSIVE never waits), then truncate the WAL when no reader needs it (restore.rs).
 */
function checkpointAfterRestore(live) {
  try {
    live.pragma('wal_checkpoint(PASSIVE)');
    live.pragma('busy_timeout = 0');
    live.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // The restore has committed: the next checkpoint does this work.
  }
}

/**
 * Runs `fn` with a read-only connection to the backup file at `file` that creates nothing
 * beside it. A rollback-journal file is opened where it is; one whose header says WAL would
 * get -wal/-shm files (better-sqlite3 opens no URI, so no `immutable=1`), so such a file is
 * checked through a private copy instead.
 */
function withBackupOpen(file, header, fn) {
  const wal = header.length >= 20 && header[18] === 2 && header[19] === 2;
  let scratch;
  let target = file;
  if (wal) {
    scratch = privateDirectory('check');
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      target = path.join(scratch.path, 'backup.db');
      copyHashed(fd, target);
    } finally {
      fs.closeSync(fd);
    }
  }
  let connection;
  try {
    try {
      connection = new Database(target, { readonly: true, fileMustExist: true });
    } catch (error) {
      if (isCorrupt(error)) throw new WitError('corrupt', error.message);
      throw sqliteError(error);
    }
    return fn(connection);
  } finally {
    closeQuietly(connection);
    scratch?.remove();
  }
}

/**
 * `quick_check` or `integrity_check`: returns when SQLite says "ok", otherwise `corrupt` with
 * its first findings. A file that is not a database at all is `corrupt` too.
 */
function runCheck(connection, full, what) {
  let rows;
  try {
    rows = connection.prepare(full ? 'PRAGMA integrity_check(20)' : 'PRAGMA quick_check(20)').pluck().all();
  } catch (error) {
    if (isCorrupt(error)) throw new WitError('corrupt', what ? `${what}: ${error.message}` : error.message);
    throw sqliteError(error);
  }
  if (rows.length === 1 && rows[0] === 'ok') return;
  const findings = onePerLine(rows).join('; ');
  throw new WitError('corrupt', what ? `${what}: ${findings}` : findings);
}

/** SQLite's full integrity_check: its findings, none when it says "ok". */
function integrityFindings(connection) {
  try {
    const rows = connection.prepare(`PRAGMA integrity_check(${MOST_FINDINGS})`).pluck().all();
    return rows.length === 1 && rows[0] === 'ok' ? [] : onePerLine(rows);
  } catch (error) {
    return [`integrity_check could not run: ${error.message}`];
  }
}

const ENCODING_NAMES = { 1: 'UTF-8', 2: 'UTF-16le', 3: 'UTF-16be' };

/**
 * A drill (drill.rs `scratch_restore`): the backup's bytes, read once and hashed, are
 * restored by the restore's own path into a scratch database in a private directory, which
 * is then checked and counted; the directory is removed on every path out.
 *
 * The findings are those of SQLite's full integrity_check of the backup's bytes (what the
 * Rust host finds in its page-for-page scratch copy), then of the scratch database once
 * restored, then whatever could not be restored.
 */
function scratchRestore(dir, name) {
  const source = openRegular(dir, name);
  let scratch;
  let backup;
  let restored;
  try {
    let layout;
    let copied;
    let copyPath;
    try {
      layout = layoutOfHeader(readHeader(source.fd));
      if (!layout) throw new WitError('corrupt', "not a database: its header is not SQLite's");
      scratch = privateDirectory('drill');
      copyPath = path.join(scratch.path, 'backup.db');
      copied = copyHashed(source.fd, copyPath);
    } finally {
      fs.closeSync(source.fd);
    }
    if (copied.length % layout.pageSize !== 0) {
      throw new WitError('corrupt', `the backup's length is not a whole number of ${layout.pageSize}-byte pages`);
    }
    backup = new Database(copyPath, { readonly: true, fileMustExist: true });
    let names;
    try {
      names = tableNames(backup, 'main');
    } catch (error) {
      if (isCorrupt(error)) throw new WitError('corrupt', `its schema cannot be read: ${error.message}`);
      throw sqliteError(error);
    }
    const integrity = integrityFindings(backup);
    const inBackup = new Map(names.map((table) => [table, countRows(backup, 'main', table)]));
    closeQuietly(backup);

    const scratchPath = path.join(scratch.path, 'drill.db');
    restored = new Database(scratchPath);
    restored.unsafeMode(true); // shadow tables of virtual tables are written directly
    restored.pragma('foreign_keys = OFF');
    restored.pragma(`page_size = ${layout.pageSize}`);
    restored.pragma(`auto_vacuum = ${layout.autoVacuum}`);
    restored.pragma(`encoding = '${ENCODING_NAMES[layout.encoding] ?? 'UTF-8'}'`);
    restored.pragma('synchronous = OFF');
    attachBackup(restored, copyPath);
    const unrestored = rebuildFromBackup(restored, { tolerant: true });
    detachBackup(restored);
    integrity.push(...integrityFindings(restored).map((finding) => `once restored: ${finding}`));
    integrity.push(...unrestored.map((finding) => `not restored: ${finding}`));
    const tables = [];
    for (const table of names) {
      const before = inBackup.get(table);
      if (before.error !== undefined) integrity.push(`table ${table}: its rows cannot be counted in the backup: ${before.error}`);
      const after = countRows(restored, 'main', table);
      if (after.error !== undefined) integrity.push(`table ${table}: its rows cannot be counted once restored: ${after.error}`);
      tables.push({ name: table, inBackup: before.rows, restored: after.rows });
    }
    return { sha256: copied.sha256, integrity, tables };
  } catch (error) {
    throw sqliteError(error);
  } finally {
    closeQuietly(backup);
    closeQuietly(restored);
    scratch?.remove();
  }
}
