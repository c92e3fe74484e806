// The store capability on its own (no component): the host's line, whatever a guest asks.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';

import { openBackupDir } from '../src/backup-dir.js';
import { WitError } from '../src/errors.js';
import { SMALL_FILE_BYTES, createStore } from '../src/store.js';
import { tempDir, tree } from './helpers.js';

/**
 * A backup directory with things to steal beside it (as tests/it/hostile.rs baits them): a
 * file inside, files outside, a link to a file outside and one to the directory above.
 */
function bait(t) {
  const root = tempDir(t);
  const backups = path.join(root, 'backups');
  fs.mkdirSync(backups);
  fs.writeFileSync(path.join(root, 'outside.txt'), 'outside');
  fs.writeFileSync(path.join(root, 'victim.txt'), 'victim');
  fs.writeFileSync(path.join(backups, 'inside.txt'), 'inside');
  fs.symlinkSync(path.join(root, 'outside.txt'), path.join(backups, 'link.db'));
  fs.symlinkSync(root, path.join(backups, 'dirlink'));
  const dir = openBackupDir(backups);
  return { root, backups, dir, store: createStore(dir) };
}

/** Calls `fn` and returns the WitError's payload it threw (fails if it did not). */
function refusal(fn) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof WitError, `a WitError, not ${error}`);
    return error.payload;
  }
  assert.fail('expected a refusal');
}

const HOSTILE_NAMES = ['../x', '/etc/passwd', 'a/b', '.', '..', '', 'inside.txt\0/../../etc/passwd', 'x'.repeat(256), 'é'.repeat(128)];

describe('store: names', () => {
  test('every hostile name is refused with not-permitted by every call, and nothing changes on disk', (t) => {
    const { root, store } = bait(t);
    const before = tree(root);
    const calls = {
      stat: (name) => store.stat(name),
      digests: (name) => store.digests(name),
      read: (name) => store.read(name),
      write: (name) => store.write(name, new Uint8Array([1])),
      'rename from': (name) => store.renameNoreplace(name, 'stolen.txt'),
      'rename to': (name) => store.renameNoreplace('inside.txt', name),
      remove: (name) => store.remove(name),
    };
    for (const name of HOSTILE_NAMES) {
      for (const [what, call] of Object.entries(calls)) {
        const payload = refusal(() => call(name));
        assert.equal(payload.tag, 'not-permitted', `${what} ${JSON.stringify(name)}: ${JSON.stringify(payload)}`);
      }
    }
    assert.deepEqual(tree(root), before);
  });

  test('names at the limit are accepted: 255 bytes, a backslash, a leading dot-dot', (t) => {
    const { backups, store } = bait(t);
    for (const name of ['x'.repeat(255), 'a\\b', '..x']) {
      fs.writeFileSync(path.join(backups, name), name);
      assert.equal(store.stat(name).length, BigInt(Buffer.byteLength(name)));
    }
  });

  test("the host's status record and upload journal are out of reach", (t) => {
    const { backups, store } = bait(t);
    fs.writeFileSync(path.join(backups, '.lgb-status.json'), '{}');
    assert.equal(refusal(() => store.read('.lgb-status.json')).tag, 'not-permitted');
    assert.equal(refusal(() => store.write('.lgb-status.json', new Uint8Array())).tag, 'not-permitted');
    assert.equal(refusal(() => store.renameNoreplace('inside.txt', '.lgb-uploads')).tag, 'not-permitted');
    assert.ok(!store.list().includes('.lgb-status.json'));
  });

  test("the live database's own files are never listed or touched when they share the directory", (t) => {
    const root = tempDir(t);
    const database = path.join(root, 'live.db');
    for (const suffix of ['', '-wal', '-shm', '-journal']) fs.writeFileSync(database + suffix, 'live');
    fs.linkSync(database, path.join(root, 'hardlink.db'));
    fs.writeFileSync(path.join(root, 'backup.db'), 'backup');
    const store = createStore(openBackupDir(root, { database }));
    assert.deepEqual(store.list(), ['backup.db']);
    for (const name of ['live.db', 'live.db-wal', 'live.db-shm', 'live.db-journal', 'hardlink.db']) {
      assert.equal(refusal(() => store.remove(name)).tag, 'not-permitted', name);
      assert.equal(refusal(() => store.read(name)).tag, 'not-permitted', name);
    }
    assert.equal(fs.readFileSync(database, 'utf8'), 'live');
  });
});

describe('store: symbolic links', () => {
  test('a link in the directory is neither listed nor read nor followed', (t) => {
    const { root, store } = bait(t);
    const before = tree(root);
    assert.deepEqual(store.list().sort(), ['inside.txt']);
    for (const name of ['link.db', 'dirlink']) {
      assert.equal(refusal(() => store.stat(name)).tag, 'not-found', `stat ${name}`);
      assert.equal(refusal(() => store.read(name)).tag, 'not-found', `read ${name}`);
      assert.equal(refusal(() => store.digests(name)).tag, 'not-found', `digests ${name}`);
      assert.equal(refusal(() => store.remove(name)).tag, 'not-found', `remove ${name}`);
      assert.equal(refusal(() => store.renameNoreplace(name, 'followed.db')).tag, 'not-found', `rename ${name}`);
    }
    // A link in the way of a rename is a name taken: never replaced, never followed.
    assert.equal(refusal(() => store.renameNoreplace('inside.txt', 'link.db')).tag, 'exist');
    assert.deepEqual(tree(root), before);
  });

  test('a metadata write over a link replaces the link, never the file it points to', (t) => {
    const { root, backups, store } = bait(t);
    fs.symlinkSync(path.join(root, 'victim.txt'), path.join(backups, '.victim.meta'));
    store.write('.victim.meta', new TextEncoder().encode('record'));
    assert.equal(fs.readFileSync(path.join(root, 'victim.txt'), 'utf8'), 'victim');
    assert.ok(fs.lstatSync(path.join(backups, '.victim.meta')).isFile());
    assert.equal(fs.readFileSync(path.join(backups, '.victim.meta'), 'utf8'), 'record');
  });
});

describe('store: files', () => {
  test('list names regular files only', (t) => {
    const { backups, store } = bait(t);
    fs.mkdirSync(path.join(backups, 'sub.db'));
    // A name that is not UTF-8 cannot be a backup's: left out.
    fs.writeFileSync(Buffer.concat([Buffer.from(`${backups}/not-utf8-`), Buffer.from([0xff]), Buffer.from('.db')]), 'x');
    assert.equal(fs.readdirSync(backups).length, 5);
    const listed = store.list();
    assert.deepEqual(listed, ['inside.txt']);
  });

  test("stat gives the file's length and times as the filesystem has them", (t) => {
    const { backups, store } = bait(t);
    const file = path.join(backups, 'inside.txt');
    fs.utimesSync(file, new Date('2025-05-27T03:31:10.250Z'), new Date('2025-05-27T03:31:11.500Z'));
    const stat = store.stat('inside.txt');
    assert.equal(stat.length, 6n);
    assert.deepEqual(stat.modified, { seconds: 1748316671n, nanoseconds: 500_000_000 });
    assert.deepEqual(stat.accessed, { seconds: 1748316670n, nanoseconds: 250_000_000 });
    assert.equal(refusal(() => store.stat('missing.db')).tag, 'not-found');
    assert.equal(refusal(() => store.stat('dirlink')).tag, 'not-found');
  });

  test("digests are the content's MD5, SHA-1 and SHA-256 in uppercase hex, across read chunks", (t) => {
    const { backups, store } = bait(t);
    const bytes = crypto.randomBytes((3 << 20) + 12345);
    fs.writeFileSync(path.join(backups, 'big.db'), bytes);
    const hex = (algorithm) => crypto.createHash(algorithm).update(bytes).digest('hex').toUpperCase();
    assert.deepEqual(store.digests('big.db'), { md5: hex('md5'), sha1: hex('sha1'), sha256: hex('sha256') });
    assert.deepEqual(store.digests('inside.txt').md5, crypto.createHash('md5').update('inside').digest('hex').toUpperCase());
  });

  test('read returns a small file whole and refuses one over 64 KiB with io', (t) => {
    const { backups, store } = bait(t);
    fs.writeFileSync(path.join(backups, '.full.meta'), Buffer.alloc(SMALL_FILE_BYTES, 7));
    fs.writeFileSync(path.join(backups, '.over.meta'), Buffer.alloc(SMALL_FILE_BYTES + 1, 7));
    assert.equal(store.read('.full.meta').length, SMALL_FILE_BYTES);
    assert.deepEqual([...store.read('inside.txt')], [...Buffer.from('inside')]);
    const over = refusal(() => store.read('.over.meta'));
    assert.equal(over.tag, 'io');
    assert.match(over.val, /larger than 65536 bytes/);
  });

  test('write is for hidden .meta files only, at most 64 KiB, and leaves no temporary', (t) => {
    const { root, backups, store } = bait(t);
    const before = tree(root);
    for (const name of ['inside.txt', 'x.meta', '.x', 'real.db']) {
      assert.equal(refusal(() => store.write(name, new Uint8Array([1]))).tag, 'not-permitted', name);
    }
    assert.equal(refusal(() => store.write('.big.meta', new Uint8Array(SMALL_FILE_BYTES + 1))).tag, 'io');
    assert.deepEqual(tree(root), before);
    store.write('.a.meta', new TextEncoder().encode('first'));
    store.write('.a.meta', new TextEncoder().encode('second'));
    assert.equal(fs.readFileSync(path.join(backups, '.a.meta'), 'utf8'), 'second');
    assert.deepEqual(
      fs.readdirSync(backups).filter((name) => name.startsWith('.lgb-')),
      [],
      'no temporary left',
    );
  });

  test('rename-noreplace never replaces: exist, and both files as they were', (t) => {
    const { backups, store } = bait(t);
    fs.writeFileSync(path.join(backups, 'other.db'), 'other');
    assert.equal(refusal(() => store.renameNoreplace('inside.txt', 'other.db')).tag, 'exist');
    assert.equal(fs.readFileSync(path.join(backups, 'inside.txt'), 'utf8'), 'inside');
    assert.equal(fs.readFileSync(path.join(backups, 'other.db'), 'utf8'), 'other');
    store.renameNoreplace('inside.txt', 'renamed.db');
    assert.ok(!fs.existsSync(path.join(backups, 'inside.txt')));
    assert.equal(fs.readFileSync(path.join(backups, 'renamed.db'), 'utf8'), 'inside');
    assert.equal(refusal(() => store.renameNoreplace('missing.db', 'x.db')).tag, 'not-found');
  });

  test('remove takes regular files only', (t) => {
    const { backups, store } = bait(t);
    fs.mkdirSync(path.join(backups, 'sub'));
    assert.equal(refusal(() => store.remove('sub')).tag, 'not-found');
    assert.equal(refusal(() => store.remove('missing.db')).tag, 'not-found');
    store.remove('inside.txt');
    assert.ok(!fs.existsSync(path.join(backups, 'inside.txt')));
    assert.ok(fs.statSync(path.join(backups, 'sub')).isDirectory());
  });

  test('now is the wall clock', () => {
    const store = createStore({});
    const before = BigInt(Math.floor(Date.now() / 1000));
    const now = store.now();
    assert.ok(now.seconds >= before && now.seconds <= before + 1n);
    assert.ok(now.nanoseconds >= 0 && now.nanoseconds < 1e9);
  });
});

describe('backup directory', () => {
  test("temporaries are hidden, created exclusively, 0600, and removed when the operation ends unless published", (t) => {
    const { backups, dir } = bait(t);
    const kept = dir.createTemporary('tmp');
    const dropped = dir.createTemporary('tmp');
    for (const temporary of [kept, dropped]) {
      assert.match(temporary.name, new RegExp(`^\\.lgb-${process.pid}-\\d+-\\d{9}\\.tmp$`));
      assert.equal(fs.statSync(temporary.path).mode & 0o777, 0o600);
      fs.closeSync(temporary.fd);
    }
    const store = createStore(dir);
    store.renameNoreplace(kept.name, 'published.db');
    fs.writeFileSync(`${dropped.path}-journal`, 'sqlite left this');
    assert.deepEqual(dir.endOperation(), [dropped.name]);
    assert.deepEqual(fs.readdirSync(backups).sort(), ['dirlink', 'inside.txt', 'link.db', 'published.db']);
  });

  test('a backup directory moved away while in use is an io error, not a silent empty listing', (t) => {
    const { root, backups, dir } = bait(t);
    const store = createStore(dir);
    dir.endOperation();
    fs.renameSync(backups, path.join(root, 'moved'));
    fs.mkdirSync(backups);
    const payload = refusal(() => store.list());
    assert.equal(payload.tag, 'io');
    assert.match(payload.val, /moved or replaced/);
  });
});
