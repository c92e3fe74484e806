// The service (the policy component in a worker, through jco) against the Rust host: the
// same component bytes, the same answers for the same backup directory, the same line held
// against hostile names, links and a hostile policy.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BackupError, createBackupService } from '../src/index.js';
import {
  componentFile,
  createLitegraphDatabaseOfSize,
  fileDigests,
  hostileComponentFile,
  runCli,
  rustBackupFile,
  tree,
  workspace,
} from './helpers.js';

/** The rejection of `promise`, which must be a BackupError. */
async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BackupError, `a BackupError, not ${error?.stack ?? error}`);
    return error;
  }
  assert.fail('expected a rejection');
}

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').toUpperCase();
}

describe('the component', () => {
  test('the service runs the bytes of the file, which are the ones the Rust CLI embeds', async (t) => {
    const w = workspace(t);
    const written = path.join(w.root, 'written.wasm');
    const cli = runCli(w, ['component', '--output', written]);
    assert.equal(cli.status, 0, cli.stderr);
    const file = componentFile();
    assert.equal(sha256(file), cli.json.Sha256, `${file} is not what this CLI embeds: write it again`);
    const service = await createBackupService({ ...w, component: file });
    t.after(() => service.close());
    assert.deepEqual(service.component, { path: file, length: fs.statSync(file).size, sha256: cli.json.Sha256 });
  });

  test('a missing component file is a clear error, and nothing is created', async (t) => {
    const w = workspace(t);
    const before = tree(w.root);
    const error = await rejection(createBackupService({ ...w, component: path.join(w.root, 'none.wasm') }));
    assert.equal(error.tag, 'host');
    assert.match(error.message, /cannot read the policy component .*none\.wasm.*litegraph-backup component --output/);
    assert.deepEqual(tree(w.root), before);
  });

  test('a file that is not a component is a clear error naming the file, and nothing is created', async (t) => {
    const w = workspace(t);
    const garbage = path.join(w.root, 'garbage.wasm');
    fs.writeFileSync(garbage, Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x01, 0x02, 0x03]));
    const core = path.join(w.root, 'core.wasm');
    fs.writeFileSync(core, Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    const before = tree(w.root);
    for (const [file, why] of [[garbage, /no WebAssembly header/], [core, /a core WebAssembly module/]]) {
      const error = await rejection(createBackupService({ ...w, component: file }));
      assert.equal(error.tag, 'host');
      assert.match(error.message, new RegExp(`the policy component ${file.replace(/[.]/g, '\\.')} is not a WebAssembly component`));
      assert.match(error.message, why);
      assert.doesNotMatch(error.message, /utf-8/);
    }
    assert.deepEqual(tree(w.root), before);
  });
});

describe('backups the Rust CLI made', () => {
  let w;
  let service;
  before(async () => {
    w = workspace(undefined, { nodes: 40 });
    for (const name of ['first.db', 'second.db']) {
      const made = runCli(w, ['create', name]);
      assert.equal(made.status, 0, made.stderr);
    }
    service = await createBackupService({ ...w, component: componentFile() });
  });
  after(async () => {
    await service?.close();
    fs.rmSync(w.root, { recursive: true, force: true });
  });

  test('list gives the BackupFile fields the Rust CLI gives, and digests of the files as they are', async () => {
    const listed = await service.list();
    assert.deepEqual(listed.map(rustBackupFile), runCli(w, ['list']).json);
    for (const backup of listed) {
      const actual = fileDigests(path.join(w.backups, backup.filename));
      assert.deepEqual([backup.md5Hash, backup.sha1Hash, backup.sha256Hash], [actual.md5, actual.sha1, actual.sha256]);
      assert.equal(backup.length, BigInt(fs.statSync(path.join(w.backups, backup.filename)).size));
    }
  });

  test('read and exists answer as the Rust CLI does', async () => {
    for (const name of ['first.db', 'second.db']) {
      assert.deepEqual(rustBackupFile(await service.read(name)), runCli(w, ['show', name]).json);
      assert.equal(await service.exists(name), true);
    }
    assert.equal(await service.exists('missing.db'), false);
    assert.equal(runCli(w, ['exists', 'missing.db']).status, 1);
    const missing = await rejection(service.read('missing.db'));
    assert.equal(missing.tag, 'not-found');
    assert.equal(missing.message, 'no such backup');
  });

  test('a backup the Node host makes is one the Rust CLI shows and verifies', async () => {
    const made = await service.create('node.db');
    assert.equal(made.filename, 'node.db');
    assert.deepEqual(rustBackupFile(made), runCli(w, ['show', 'node.db']).json);
    const verified = runCli(w, ['verify', '--full', 'node.db']);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.equal(verified.json.Verified, true);
    const again = await rejection(service.create('node.db'));
    assert.equal(again.tag, 'exist');
  });

  test('delete removes a backup the Rust CLI made, with its metadata, and the CLI agrees', async () => {
    const files = () => fs.readdirSync(w.backups).filter((name) => !name.startsWith('.lgb-status'));
    const before = files();
    await service.delete('first.db');
    assert.equal(runCli(w, ['exists', 'first.db']).status, 1);
    assert.deepEqual(
      runCli(w, ['list']).json.map((b) => b.Filename),
      (await service.list()).map((b) => b.filename),
    );
    const gone = before.filter((name) => !files().includes(name));
    assert.equal(gone.length, 2, `the backup and its record: ${gone}`);
    assert.ok(gone.includes('first.db'));
    assert.ok(gone.every((name) => name === 'first.db' || name.endsWith('.meta')));
    assert.equal((await rejection(service.delete('first.db'))).tag, 'not-found');
  });
});

describe('names and links', () => {
  let w;
  let service;
  before(async () => {
    w = workspace(undefined, { nodes: 20 });
    fs.writeFileSync(path.join(w.root, 'outside.db'), fs.readFileSync(w.database));
    service = await createBackupService({ ...w, component: componentFile() });
    await service.create('real.db');
    fs.symlinkSync(path.join(w.root, 'outside.db'), path.join(w.backups, 'link.db'));
    fs.symlinkSync(w.root, path.join(w.backups, 'dirlink'));
  });
  after(async () => {
    await service?.close();
    fs.rmSync(w.root, { recursive: true, force: true });
  });

  test('hostile names are refused by every operation, and nothing changes on disk', async () => {
    const before = tree(w.root);
    const names = ['../x', '/etc/passwd', 'a/b', '.', '..', 'a\0b', 'x'.repeat(256), 'dirlink/outside.db'];
    const operations = {
      create: (name) => service.create(name),
      read: (name) => service.read(name),
      exists: (name) => service.exists(name),
      delete: (name) => service.delete(name),
      verify: (name) => service.verify(name, true),
      restore: (name) => service.restore(name),
      drill: (name) => service.drill(name),
      details: (name) => service.details(name),
    };
    for (const name of names) {
      for (const [operation, call] of Object.entries(operations)) {
        const error = await rejection(call(name));
        assert.equal(error.tag, 'invalid-name', `${operation} ${JSON.stringify(name)}: ${error.message}`);
      }
    }
    assert.deepEqual(tree(w.root), before);
  });

  test('a name that is not a string is the caller\'s TypeError, and nothing changes on disk', async () => {
    const before = tree(w.root);
    for (const call of [() => service.read(), () => service.exists(5), () => service.delete(null), () => service.create(7)]) {
      await assert.rejects(call(), TypeError);
    }
    assert.deepEqual(tree(w.root), before);
  });

  test('a link in the backup directory is neither listed nor read nor followed nor removed', async () => {
    const before = tree(w.root);
    assert.deepEqual((await service.list()).map((b) => b.filename), ['real.db']);
    for (const name of ['link.db', 'dirlink']) {
      assert.equal(await service.exists(name), false, name);
      for (const operation of ['read', 'delete', 'verify', 'restore', 'drill', 'details']) {
        const error = await rejection(service[operation](name));
        assert.equal(error.tag, 'not-found', `${operation} ${name}: ${error.message}`);
      }
    }
    assert.deepEqual(tree(w.root), before);
  });
});

describe('a hostile policy component', () => {
  let w;
  let service;
  let before;
  const passwd = fs.existsSync('/etc/passwd') ? sha256('/etc/passwd') : undefined;
  // As tests/it/hostile.rs baits it: files beside the directory, one inside, links out.
  const bait = async () => {
    w = workspace(undefined, { nodes: 50 });
    fs.writeFileSync(path.join(w.root, 'outside.txt'), 'outside');
    fs.writeFileSync(path.join(w.root, 'victim.txt'), 'victim');
    fs.copyFileSync(w.database, path.join(w.root, 'outside.db'));
    fs.writeFileSync(path.join(w.backups, 'inside.txt'), 'inside');
    fs.symlinkSync(path.join(w.root, 'outside.db'), path.join(w.backups, 'link.db'));
    fs.symlinkSync(w.root, path.join(w.backups, 'dirlink'));
    service = await createBackupService({
      ...w,
      component: hostileComponentFile(),
      guestTimeMs: 300,
      memoryBytes: 32 << 20,
    });
  };
  const treeWithoutDatabase = () => {
    const found = tree(w.root);
    // The live database's WAL files come and go with its connections.
    for (const key of Object.keys(found)) if (key.startsWith('litegraph.db')) delete found[key];
    return found;
  };

  test('each misbehaviour ends in a clean error and the service goes on', async () => {
    await bait();
    before = treeWithoutDatabase();
    const expectations = {
      loop: /over its limit of 300 ms/,
      bomb: /unreachable/,
      panic: /unreachable/,
      recurse: /call stack|stack size/i,
    };
    for (const [behaviour, said] of Object.entries(expectations)) {
      const error = await rejection(service.create(behaviour));
      assert.equal(error.tag, 'guest', `${behaviour}: ${error.message}`);
      assert.match(error.message, said, behaviour);
      assert.equal(await service.exists('inside.txt'), true, `still serving after ${behaviour}`);
    }
    assert.deepEqual(treeWithoutDatabase(), before);
  });

  test('a guest cannot make the host work without end', async () => {
    for (const behaviour of ['flood', 'hoard', 'rehash']) {
      const error = await rejection(service.create(behaviour));
      assert.equal(error.tag, 'guest', `${behaviour}: ${error.message}`);
      // A flood of cheap calls may run out of time before it runs out of calls.
      assert.match(error.message, /exceeded its budget|over its limit/, behaviour);
    }
    // No second snapshot was taken, and the one allowed is gone with its operation.
    assert.deepEqual(treeWithoutDatabase(), before);
    assert.equal(await service.exists('inside.txt'), true, 'still serving');
  });

  test("a guest cannot write over backups or the host's files", async () => {
    const error = await rejection(service.create('overwrite'));
    assert.equal(error.tag, 'not-permitted');
    assert.equal(error.detail, 'all writes refused');
    assert.deepEqual(treeWithoutDatabase(), before);
  });

  test('every escape is refused by the host', async () => {
    const error = await rejection(service.create('escape'));
    assert.equal(error.tag, 'not-permitted', error.message);
    assert.match(error.detail, /^all \d+ attempts refused$/);
    // The fixture's own account is not trusted: the files say the same.
    assert.deepEqual(treeWithoutDatabase(), before, 'nothing inside or beside the directory changed');
    if (passwd) assert.equal(sha256('/etc/passwd'), passwd);
    assert.ok(!fs.existsSync('/tmp/escaped-by-guest.txt'));
    assert.ok(fs.lstatSync(path.join(w.backups, 'link.db')).isSymbolicLink());
    await service.close();
    fs.rmSync(w.root, { recursive: true, force: true });
  });
});

describe("the caller's event loop", () => {
  test('keeps running while a create copies and hashes the database in the worker', async (t) => {
    const w = workspace(t, { nodes: null });
    createLitegraphDatabaseOfSize(w.database, 24 << 20);
    const service = await createBackupService({ ...w, component: componentFile() });
    t.after(() => service.close());
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let made;
    try {
      made = await service.create('large.db');
    } finally {
      clearInterval(timer);
    }
    // Were the copy made on this thread, no timer could fire before its promise settled
    // (the continuation of an await runs before any timer).
    assert.ok(ticks > 0, 'the timer never fired during the create');
    assert.ok(made.length >= BigInt(24 << 20));
    assert.equal(made.sha256Hash, fileDigests(path.join(w.backups, 'large.db')).sha256);
  });
});
