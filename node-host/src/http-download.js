// Backups going out (the Rust server's host/src/http/download.rs): `GET /v1.0/backups/{f}`,
// the BackupFile with `Data` (the file in base64), and `GET /v1.0/backups/{f}/download`, the
// raw file with a single `Range` honoured. Both stream from one file opened O_NOFOLLOW right
// after the policy's `read`, in bounded chunks, with the Content-Length known up front, so
// memory stays flat whatever the size; a file that shrinks meanwhile cuts the connection
// rather than sending fewer bytes than promised.

import fs from 'node:fs';
import path from 'node:path';

import { ApiError, named, toJson, wireBackupFile } from './http-wire.js';

/** Bytes of backup read per chunk: a multiple of 3, so each chunk's base64 has no padding
 * and the chunks' encodings concatenate into one. */
const STREAM_CHUNK_BYTES = 3 * 64 * 1024;

/** The policy's view of a backup and the file opened for reading, with its length. */
async function openBackup(context, name) {
  return named(name, async () => {
    const backup = await context.service.read(name);
    if (context.backups === undefined) {
      throw new ApiError('InternalError', 'the handler was not told where the backups are');
    }
    // The policy accepted the name; it is still checked to be one plain entry here.
    if (name.includes('/') || name.includes('\0') || name === '.' || name === '..') {
      throw new ApiError('BadRequest', 'not a single file name');
    }
    // Node has no openat: the file is reached by path under the directory's path, so that
    // path must still name the directory the service opened (store.rs `check_in_place`).
    const dir = await fs.promises.stat(context.backups).catch(() => undefined);
    const then = context.backupsIdentity;
    if (then && (!dir || dir.dev !== then.dev || dir.ino !== then.ino)) {
      const detail = dir
        ? `the backup directory ${context.backups} was moved or replaced while in use; restart to use the directory now at that path`
        : `the backup directory ${context.backups} was moved or deleted while in use; put it back or restart`;
      throw Object.assign(new Error(detail), { tag: 'io', detail });
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
export async function read(context, req, res, name) {
  const { backup, handle, length } = await openBackup(context, name);
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
export async function download(context, req, res, name) {
  const { backup, handle, length } = await openBackup(context, name);
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
