// The backup directory: every name the guest hands in is checked again here (`confine`),
// whatever the guest's own rules decided, and symbolic links are never followed (O_NOFOLLOW
// on the last component; the directory's own path is resolved once, when it is opened).
//
// Node has no `openat`, so files are reached by absolute path under the directory's resolved
// path; `checkInPlace` makes sure, once per operation, that this path still names the
// directory that was opened (the Rust host's `check_in_place`).

import fs from 'node:fs';
import path from 'node:path';

import { WitError, fsError } from './errors.js';

/** The prefix of every file the host creates for itself in the backup directory. */
export const TEMPORARY_PREFIX = '.lgb-';
/** How the names of the Rust host's status record begin: never listed, never touched. */
export const STATUS_PREFIX = '.lgb-status';
/** The Rust host's upload journal (a directory): out of the policy's reach. */
const JOURNAL_DIR = '.lgb-uploads';
/** What SQLite keeps beside a database. */
const LIVE_DATABASE_SUFFIXES = ['', '-wal', '-shm', '-journal'];
/** What SQLite may leave beside a temporary it was writing. */
const SQLITE_SIDECARS = ['-journal', '-wal', '-shm'];

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY, O_DIRECTORY } = fs.constants;

let counter = 0;

/**
 * How old (by mtime) a temporary of a dead process must be before it is taken for abandoned:
 * the Rust host's STALE_AFTER.
 */
export const STALE_TEMPORARY_MS = 10_000;

/**
 * Whether process `pid` is alive (or exists under another user: EPERM); only ESRCH says it
 * is gone.
 */
export function processAlive(pid) {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code !== 'ESRCH';
  }
}

/** The pid in a temporary's name (`.lgb-<pid>-<n>-<nanos>.<suffix>`), or undefined. */
export function temporaryOwner(name) {
  const match = /^\.lgb-([1-9][0-9]{0,9})-[0-9]+-[0-9]+\.(?:tmp|part)$/.exec(name);
  if (!match) return undefined;
  const pid = Number(match[1]);
  return pid <= 0x7fffffff ? pid : undefined;
}

/**
 * Removes host temporaries left by a process that died (kill -9, power loss), as the Rust
 * host's `sweep_stale_temporaries` does: Node cannot flock, so a temporary is abandoned when
 * the pid in its name is gone (`kill(pid, 0)` fails with ESRCH) and it was last modified at
 * least `staleAfterMs` ago. A temporary whose pid is alive is never touched (this process's
 * own, or a Rust host's, which that host keeps locked). SQLite's -journal/-wal/-shm beside a
 * `.tmp` that is gone go too once as old. Returns how many files it removed.
 */
export function sweepStaleTemporaries(dirPath, { staleAfterMs = STALE_TEMPORARY_MS, now = Date.now() } = {}) {
  let removed = 0;
  const present = new Set(fs.readdirSync(dirPath));
  const removeIfOld = (name) => {
    const file = path.join(dirPath, name);
    let stat;
    try {
      stat = fs.lstatSync(file);
    } catch {
      return;
    }
    if (!stat.isFile() || now - stat.mtimeMs < staleAfterMs) return;
    try {
      fs.unlinkSync(file);
      removed += 1;
    } catch (error) {
      if (error.code !== 'ENOENT') throw fsError('remove', file, error);
    }
  };
  for (const name of present) {
    if (!name.startsWith(TEMPORARY_PREFIX) || isStatusFile(name)) continue;
    if (isTemporaryName(name)) {
      const pid = temporaryOwner(name);
      if (pid === undefined || processAlive(pid)) continue;
      removeIfOld(name);
    } else {
      const sidecar = SQLITE_SIDECARS.find((suffix) => name.endsWith(suffix));
      if (!sidecar) continue;
      const owner = name.slice(0, -sidecar.length);
      // Only once the temporary it belonged to is gone (swept above, or never there).
      if (owner.endsWith('.tmp') && !fs.existsSync(path.join(dirPath, owner))) removeIfOld(name);
    }
  }
  return removed;
}

/**
 * The host's own check of a name: one ordinary file name, so that no name can address
 * anything but an entry of the directory. Throws `not-permitted`.
 */
export function confineName(name) {
  const refused = (why) => new WitError('not-permitted', `${JSON.stringify(name)}: ${why}`);
  if (typeof name !== 'string' || name.length === 0) throw refused('empty name');
  if (Buffer.byteLength(name, 'utf8') > 255) throw refused('longer than 255 bytes');
  if (name === '.' || name === '..') throw refused('not a file name');
  if (name.includes('/') || name.includes('\0')) throw refused('not a single file name');
  return name;
}

/**
 * Removes a temporary and what SQLite may have left beside it, by its absolute path; a
 * missing file is not an error. For temporaries whose operation ended without `endOperation`
 * (a worker stopped mid-call).
 */
export function removeTemporaryFiles(dirPath, name) {
  if (!isTemporaryName(name)) return;
  confineName(name);
  for (const suffix of ['', ...SQLITE_SIDECARS]) {
    try {
      fs.rmSync(path.join(dirPath, name + suffix), { force: true });
    } catch {
      // Not a file (a directory of that name is not ours): left alone.
    }
  }
}

/** Whether `name` is one of the host's temporaries (`.lgb-*.tmp`, `.lgb-*.part`). */
export function isTemporaryName(name) {
  return name.startsWith(TEMPORARY_PREFIX) && (name.endsWith('.tmp') || name.endsWith('.part'));
}

/** Whether `name` is the host's status record. */
export function isStatusFile(name) {
  return name.startsWith(STATUS_PREFIX);
}

/**
 * Opens an existing backup directory. `options.database`, when given, keeps the live
 * database's own files out of reach if they are in this directory (by name, or by inode for
 * a hard link), as the Rust host's `protect_live_database` does. `options.onTemporary(name)`
 * hears of every temporary created (the service removes them if the worker is stopped).
 */
export function openBackupDir(dirPath, options = {}) {
  let resolved;
  try {
    resolved = fs.realpathSync(dirPath);
  } catch (error) {
    throw fsError('open the backup directory', dirPath, error);
  }
  const identity = fs.statSync(resolved);
  if (!identity.isDirectory()) {
    throw new WitError('io', `the backup directory ${dirPath} is not a directory`);
  }
  return new BackupDir(resolved, identity, liveDatabaseFiles(options.database, resolved, identity), options);
}

function liveDatabaseFiles(database, dirPath, dirStat) {
  if (!database) return { names: [], identity: undefined };
  let resolved;
  try {
    resolved = fs.realpathSync(database);
  } catch {
    try {
      resolved = path.join(fs.realpathSync(path.dirname(path.resolve(database))), path.basename(database));
    } catch {
      return { names: [], identity: undefined };
    }
  }
  let names = [];
  try {
    const parent = fs.statSync(path.dirname(resolved));
    if (parent.dev === dirStat.dev && parent.ino === dirStat.ino) {
      names = LIVE_DATABASE_SUFFIXES.map((suffix) => path.basename(resolved) + suffix);
    }
  } catch {
    // Its directory is gone: nothing of it is in ours.
  }
  let identity;
  try {
    const stat = fs.statSync(resolved);
    if (stat.dev === dirStat.dev) identity = { dev: stat.dev, ino: stat.ino };
  } catch {
    // Not there (yet): only its names can be recognised.
  }
  return { names, identity };
}

class BackupDir {
  #identity;
  #live;
  #temporaries = new Set();
  #inPlace = false;
  #onTemporary;
  #staleAfterMs;

  constructor(resolved, identity, live, { onTemporary = () => {}, staleTemporaryMs = STALE_TEMPORARY_MS } = {}) {
    /** The directory's absolute, resolved path. */
    this.path = resolved;
    this.#identity = identity;
    this.#live = live;
    this.#onTemporary = onTemporary;
    this.#staleAfterMs = staleTemporaryMs;
  }

  /**
   * The absolute path of `name` in the directory, after the host's checks: a single file
   * name, not the live database's own file, not the host's status record or upload journal.
   * Throws `not-permitted`.
   */
  confine(name) {
    confineName(name);
    if (this.isLiveDatabaseFile(name)) {
      throw new WitError('not-permitted', `${JSON.stringify(name)} is the live database's own file, never a backup`);
    }
    if (name === JOURNAL_DIR) {
      throw new WitError('not-permitted', `${JSON.stringify(name)} is the host's upload journal`);
    }
    if (isStatusFile(name)) {
      throw new WitError('not-permitted', `${JSON.stringify(name)} is the host's status record`);
    }
    this.checkInPlace();
    return path.join(this.path, name);
  }

  /** Whether `name` is the live database or one of SQLite's files beside it. */
  isLiveDatabaseFile(name) {
    if (this.#live.names.includes(name)) return true;
    const identity = this.#live.identity;
    if (!identity) return false;
    try {
      const stat = fs.lstatSync(path.join(this.path, name));
      return stat.isFile() && stat.dev === identity.dev && stat.ino === identity.ino;
    } catch {
      return false;
    }
  }

  /**
   * Once per operation, makes sure the directory's path still names the directory that was
   * opened: one moved or deleted under a running server would otherwise go on answering for
   * a directory nobody sees. Throws `io`.
   */
  checkInPlace() {
    if (this.#inPlace) return;
    let now;
    try {
      now = fs.statSync(this.path);
    } catch (error) {
      if (error.code === 'ENOENT') {
        throw new WitError('io', `the backup directory ${this.path} was moved or deleted while in use; put it back or restart`);
      }
      throw new WitError('io', `cannot stat the backup directory ${this.path}: ${error.message}`);
    }
    if (now.dev !== this.#identity.dev || now.ino !== this.#identity.ino) {
      throw new WitError('io', `the backup directory ${this.path} was moved or replaced while in use; restart to use the directory now at that path`);
    }
    this.#inPlace = true;
  }

  /**
   * Creates one of the host's temporaries: a hidden, unique name (`.lgb-<pid>-<n>-<nanos>.<suffix>`,
   * as the Rust host names them), created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600. It
   * belongs to the current operation: `endOperation` removes it unless it was renamed away.
   * Returns `{ name, fd, path }`; the caller closes `fd`. Abandoned temporaries (their
   * process gone, older than the stale age) are removed first, as the Rust host does.
   */
  createTemporary(suffix) {
    this.checkInPlace();
    this.sweepStaleTemporaries();
    for (;;) {
      const nanos = String((Date.now() % 1000) * 1_000_000 + Number(process.hrtime.bigint() % 1_000_000n)).padStart(9, '0');
      const name = `${TEMPORARY_PREFIX}${process.pid}-${counter++}-${nanos}.${suffix}`;
      const file = path.join(this.path, name);
      try {
        const fd = fs.openSync(file, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, 0o600);
        this.#temporaries.add(name);
        this.#onTemporary(name);
        return { name, fd, path: file };
      } catch (error) {
        if (error.code === 'EEXIST') continue;
        throw fsError('create', file, error);
      }
    }
  }

  /**
   * Removes temporaries left by dead processes (see `sweepStaleTemporaries`); returns how
   * many. Never fails the operation that asked: a directory it cannot read is reported by
   * that operation's own next step.
   */
  sweepStaleTemporaries() {
    try {
      return sweepStaleTemporaries(this.path, { staleAfterMs: this.#staleAfterMs });
    } catch (error) {
      process.emitWarning(`litegraph-backup: removing abandoned temporaries: ${error.message}`);
      return 0;
    }
  }

  /** Whether `name` is one of the host's temporaries. */
  isTemporary(name) {
    return isTemporaryName(name);
  }

  /** Removes a temporary of this operation (and SQLite's files beside it), if still there. */
  removeTemporary(name) {
    confineName(name);
    this.#temporaries.delete(name);
    for (const suffix of ['', ...SQLITE_SIDECARS]) {
      try {
        fs.unlinkSync(path.join(this.path, name + suffix));
      } catch (error) {
        if (error.code !== 'ENOENT') throw fsError('remove', path.join(this.path, name + suffix), error);
      }
    }
  }

  /** Forgets a temporary that was renamed away (published): it is no longer ours to remove. */
  published(name) {
    this.#temporaries.delete(name);
  }

  /** The temporaries of the current operation still present. */
  liveTemporaries() {
    return [...this.#temporaries];
  }

  /** Makes a rename or removal durable. Throws `io`. */
  fsyncDir() {
    let fd;
    try {
      fd = fs.openSync(this.path, O_RDONLY | O_DIRECTORY);
      fs.fsyncSync(fd);
    } catch (error) {
      throw new WitError('io', `cannot sync the backup directory ${this.path}: ${error.message}`);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /**
   * Ends the current operation: removes every temporary it created and did not rename away
   * (returns their names), and checks the directory's place again at the next operation.
   */
  endOperation() {
    const left = [...this.#temporaries];
    const failures = [];
    for (const name of left) {
      try {
        this.removeTemporary(name);
      } catch (error) {
        failures.push(error);
      }
    }
    this.#temporaries.clear();
    this.#inPlace = false;
    if (failures.length > 0) throw failures[0];
    return left;
  }
}
