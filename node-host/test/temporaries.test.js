// Temporaries left by a process killed mid-operation (kill -9): removed when the service
// starts and before each new temporary once their process is gone and they are older than
// the stale age (an option here, so the test sets a file's mtime into the past instead of
// waiting); a temporary whose process is alive is never touched.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { test } from 'node:test';

import { createBackupService } from '../src/index.js';
import { processAlive, sweepStaleTemporaries, temporaryOwner } from '../src/backup-dir.js';
import { componentFile, workspace } from './helpers.js';

const BACKUP_DIR_MODULE = new URL('../src/backup-dir.js', import.meta.url).href;

/**
 * A child process that makes a temporary in `dir` through the real backup-dir module, writes
 * `bytes` into it and stays alive. Resolves `{ child, name }` once the file is written.
 */
async function childWithTemporary(t, dir, bytes = 1 << 20) {
  const script = `
    import fs from 'node:fs';
    import { openBackupDir } from ${JSON.stringify(BACKUP_DIR_MODULE)};
    const dir = openBackupDir(${JSON.stringify(dir)});
    const { name, fd } = dir.createTemporary('tmp');
    fs.writeSync(fd, Buffer.alloc(${bytes}, 7));
    fs.fsyncSync(fd);
    process.stdout.write(name + '\\n');
    setInterval(() => {}, 1 << 30);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout) {
    out += chunk;
    if (out.includes('\n')) break;
  }
  const name = out.trim();
  assert.match(name, /^\.lgb-\d+-\d+-\d+\.tmp$/);
  assert.equal(temporaryOwner(name), child.pid);
  return { child, name };
}

async function kill9(child) {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  const [code, signal] = await exited;
  assert.equal(signal, 'SIGKILL', `exit code ${code}`);
  assert.equal(processAlive(child.pid), false, 'the killed process is gone');
}

/** Sets a file's times `seconds` into the past. */
function age(file, seconds) {
  const then = new Date(Date.now() - seconds * 1000);
  fs.utimesSync(file, then, then);
}

test('the service start removes the temporary of a killed process once old, and keeps a live one', async (t) => {
  const w = workspace(t);
  const dead = await childWithTemporary(t, w.backups);
  const young = await childWithTemporary(t, w.backups);
  const live = await childWithTemporary(t, w.backups);
  await kill9(dead.child);
  await kill9(young.child);
  const file = (name) => path.join(w.backups, name);
  // SQLite's journal beside the dead temporary goes with it.
  fs.writeFileSync(file(`${dead.name}-journal`), 'journal');
  age(file(dead.name), 60);
  age(file(`${dead.name}-journal`), 60);
  age(file(live.name), 3600);
  assert.equal(fs.statSync(file(dead.name)).size, 1 << 20, 'the leak: a full copy');

  const service = await createBackupService({ ...w, component: componentFile(), staleTemporaryMs: 30_000 });
  t.after(() => service.close());
  assert.equal(service.swept, 2, 'the dead temporary and its journal');
  assert.ok(!fs.existsSync(file(dead.name)));
  assert.ok(!fs.existsSync(file(`${dead.name}-journal`)));
  assert.ok(fs.existsSync(file(young.name)), 'younger than the stale age: kept');
  assert.ok(fs.existsSync(file(live.name)), 'its process is alive: kept, however old');
  // The listings never showed any of them.
  assert.deepEqual(await service.list(), []);
});

test('a create removes the temporary of a process killed while the service runs, and keeps a live one', async (t) => {
  const w = workspace(t);
  const service = await createBackupService({ ...w, component: componentFile() });
  t.after(() => service.close());
  assert.equal(service.swept, 0);
  const dead = await childWithTemporary(t, w.backups);
  const live = await childWithTemporary(t, w.backups);
  await kill9(dead.child);
  const file = (name) => path.join(w.backups, name);
  // The default stale age, 10 s, as on the Rust host.
  age(file(dead.name), 11);
  age(file(live.name), 3600);
  const made = await service.create('after.db');
  assert.equal(made.filename, 'after.db');
  assert.ok(!fs.existsSync(file(dead.name)), 'removed before the create made its own temporary');
  assert.ok(fs.existsSync(file(live.name)), 'its process is alive: kept');
  assert.deepEqual(
    fs.readdirSync(w.backups).filter((n) => n.endsWith('.tmp')),
    [live.name],
    "the create's own temporaries are gone with it",
  );
});

test('the sweep leaves alone what is not a host temporary of a dead process', (t) => {
  const w = workspace(t);
  const file = (name) => path.join(w.backups, name);
  const names = [
    '.lgb-status.json', // the Rust host's status record
    '.lgb-notapid-1-2.tmp', // no pid in the name
    'backup.db.tmp', // not hidden: the policy's, not the host's
    `.lgb-${process.pid}-1-2.tmp`, // this process's own
  ];
  for (const name of names) {
    fs.writeFileSync(file(name), 'x');
    age(file(name), 3600);
  }
  fs.mkdirSync(file('.lgb-1-1-1.tmp')); // a directory, even if pid 1 were gone
  assert.equal(sweepStaleTemporaries(w.backups, { staleAfterMs: 1000 }), 0);
  assert.deepEqual(fs.readdirSync(w.backups).sort(), [...names, '.lgb-1-1-1.tmp'].sort());
});
