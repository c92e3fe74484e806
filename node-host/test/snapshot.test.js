// The snapshot capability (src/snapshot.js) on real SQLite files, called directly as the
// component calls it: take, check, takeForRestore + restore, drill.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import Database from 'better-sqlite3';

import { openBackupDir } from '../src/backup-dir.js';
import { WitError } from '../src/errors.js';
import { createSnapshot } from '../src/snapshot.js';
import { CLI, PACKAGE_DIR, contentDigest, createLitegraphDatabaseOfSize, integrity, rowCounts, runCli, tempDir, workspace } from './helpers.js';

/** The live database, the backup directory and the capability over them. */
function setup(t, { nodes = 50, journal = 'wal', busyTimeoutMs } = {}) {
  const ws = workspace(t, { nodes });
  if (journal !== 'wal' && nodes !== null) {
    const db = new Database(ws.database);
    db.pragma(`journal_mode = ${journal}`);
    db.close();
  }
  const dir = openBackupDir(ws.backups, { database: ws.database });
  const snapshot = createSnapshot({ database: ws.database, dir, busyTimeoutMs });
  t.after(() => {
    snapshot.endOperation();
    dir.endOperation();
  });
  return { ...ws, dir, snapshot };
}

/** What the call threw, as the guest would receive it: the WIT error variant. */
function thrown(call) {
  try {
    call();
  } catch (error) {
    assert.ok(error instanceof WitError, `a WitError, not ${error?.stack ?? error}`);
    return error.payload;
  }
  assert.fail('the call did not fail');
}

/** The digests of a file, computed here independently of the host (as `sha256sum` would). */
function independentDigests(file) {
  const bytes = fs.readFileSync(file);
  const hex = (algorithm) => crypto.createHash(algorithm).update(bytes).digest('hex').toUpperCase();
  return { md5: hex('md5'), sha1: hex('sha1'), sha256: hex('sha256') };
}

/** Publishes a temporary under a final name, as the guest does with store.rename-noreplace. */
function publish(env, temporary, name) {
  fs.linkSync(path.join(env.backups, temporary), path.join(env.backups, name));
  fs.unlinkSync(path.join(env.backups, temporary));
  env.dir.published(temporary);
  return path.join(env.backups, name);
}

/** Opens a copy read-write, reads it, closes it: then lists what SQLite left beside it. */
function openedSidecars(file) {
  const db = new Database(file, { fileMustExist: true });
  db.prepare("SELECT count(*) FROM sqlite_schema").get();
  const during = fs.readdirSync(path.dirname(file)).filter((n) => n.startsWith(path.basename(file)) && n !== path.basename(file));
  db.close();
  return during;
}

/** A child process running `code` (CommonJS; `Database` is better-sqlite3): lines it prints. */
function child(t, code) {
  const script = `const Database = require('module').createRequire(${JSON.stringify(path.join(PACKAGE_DIR, 'package.json'))})('better-sqlite3');\n${code}`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => proc.kill());
  let buffered = '';
  const waiting = [];
  const lines = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (data) => {
    buffered += data;
    let at;
    while ((at = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, at));
      buffered = buffered.slice(at + 1);
    }
    for (const w of [...waiting]) if (lines.includes(w.line)) { waiting.splice(waiting.indexOf(w), 1); w.resolve(); }
  });
  return {
    proc,
    lines,
    /** Resolves once the child has printed `line`. */
    said(line) {
      if (lines.includes(line)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        waiting.push({ line, resolve });
        proc.once('exit', (code) => reject(new Error(`the child exited (${code}) before saying ${line}`)));
      });
    },
  };
}

test('take copies a WAL database: sound, self-contained, digests of its bytes, the same rows', (t) => {
  const env = setup(t, { nodes: 300 });
  const taken = env.snapshot.take();
  assert.ok(env.dir.isTemporary(taken.name), taken.name);
  const copy = path.join(env.backups, taken.name);
  assert.deepEqual(taken.digests, independentDigests(copy));
  const bytes = fs.readFileSync(copy);
  assert.deepEqual([bytes[18], bytes[19]], [1, 1], 'a rollback-journal header');
  assert.equal(bytes.readUInt32BE(92), bytes.readUInt32BE(24), 'the header page count is trusted');
  assert.equal(integrity(copy), 'ok');
  assert.deepEqual(openedSidecars(copy), [], 'no -wal/-shm/-journal after opening the copy');
  assert.equal(contentDigest(copy), contentDigest(env.database));
  assert.deepEqual(rowCounts(copy), rowCounts(env.database));
});

test('take copies a rollback-journal database page for page', (t) => {
  const env = setup(t, { nodes: 300, journal: 'delete' });
  const taken = env.snapshot.take();
  const copy = path.join(env.backups, taken.name);
  assert.deepEqual(taken.digests, independentDigests(copy));
  const live = fs.readFileSync(env.database);
  const bytes = fs.readFileSync(copy);
  assert.equal(bytes.length, live.length);
  // Page 1 differs only where a self-contained copy must (bytes 92-95 are already equal to
  // the change counter in a rollback-journal database); every other page is the source's.
  assert.ok(bytes.equals(live), 'the copy is the live file byte for byte');
  assert.equal(integrity(copy), 'ok');
  assert.deepEqual(openedSidecars(copy), []);
});

// Regression (found in the Rust host by its operator review, the same here): SQLite before
// 3.7.0 leaves the header's page count (bytes 28-31) stale and marks it untrusted (bytes
// 92-95 differ from the change counter); a copy that marked it trusted unchanged claimed to
// be half its size.
test('take writes the true page count into a header whose count is stale', (t) => {
  const env = setup(t, { nodes: 300, journal: 'delete' });
  const header = Buffer.alloc(100);
  const fd = fs.openSync(env.database, 'r+');
  try {
    fs.readSync(fd, header, 0, 100, 0);
    const pages = header.readUInt32BE(28);
    assert.ok(pages > 4, `several pages: ${pages}`);
    header.writeUInt32BE(Math.floor(pages / 2), 28);
    header.writeUInt32BE((header.readUInt32BE(24) - 1) >>> 0, 92);
    fs.writeSync(fd, header, 0, 100, 0);
  } finally {
    fs.closeSync(fd);
  }
  assert.equal(integrity(env.database), 'ok', 'SQLite reads the source whole, by its size');
  const taken = env.snapshot.take();
  const copy = path.join(env.backups, taken.name);
  const bytes = fs.readFileSync(copy);
  assert.equal(bytes.readUInt32BE(28) * 4096, bytes.length, 'the header says the true size');
  assert.equal(integrity(copy), 'ok');
  assert.deepEqual(rowCounts(copy), rowCounts(env.database));
  assert.deepEqual(taken.digests, independentDigests(copy));
});

test('take keeps pages that are only in the WAL, and checkpoints nothing', (t) => {
  const env = setup(t, { nodes: 20 });
  const writer = new Database(env.database);
  writer.pragma('wal_autocheckpoint = 0');
  writer.exec("CREATE TABLE only_in_wal(x); INSERT INTO only_in_wal VALUES ('w')");
  const walBefore = fs.statSync(`${env.database}-wal`).size;
  const taken = env.snapshot.take();
  const copy = new Database(path.join(env.backups, taken.name), { readonly: true });
  assert.deepEqual(copy.prepare('SELECT x FROM only_in_wal').pluck().all(), ['w']);
  copy.close();
  assert.equal(fs.statSync(`${env.database}-wal`).size, walBefore, 'the WAL was not checkpointed');
  writer.close();
});

test('take of a missing database is no-database and creates nothing', (t) => {
  const env = setup(t, { nodes: null });
  const error = thrown(() => env.snapshot.take());
  assert.equal(error.tag, 'no-database');
  assert.match(error.val, /does not exist/);
  assert.equal(fs.existsSync(env.database), false, 'no database was created');
  assert.deepEqual(fs.readdirSync(env.root).sort(), ['backups']);
  assert.deepEqual(fs.readdirSync(env.backups), []);
});

test('take of a file that is not a database is no-database and leaves nothing', (t) => {
  const env = setup(t, { nodes: null });
  fs.writeFileSync(env.database, 'not a database, only text '.repeat(400));
  const before = fs.readFileSync(env.database);
  const error = thrown(() => env.snapshot.take());
  assert.equal(error.tag, 'no-database');
  assert.match(error.val, /not a SQLite database/);
  assert.deepEqual(fs.readdirSync(env.backups), []);
  assert.ok(fs.readFileSync(env.database).equals(before));
});

test('take of a database another process holds exclusively is busy and leaves nothing', async (t) => {
  const env = setup(t, { nodes: 20, journal: 'delete', busyTimeoutMs: 300 });
  const holder = child(t, `
    const db = new Database(${JSON.stringify(env.database)});
    db.exec('BEGIN EXCLUSIVE');
    db.exec('UPDATE tenants SET name = name');
    console.log('locked');
    process.stdin.on('end', () => { db.exec('ROLLBACK'); console.log('released'); process.exit(0); });
    process.stdin.resume();`);
  await holder.said('locked');
  assert.deepEqual(thrown(() => env.snapshot.take()), { tag: 'busy' });
  assert.deepEqual(fs.readdirSync(env.backups), [], 'nothing left in the backup directory');
  holder.proc.stdin.end();
  await holder.said('released');
  const taken = env.snapshot.take();
  assert.equal(integrity(path.join(env.backups, taken.name)), 'ok', 'and once released, a copy');
});

/** The accounts a transfer writer moves money between, and the invariant every copy keeps. */
const ACCOUNTS = 8;
const OPENING = 1_000_000;

function createLedger(file, journal) {
  const db = new Database(file);
  db.pragma(`journal_mode = ${journal}`);
  db.exec(`CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
           CREATE TABLE transfers(id INTEGER PRIMARY KEY, source INTEGER, target INTEGER, amount INTEGER, memo BLOB)`);
  const insert = db.prepare('INSERT INTO accounts VALUES (?, ?)');
  for (let i = 0; i < ACCOUNTS; i++) insert.run(i, OPENING);
  // Bulk, so that a copy takes a while: 16 MiB of past transfers.
  const past = db.prepare('INSERT INTO transfers(source, target, amount, memo) VALUES (0, 0, 0, randomblob(4000))');
  db.transaction(() => { for (let i = 0; i < 4000; i++) past.run(); })();
  db.close();
}

/** Balances agree with the transfers, and the total is what it was: one consistent moment. */
function ledgerConsistent(file) {
  const db = new Database(file, { readonly: true });
  try {
    const total = db.prepare('SELECT sum(balance) FROM accounts').pluck().get();
    const mismatched = db.prepare(`SELECT count(*) FROM accounts a WHERE a.balance != ${OPENING}
      + coalesce((SELECT sum(amount) FROM transfers WHERE target = a.id), 0)
      - coalesce((SELECT sum(amount) FROM transfers WHERE source = a.id), 0)`).pluck().get();
    return { total, mismatched, transfers: db.prepare('SELECT count(*) FROM transfers').pluck().get() };
  } finally {
    db.close();
  }
}

/** A worker thread committing transfers until told to stop; `commits[0]` counts them. */
function startTransferWriter(t, file) {
  const shared = new Int32Array(new SharedArrayBuffer(8)); // [commits, stop]
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads');
    const Database = require('node:module').createRequire(workerData.pkg)('better-sqlite3');
    const db = new Database(workerData.file, { timeout: 30000 });
    const insert = db.prepare('INSERT INTO transfers(source, target, amount) VALUES (?, ?, ?)');
    const debit = db.prepare('UPDATE accounts SET balance = balance - ? WHERE id = ?');
    const credit = db.prepare('UPDATE accounts SET balance = balance + ? WHERE id = ?');
    const transfer = db.transaction((s, d, a) => { insert.run(s, d, a); debit.run(a, s); credit.run(a, d); });
    let n = 0;
    while (Atomics.load(workerData.shared, 1) === 0) {
      const s = n % ${ACCOUNTS}, d = (n * 7 + 3) % ${ACCOUNTS}, a = 1 + (n % 97);
      transfer(s, d, a);
      Atomics.add(workerData.shared, 0, 1);
      n++;
    }
    db.close();
  `, { eval: true, workerData: { file, shared, pkg: path.join(PACKAGE_DIR, 'package.json') } });
  let failure;
  worker.on('error', (error) => { failure = error; });
  const stop = async () => {
    Atomics.store(shared, 1, 1);
    if (worker.threadId !== -1) await once(worker, 'exit');
    assert.equal(failure, undefined, `the writer failed: ${failure?.stack}`);
  };
  t.after(() => Atomics.store(shared, 1, 1));
  return { commits: () => Atomics.load(shared, 0), stop };
}

/** Waits (without sleeping a fixed time) until the writer has committed `n` more transfers. */
async function committed(writer, n) {
  const target = writer.commits() + n;
  while (writer.commits() < target) await new Promise((resolve) => setImmediate(resolve));
}

for (const journal of ['wal', 'delete']) {
  test(`copies made while a writer commits transfers are each one consistent moment (${journal})`, async (t) => {
    const root = tempDir(t);
    const database = path.join(root, 'ledger.db');
    fs.mkdirSync(path.join(root, 'backups'));
    createLedger(database, journal);
    const dir = openBackupDir(path.join(root, 'backups'), { database });
    const snapshot = createSnapshot({ database, dir });
    t.after(() => dir.endOperation());
    const writer = startTransferWriter(t, database);
    await committed(writer, 20);
    let during = 0;
    const copies = [];
    for (let i = 0; i < 3; i++) {
      const before = writer.commits();
      // take() blocks this thread for the whole copy; the writer's thread goes on.
      copies.push(snapshot.take());
      if (journal === 'wal') during += writer.commits() > before ? 1 : 0;
      await committed(writer, 5);
    }
    await writer.stop();
    for (const taken of copies) {
      const copy = path.join(dir.path, taken.name);
      assert.equal(integrity(copy), 'ok');
      const ledger = ledgerConsistent(copy);
      assert.equal(ledger.total, ACCOUNTS * OPENING, 'money neither made nor lost');
      assert.equal(ledger.mismatched, 0, 'every balance agrees with the transfers');
    }
    const counts = copies.map((c) => ledgerConsistent(path.join(dir.path, c.name)).transfers);
    assert.ok(counts[0] < counts[1] && counts[1] < counts[2], `later copies hold more transfers: ${counts}`);
    if (journal === 'wal') assert.ok(during > 0, 'the writer committed while a copy was being made (WAL never blocks it)');
  });
}

test('check passes a sound backup, finds damage, refuses what is not a database, and creates nothing', (t) => {
  const env = setup(t, { nodes: 300 });
  const good = publish(env, env.snapshot.take().name, 'good.db');
  env.snapshot.check('good.db', false);
  env.snapshot.check('good.db', true);
  const damaged = path.join(env.backups, 'damaged.db');
  const bytes = fs.readFileSync(good);
  bytes.fill(0xa5, 8 * 4096, 9 * 4096);
  fs.writeFileSync(damaged, bytes);
  const found = thrown(() => env.snapshot.check('damaged.db', true));
  assert.equal(found.tag, 'corrupt');
  assert.ok(found.val.length > 0);
  fs.writeFileSync(path.join(env.backups, 'text.db'), 'hello '.repeat(1000));
  assert.equal(thrown(() => env.snapshot.check('text.db', false)).tag, 'corrupt');
  assert.deepEqual(thrown(() => env.snapshot.check('missing.db', false)), { tag: 'not-found' });
  fs.symlinkSync(good, path.join(env.backups, 'link.db'));
  assert.equal(thrown(() => env.snapshot.check('link.db', false)).tag, 'not-permitted');
  assert.equal(thrown(() => env.snapshot.check('../good.db', false)).tag, 'not-permitted');
  // A file copied in by hand from a WAL database: its header says WAL.
  fs.copyFileSync(env.database, path.join(env.backups, 'wal-header.db'));
  const walCopy = new Database(env.database);
  walCopy.pragma('wal_checkpoint(TRUNCATE)');
  walCopy.close();
  fs.copyFileSync(env.database, path.join(env.backups, 'wal-header.db'));
  env.snapshot.check('wal-header.db', true);
  assert.deepEqual(
    fs.readdirSync(env.backups).sort(),
    ['damaged.db', 'good.db', 'link.db', 'text.db', 'wal-header.db'],
    'no -wal, -shm or -journal beside any checked file',
  );
});

/** A LiteGraph node row added to the live database, as a server would. */
function addNode(file, name) {
  const db = new Database(file, { timeout: 10000 });
  db.prepare("INSERT INTO nodes VALUES (?, 't', 'g', ?, '{}', 'now', 'now')").run(`guid-${name}`, name);
  db.close();
}

function nodeNames(file) {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT name FROM nodes WHERE guid LIKE 'guid-%' ORDER BY name").pluck().all();
  } finally {
    db.close();
  }
}

test('restore round trip: the safety copy holds every commit before it, the live database the backup, and a commit waiting meanwhile lands after', async (t) => {
  const env = setup(t, { nodes: 200 });
  addNode(env.database, 'before-backup');
  const backup = env.snapshot.take();
  const backupPath = publish(env, backup.name, 'b1.db');
  const backupContent = contentDigest(backupPath);
  // Acknowledged commits after the backup, and a table the backup does not have.
  addNode(env.database, 'after-backup');
  const extra = new Database(env.database);
  extra.exec("CREATE TABLE added_later(x); INSERT INTO added_later VALUES (1)");
  extra.close();
  env.snapshot.check('b1.db', true);

  const safety = env.snapshot.takeForRestore('b1.db');
  const safetyPath = publish(env, safety.name, 'safety.db');
  assert.deepEqual(safety.digests, independentDigests(safetyPath));
  assert.deepEqual(nodeNames(safetyPath), ['after-backup', 'before-backup'], 'the safety copy holds every commit');
  // A writer that tries to commit while the restore is prepared waits for it.
  const writer = child(t, `
    const db = new Database(${JSON.stringify(env.database)}, { timeout: 20000 });
    console.log('trying');
    db.prepare("INSERT INTO nodes VALUES ('guid-during', 't', 'g', 'during-restore', '{}', 'now', 'now')").run();
    console.log('committed');
    db.close();`);
  await writer.said('trying');
  env.snapshot.restore('b1.db', backup.digests.sha256);
  env.snapshot.endOperation();
  await writer.said('committed');
  assert.equal(integrity(env.database), 'ok');
  assert.deepEqual(nodeNames(env.database), ['before-backup', 'during-restore'], "the backup's rows, then the waiting commit");
  const live = new Database(env.database, { readonly: true });
  assert.equal(live.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'added_later'").pluck().get(), 0, 'the table added since is gone');
  live.close();
  // Without the commit that waited, the live content is the backup's, row for row.
  const withoutWaiting = new Database(env.database);
  withoutWaiting.exec("DELETE FROM nodes WHERE guid = 'guid-during'");
  withoutWaiting.close();
  assert.equal(contentDigest(env.database), backupContent, "the live database holds the backup's content");
  addNode(env.database, 'after-restore');
  assert.deepEqual(nodeNames(env.database), ['after-restore', 'before-backup']);
});

test('restore refuses a backup whose SHA-256 is not the one verified, and changes nothing', (t) => {
  const env = setup(t, { nodes: 100 });
  publish(env, env.snapshot.take().name, 'b1.db');
  addNode(env.database, 'after-backup');
  const before = contentDigest(env.database);
  env.snapshot.takeForRestore('b1.db');
  const error = thrown(() => env.snapshot.restore('b1.db', '0'.repeat(64)));
  assert.equal(error.tag, 'corrupt');
  assert.match(error.val, /changed since it was verified/);
  env.snapshot.endOperation();
  assert.equal(contentDigest(env.database), before);
  assert.deepEqual(nodeNames(env.database), ['after-backup']);
  // And the live database is writable again: the restore's lock is gone.
  addNode(env.database, 'after-refusal');
});

test('restore refuses a backup of another page size before copying anything', (t) => {
  const env = setup(t, { nodes: 20 });
  const other = new Database(path.join(env.backups, 'big-pages.db'));
  other.pragma('page_size = 8192');
  other.exec('CREATE TABLE t(x); INSERT INTO t VALUES (1)');
  other.close();
  const error = thrown(() => env.snapshot.takeForRestore('big-pages.db'));
  assert.equal(error.tag, 'not-permitted');
  assert.match(error.val, /page size is 8192 bytes and the live database's 4096 bytes/);
  assert.deepEqual(fs.readdirSync(env.backups), ['big-pages.db'], 'no safety copy was made');
});

test('a prepared restore that is never carried out is rolled back when the operation ends', (t) => {
  const env = setup(t, { nodes: 20 });
  publish(env, env.snapshot.take().name, 'b1.db');
  addNode(env.database, 'kept');
  const before = contentDigest(env.database);
  env.snapshot.takeForRestore('b1.db');
  env.snapshot.endOperation();
  addNode(env.database, 'after');
  assert.deepEqual(nodeNames(env.database), ['after', 'kept']);
  assert.notEqual(contentDigest(env.database), before);
});

/** The scratch directories drills and restores leave in TMPDIR. */
function scratchLeft() {
  return fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('litegraph-backup-'));
}

test('a drill of a sound backup restores every table with its rows and leaves no scratch', (t) => {
  const env = setup(t, { nodes: 300 });
  process.env.TMPDIR = tempDir(t);
  t.after(() => delete process.env.TMPDIR);
  const taken = env.snapshot.take();
  const file = publish(env, taken.name, 'b1.db');
  const found = env.snapshot.drill('b1.db');
  assert.equal(found.sha256, independentDigests(file).sha256);
  assert.deepEqual(found.integrity, []);
  const counts = rowCounts(file);
  assert.deepEqual(
    found.tables.map((table) => [table.name, table.inBackup, table.restored]),
    Object.keys(counts).sort().map((name) => [name, BigInt(counts[name]), BigInt(counts[name])]),
  );
  assert.deepEqual(scratchLeft(), []);
});

test('a drill of a damaged backup reports the damage and the bytes it read', (t) => {
  const env = setup(t, { nodes: 300 });
  process.env.TMPDIR = tempDir(t);
  t.after(() => delete process.env.TMPDIR);
  const file = publish(env, env.snapshot.take().name, 'b1.db');
  const bytes = fs.readFileSync(file);
  const middle = Math.floor(bytes.length / 4096 / 2) * 4096;
  bytes.fill(0xa5, middle, middle + 4096);
  fs.writeFileSync(file, bytes);
  const found = env.snapshot.drill('b1.db');
  assert.equal(found.sha256, independentDigests(file).sha256, 'the digest of the damaged bytes read');
  assert.ok(found.integrity.length > 0, 'integrity_check finds the damage');
  assert.ok(found.integrity.every((f) => !f.includes('\n') && !f.startsWith('***')), String(found.integrity));
  assert.equal(found.tables.length, 9, 'damaged or not, every table is listed');
  assert.deepEqual(scratchLeft(), []);

  fs.writeFileSync(path.join(env.backups, 'text.db'), 'x'.repeat(8192));
  const error = thrown(() => env.snapshot.drill('text.db'));
  assert.equal(error.tag, 'corrupt');
  assert.match(error.val, /not SQLite's/);
  assert.deepEqual(thrown(() => env.snapshot.drill('missing.db')), { tag: 'not-found' });
  assert.deepEqual(scratchLeft(), [], 'no scratch left on the failing paths either');
});

test('drill and restore carry tables of any name, rowids, AUTOINCREMENT sequences, generated columns, FTS5, views, triggers and user_version', (t) => {
  const env = setup(t, { nodes: null });
  const db = new Database(env.database);
  db.exec(`CREATE TABLE "we""ird name"(x); INSERT INTO "we""ird name" VALUES (1), (2);
    CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO t(v) VALUES ('a'), ('b'); DELETE FROM t WHERE v = 'b';
    CREATE TABLE r(x) ; INSERT INTO r VALUES ('p'), ('q'); DELETE FROM r WHERE x = 'p';
    CREATE TABLE w(k TEXT PRIMARY KEY, g AS (upper(k))) WITHOUT ROWID; INSERT INTO w(k) VALUES ('z');
    CREATE VIEW v AS SELECT * FROM t; CREATE TRIGGER tr AFTER INSERT ON r BEGIN UPDATE t SET v = 'fired'; END;
    CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('hello world'), ('backup restore');
    PRAGMA user_version = 7; ANALYZE;`);
  db.close();
  const found = env.snapshot.drill(path.basename(publish(env, env.snapshot.take().name, 'b1.db')));
  assert.deepEqual(found.integrity, []);
  const shadows = found.tables.filter((x) => x.name.startsWith('docs_'));
  assert.ok(shadows.length > 0 && shadows.every((x) => x.inBackup === x.restored), 'the FTS5 shadow tables');
  assert.deepEqual(found.tables.filter((x) => !x.name.startsWith('docs_')).map((x) => [x.name, x.inBackup, x.restored]), [
    ['r', 1n, 1n], ['t', 1n, 1n], ['w', 1n, 1n], ['we"ird name', 2n, 2n],
  ]);
  // The same path, into the live database: rowids, sequences, the view, the trigger.
  const sha256 = independentDigests(path.join(env.backups, 'b1.db')).sha256;
  const change = new Database(env.database);
  change.exec("DROP VIEW v; DROP TABLE r; INSERT INTO t(v) VALUES ('c'); INSERT INTO docs VALUES ('later'); PRAGMA user_version = 1");
  change.close();
  env.snapshot.restore('b1.db', sha256);
  const live = new Database(env.database);
  assert.deepEqual(live.prepare('SELECT rowid, x FROM r').raw().all(), [[2, 'q']]);
  assert.equal(live.pragma('user_version', { simple: true }), 7);
  live.exec("INSERT INTO t(v) VALUES ('next')");
  assert.equal(live.prepare("SELECT id FROM t WHERE v = 'next'").pluck().get(), 3, 'AUTOINCREMENT goes on from the backup');
  live.exec("INSERT INTO r VALUES ('x')");
  assert.deepEqual(live.prepare('SELECT v FROM v').pluck().all(), ['fired', 'fired'], 'the view and the trigger are back');
  assert.equal(live.prepare("SELECT g FROM w").pluck().get(), 'Z');
  assert.deepEqual(live.prepare("SELECT body FROM docs WHERE docs MATCH 'restore OR later'").pluck().all(), ['backup restore']);
  assert.equal(live.pragma('integrity_check', { simple: true }), 'ok');
  live.close();
});

test('take of a larger database, for the record: its size and time', (t) => {
  const env = setup(t, { nodes: null });
  createLitegraphDatabaseOfSize(env.database, 16 << 20);
  const started = performance.now();
  const taken = env.snapshot.take();
  const elapsed = performance.now() - started;
  const size = fs.statSync(path.join(env.backups, taken.name)).size;
  t.diagnostic(`take: ${(size / 2 ** 20).toFixed(1)} MiB in ${elapsed.toFixed(0)} ms`);
  assert.equal(integrity(path.join(env.backups, taken.name), false), 'ok');
});

test('take gives the very bytes the Rust host backs up', { skip: !fs.existsSync(CLI) && `no Rust CLI at ${CLI}` }, (t) => {
  for (const journal of ['wal', 'delete']) {
    const env = setup(t, { nodes: 200, journal });
    const taken = env.snapshot.take();
    const rust = runCli(env, ['create', 'from-rust']);
    assert.equal(rust.status, 0, rust.stderr);
    assert.equal(rust.json.SHA256Hash, taken.digests.sha256, journal);
    assert.equal(rust.json.MD5Hash, taken.digests.md5, journal);
    assert.ok(fs.readFileSync(path.join(env.backups, 'from-rust')).equals(fs.readFileSync(path.join(env.backups, taken.name))));
  }
});

test('takeForRestore is busy while another writer holds the database, and makes no copy', async (t) => {
  const env = setup(t, { nodes: 20, busyTimeoutMs: 300 });
  publish(env, env.snapshot.take().name, 'b1.db');
  const holder = child(t, `
    const db = new Database(${JSON.stringify(env.database)});
    db.exec('BEGIN IMMEDIATE');
    console.log('locked');
    process.stdin.on('end', () => { db.exec('ROLLBACK'); console.log('released'); process.exit(0); });
    process.stdin.resume();`);
  await holder.said('locked');
  assert.deepEqual(thrown(() => env.snapshot.takeForRestore('b1.db')), { tag: 'busy' });
  assert.deepEqual(fs.readdirSync(env.backups), ['b1.db']);
  holder.proc.stdin.end();
  await holder.said('released');
});

test('a reader in a transaction during a restore sees the old content whole, its next transaction the new', (t) => {
  const env = setup(t, { nodes: 100 });
  const backup = env.snapshot.take();
  publish(env, backup.name, 'b1.db');
  const backupContent = contentDigest(path.join(env.backups, 'b1.db'));
  addNode(env.database, 'after-backup');
  const extra = new Database(env.database);
  extra.exec('CREATE TABLE added_later(x); INSERT INTO added_later VALUES (1)');
  extra.close();
  const reader = new Database(env.database, { readonly: true });
  t.after(() => reader.close());
  const old = () => [
    reader.prepare('SELECT count(*) FROM nodes').pluck().get(),
    reader.prepare('SELECT count(*) FROM added_later').pluck().get(),
  ];
  reader.exec('BEGIN');
  const before = old();
  env.snapshot.takeForRestore('b1.db');
  env.snapshot.restore('b1.db', backup.digests.sha256);
  assert.deepEqual(old(), before, 'the open transaction still sees the old content, all of it');
  reader.exec('COMMIT');
  assert.equal(reader.prepare('SELECT count(*) FROM nodes').pluck().get(), before[0] - 1, 'then the new');
  assert.throws(() => reader.prepare('SELECT count(*) FROM added_later').get(), /no such table/, 'and the new schema');
  assert.equal(contentDigest(env.database), backupContent);
});

test('every page size, auto-vacuum mode and text encoding is taken, drilled and restored', (t) => {
  for (const prelude of [
    'PRAGMA page_size = 512;',
    'PRAGMA page_size = 65536;',
    'PRAGMA page_size = 1024; PRAGMA auto_vacuum = FULL;',
    'PRAGMA auto_vacuum = INCREMENTAL;',
    "PRAGMA encoding = 'UTF-16le';",
    "PRAGMA encoding = 'UTF-16be';",
  ]) {
    const env = setup(t, { nodes: null });
    const db = new Database(env.database);
    db.exec(`${prelude} CREATE TABLE nodes(id INTEGER PRIMARY KEY, data TEXT); CREATE INDEX nodes_data ON nodes(data);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
      INSERT INTO nodes(data) SELECT printf('%0200d', i) FROM n;`);
    db.close();
    const taken = env.snapshot.take();
    const file = publish(env, taken.name, 'b.db');
    assert.equal(integrity(file), 'ok', prelude);
    const found = env.snapshot.drill('b.db');
    assert.deepEqual(found.integrity, [], prelude);
    assert.deepEqual(found.tables, [{ name: 'nodes', inBackup: 500n, restored: 500n }], prelude);
    const change = new Database(env.database);
    change.exec('DELETE FROM nodes WHERE id < 100');
    change.close();
    env.snapshot.restore('b.db', taken.digests.sha256);
    assert.equal(integrity(env.database), 'ok', prelude);
    assert.equal(rowCountOf(env.database, 'nodes'), 500, prelude);
  }
});

function rowCountOf(file, table) {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT count(*) FROM "${table}"`).pluck().get();
  } finally {
    db.close();
  }
}

test('take of a database whose writer died mid-transaction copies its last committed state', async (t) => {
  const env = setup(t, { nodes: null });
  const db = new Database(env.database);
  db.pragma('journal_mode = DELETE');
  db.exec(`CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
           INSERT INTO t SELECT randomblob(200) FROM n`);
  db.close();
  // A small cache makes SQLite write changed pages into the file before the commit: killed
  // then, the writer leaves a hot journal that only a read-write connection rolls back.
  const writer = child(t, `
    const db = new Database(${JSON.stringify(env.database)});
    db.pragma('cache_size = 5');
    db.exec('BEGIN');
    db.exec('UPDATE t SET x = zeroblob(200)');
    console.log('spilled');
    setInterval(() => {}, 1000);`);
  await writer.said('spilled');
  writer.proc.kill('SIGKILL');
  await once(writer.proc, 'exit');
  assert.ok(fs.existsSync(`${env.database}-journal`), 'a hot journal');
  const taken = env.snapshot.take();
  const copy = path.join(env.backups, taken.name);
  assert.equal(integrity(copy), 'ok');
  const check = new Database(copy, { readonly: true });
  assert.equal(check.prepare('SELECT count(*) FROM t WHERE x = zeroblob(200)').pluck().get(), 0, 'nothing of the unfinished transaction');
  assert.equal(check.prepare('SELECT count(*) FROM t').pluck().get(), 5000);
  check.close();
});
