// Reads beside a running create: the read-only exports run on the service's second worker,
// so a list, and /health through the real handler on a real socket, answer while a create of
// a large database is still copying and hashing. The overlap is proven by order (the create
// starts first, its temporary is on disk, and the reads' answers arrive before its answer),
// never by timing.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import Database from 'better-sqlite3';

import { createBackupService } from '../src/index.js';
import { createHandler } from '../src/http.js';
import { componentFile, createLitegraphDatabase, fileDigests, workspace } from './helpers.js';
import { request, serve } from './http-client.js';

/** A LiteGraph database grown to about `mib` MiB with incompressible rows beside its tables. */
function largeDatabase(file, mib) {
  createLitegraphDatabase(file, 20);
  const db = new Database(file);
  try {
    db.exec('CREATE TABLE filler (b BLOB)');
    const insert = db.prepare('INSERT INTO filler VALUES (?)');
    db.transaction(() => {
      for (let i = 0; i < mib * 16; i++) insert.run(crypto.randomBytes(64 << 10));
    })();
  } finally {
    db.close();
  }
}

/** Resolves with the name of the first host temporary that appears in `dir`. */
function firstTemporary(dir) {
  const watcher = fs.watch(dir);
  const seen = new Promise((resolve, reject) => {
    watcher.on('error', reject);
    watcher.on('change', (_event, name) => {
      if (typeof name === 'string' && /^\.lgb-\d+-\d+-\d+\.tmp$/.test(name)) resolve(name);
    });
  });
  return seen.finally(() => watcher.close());
}

test('a list and /health answer while a large create is still running', async (t) => {
  const w = workspace(t, { nodes: null });
  largeDatabase(w.database, 128);
  // A small backup already there (one without metadata is hashed by every listing).
  createLitegraphDatabase(path.join(w.backups, 'earlier.db'), 5);
  const service = await createBackupService({ ...w, component: componentFile() });
  t.after(() => service.close());
  const { port } = await serve(t, createHandler(service, {}));
  assert.deepEqual((await service.list()).map((b) => b.filename), ['earlier.db']);

  const order = [];
  const temporary = firstTemporary(w.backups);
  const creating = service.create('big.db').then((made) => {
    order.push('create');
    return made;
  });
  // The create has begun: its snapshot's temporary exists (a create that answers first
  // fails the test instead of leaving it waiting).
  const name = await Promise.race([
    temporary,
    creating.then(() => assert.fail('the create answered before its temporary was seen')),
  ]);
  const listing = service.list().then((listed) => {
    order.push('list');
    return listed;
  });
  const health = request(port, 'GET', '/health', { authorization: undefined }).then((reply) => {
    order.push('health');
    return reply;
  });
  const listed = await listing;
  const reply = await health;
  assert.ok(!order.includes('create'), `the create answered before the reads: they waited behind it (${order})`);
  assert.deepEqual([...order].sort(), ['health', 'list']);
  // A read racing the create sees no temporary, and the new backup only once it is whole.
  assert.ok(!listed.some((b) => b.filename.startsWith('.')), JSON.stringify(listed.map((b) => b.filename)));
  assert.ok(listed.some((b) => b.filename === 'earlier.db'));
  assert.equal(reply.status, 200, reply.text);
  assert.equal(reply.text, '{"Status":"Healthy"}');

  const made = await creating;
  assert.equal(order.length, 3);
  assert.equal(order.at(-1), 'create');
  assert.ok(made.length >= 128n << 20n);
  assert.equal(made.sha256Hash, fileDigests(path.join(w.backups, 'big.db')).sha256);
  const early = listed.find((b) => b.filename === 'big.db');
  if (early) assert.equal(early.sha256Hash, made.sha256Hash, 'listed before it was whole');
  assert.ok(!fs.existsSync(path.join(w.backups, name)), 'the temporary is gone');
  const after = await service.list();
  assert.deepEqual(after.map((b) => b.filename).sort(), ['big.db', 'earlier.db']);
});
