// The `store` capability (wit/store.wit): the backup directory and nothing else. Every name
// is checked again here (`dir.confine`), whatever the guest decided; symbolic links are never
// followed (O_NOFOLLOW, lstat, link(2) without AT_SYMLINK_FOLLOW); anything that is not a
// regular file is `not-found`. Mirrors the Rust host's host/src/store/mod.rs.

import fs from 'node:fs';

import { WitError, fsError } from './errors.js';
import { isStatusFile } from './backup-dir.js';
import { threeDigests } from './digests.js';

/** The most `read` returns and `write` accepts: sidecar metadata, never a backup. */
export const SMALL_FILE_BYTES = 64 * 1024;

/** How much of a file one read of the digest pass takes. */
const DIGEST_CHUNK = 1 << 20;

const { O_RDONLY, O_NOFOLLOW } = fs.constants;
const NANOS = 1_000_000_000n;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A WIT `datetime` from nanoseconds since the epoch (a BigInt); before 1970 is 0. */
export function datetime(nanos) {
  if (nanos < 0n) return { seconds: 0n, nanoseconds: 0 };
  return { seconds: nanos / NANOS, nanoseconds: Number(nanos % NANOS) };
}

/** The WIT `file-stat` of an lstat made with `{ bigint: true }`. */
function fileStat(stat) {
  const modified = datetime(stat.mtimeNs);
  return {
    length: stat.size,
    // Linux reports a birth time of 0 where the filesystem records none.
    created: stat.birthtimeNs > 0n ? datetime(stat.birthtimeNs) : undefined,
    modified,
    accessed: datetime(stat.atimeNs),
  };
}

/**
 * The `litegraph:backup/store` import object for one backup directory (`openBackupDir`).
 * Every function is synchronous and throws `WitError`.
 */
export function createStore(dir) {
  /** Metadata of a regular file, without following links; anything else is `not-found`. */
  function regularFile(name) {
    const file = dir.confine(name);
    let stat;
    try {
      stat = fs.lstatSync(file, { bigint: true });
    } catch (error) {
      throw fsError('stat', name, error);
    }
    if (!stat.isFile()) throw new WitError('not-found');
    return { file, stat };
  }

  /** Opens a regular file for reading; a symbolic link is refused, not followed. */
  function openRegular(name) {
    const file = dir.confine(name);
    let fd;
    try {
      fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW);
    } catch (error) {
      if (error.code === 'ELOOP') throw new WitError('not-found');
      throw fsError('open', name, error);
    }
    try {
      if (!fs.fstatSync(fd).isFile()) throw new WitError('not-found');
    } catch (error) {
      fs.closeSync(fd);
      throw fsError('stat', name, error);
    }
    return { file, fd };
  }

  return {
    now() {
      const ms = BigInt(Date.now());
      return datetime(ms * 1_000_000n);
    },

    list() {
      dir.checkInPlace();
      let entries;
      try {
        entries = fs.readdirSync(dir.path, { withFileTypes: true, encoding: 'buffer' });
      } catch (error) {
        throw new WitError('io', `cannot list the backup directory ${dir.path}: ${error.message}`);
      }
      const names = [];
      for (const entry of entries) {
        if (!entry.isFile()) continue;
        let name;
        try {
          // A name that is not UTF-8 cannot be a backup name: leave it out.
          name = UTF8.decode(entry.name);
        } catch {
          continue;
        }
        if (!dir.isLiveDatabaseFile(name) && !isStatusFile(name)) names.push(name);
      }
      return names;
    },

    stat(name) {
      return fileStat(regularFile(name).stat);
    },

    digests(name) {
      const { file, fd } = openRegular(name);
      const digests = threeDigests();
      const buffer = Buffer.allocUnsafe(DIGEST_CHUNK);
      try {
        for (;;) {
          const n = fs.readSync(fd, buffer, 0, buffer.length, null);
          if (n === 0) break;
          digests.update(buffer.subarray(0, n));
        }
      } catch (error) {
        throw fsError('read', file, error);
      } finally {
        fs.closeSync(fd);
      }
      return digests.hex();
    },

    read(name) {
      const { file, fd } = openRegular(name);
      const buffer = Buffer.alloc(SMALL_FILE_BYTES + 1);
      let length = 0;
      try {
        while (length < buffer.length) {
          const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
          if (n === 0) break;
          length += n;
        }
      } catch (error) {
        throw fsError('read', file, error);
      } finally {
        fs.closeSync(fd);
      }
      if (length > SMALL_FILE_BYTES) {
        // Only metadata is read this way: an oversized one is damaged or planted.
        throw new WitError('io', `cannot read ${file}: larger than ${SMALL_FILE_BYTES} bytes`);
      }
      return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
    },

    write(name, contents) {
      const file = dir.confine(name);
      if (!(name.startsWith('.') && name.endsWith('.meta'))) {
        throw new WitError('not-permitted', `${JSON.stringify(name)}: write is for metadata files (.*.meta) only`);
      }
      if (contents.length > SMALL_FILE_BYTES) {
        throw new WitError('io', `write ${name}: larger than ${SMALL_FILE_BYTES} bytes`);
      }
      const temporary = dir.createTemporary('part');
      try {
        try {
          let written = 0;
          while (written < contents.length) {
            written += fs.writeSync(temporary.fd, contents, written, contents.length - written);
          }
          fs.fsyncSync(temporary.fd);
        } catch (error) {
          throw fsError('write', name, error);
        } finally {
          fs.closeSync(temporary.fd);
        }
        try {
          fs.renameSync(temporary.path, file);
        } catch (error) {
          throw fsError('rename', name, error);
        }
        dir.published(temporary.name);
      } catch (error) {
        dir.removeTemporary(temporary.name);
        throw error;
      }
      dir.fsyncDir();
    },

    renameNoreplace(source, target) {
      const { file: from } = regularFile(source);
      const to = dir.confine(target);
      // link(2) never replaces its target and, without AT_SYMLINK_FOLLOW, never follows a
      // link at the source; only once the new name exists is the old one removed.
      try {
        fs.linkSync(from, to);
      } catch (error) {
        throw fsError('rename', source, error);
      }
      try {
        fs.unlinkSync(from);
      } catch (error) {
        throw fsError('remove', source, error);
      }
      if (dir.isTemporary(source)) dir.published(source);
      dir.fsyncDir();
    },

    remove(name) {
      const { file } = regularFile(name);
      try {
        fs.unlinkSync(file);
      } catch (error) {
        throw fsError('remove', file, error);
      }
      dir.fsyncDir();
    },
  };
}
