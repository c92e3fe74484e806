// The HTTP handler: LiteGraph's routes, status codes and bodies, auth, bad input, streaming,
// on a real node:http server on 127.0.0.1 (port 0). The end-to-end tests run the real
// service (the component in its worker, the real store and snapshot) on a LiteGraph-like
// database; the tests marked "HTTP layer only" use a fake service object to reach answers
// the real one cannot be made to give on demand (a trap, an I/O fault, a slow call).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  MAX_BODY_BYTES,
  byteRange,
  contentDisposition,
  createHandler,
  parseJson,
  queryFlag,
  requestedFilename,
  toJson,
  wireBackupFile,
  wireTime,
} from '../src/http.js';
import { BackupError } from '../src/errors.js';
import { componentFile, fileDigests, integrity, tempDir, workspace } from './helpers.js';
import {
  ADMIN,
  AUTHENTICATION_FAILED,
  BAD_REQUEST_MESSAGE,
  admin,
  request,
  serve,
} from './http-client.js';

// ---------------------------------------------------------------------------------------
// End to end: the real service

/** A workspace, the real service on it, and the handler served on a free port. */
async function deployment(t, { nodes = 20, adminToken } = {}) {
  const places = workspace(t, { nodes });
  const { createBackupService } = await import('../src/service.js');
  const service = await createBackupService({
    database: places.database,
    backups: places.backups,
    component: componentFile(),
  });
  t.after(() => service.close());
  const handler = createHandler(service, adminToken ? { adminToken } : {});
  const { port } = await serve(t, handler);
  return { ...places, service, port };
}

/** The directory's entries with their SHA-256, to show that a refusal changed nothing. */
function tree(dir) {
  const entries = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    const stat = fs.lstatSync(file);
    entries[name] = stat.isFile()
      ? crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')
      : stat.isDirectory()
        ? 'dir'
        : 'other';
  }
  return entries;
}

function snapshotOf({ database, backups }) {
  return { backups: tree(backups), database: fileDigests(database).sha256 };
}

const BACKUP_FILE_KEYS = [
  'Filename',
  'Length',
  'MD5Hash',
  'SHA1Hash',
  'SHA256Hash',
  'CreatedUtc',
  'LastUpdateUtc',
  'LastAccessUtc',
];
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

/** A BackupFile as LiteGraph's SDKs require it: every field, this order, these formats. */
function assertBackupFile(value, { data = false } = {}) {
  assert.deepEqual(Object.keys(value), data ? [...BACKUP_FILE_KEYS, 'Data'] : BACKUP_FILE_KEYS);
  assert.equal(typeof value.Filename, 'string');
  assert.ok(Number.isSafeInteger(value.Length) && value.Length > 0, `Length ${value.Length}`);
  assert.match(value.MD5Hash, /^[0-9A-F]{32}$/);
  assert.match(value.SHA1Hash, /^[0-9A-F]{40}$/);
  assert.match(value.SHA256Hash, /^[0-9A-F]{64}$/);
  for (const key of ['CreatedUtc', 'LastUpdateUtc', 'LastAccessUtc']) assert.match(value[key], TIME, key);
}

describe('end to end, with the real service', () => {
  test('every backup route requires the admin token', async (t) => {
    const d = await deployment(t);
    const routes = [
      ['GET', '/v1.0/backups'],
      ['POST', '/v1.0/backups'],
      ['GET', '/v1.0/backups/x.db'],
      ['HEAD', '/v1.0/backups/x.db'],
      ['DELETE', '/v1.0/backups/x.db'],
      ['GET', '/v1.0/backups/x.db/download'],
      ['POST', '/v1.0/backups/x.db/verify'],
      ['POST', '/v1.0/backups/x.db/drill'],
      ['POST', '/v1.0/backups/x.db/restore'],
      ['POST', '/v1.0/backup-retention/prune'],
    ];
    const refused = [
      undefined,
      'Bearer wrong',
      'Bearer  litegraphadmin',
      'Bearer LITEGRAPHADMIN',
      'Bearer litegraphadmi',
      `Bearer ${'litegraphadmin'.repeat(100)}`,
      'Basic bGl0ZWdyYXBoYWRtaW4=',
      'litegraphadmin',
      'Bearer',
      'Bearerlitegraphadmin',
      '',
    ];
    const before = snapshotOf(d);
    for (const [method, uri] of routes) {
      for (const authorization of refused) {
        const reply = await request(d.port, method, uri, {
          authorization,
          body: '{"Filename":"x.db"}',
        });
        const what = `${method} ${uri} with ${JSON.stringify(authorization)}`;
        assert.equal(reply.status, 401, what);
        assert.equal(reply.headers['content-type'], 'application/json', what);
        assert.equal(reply.text, method === 'HEAD' ? '' : AUTHENTICATION_FAILED, what);
      }
    }
    assert.deepEqual(snapshotOf(d), before, 'refused requests change nothing');
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const reply = await request(d.port, 'GET', '/v1.0/backups', {
        authorization: `${scheme} litegraphadmin`,
      });
      assert.equal(reply.status, 200, `scheme ${scheme} is case-insensitive`);
      assert.equal(reply.text, '[]');
    }
  });

  test('another admin token replaces the default one', async (t) => {
    const d = await deployment(t, { adminToken: 's3cret' });
    const refused = await request(d.port, 'GET', '/v1.0/backups');
    assert.equal(refused.status, 401);
    const admitted = await request(d.port, 'GET', '/v1.0/backups', { authorization: 'Bearer s3cret' });
    assert.equal(admitted.status, 200);
    assert.throws(() => createHandler(d.service, { adminToken: '' }), /must not be empty/);
  });

  test('health answers without a token', async (t) => {
    const d = await deployment(t);
    const reply = await request(d.port, 'GET', '/health', { authorization: undefined });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(reply.text, '{"Status":"Healthy"}');
  });

  test('health is degraded, naming the problem, when the database is gone', async (t) => {
    const d = await deployment(t);
    fs.rmSync(d.database);
    const reply = await request(d.port, 'GET', '/health', { authorization: undefined });
    assert.equal(reply.status, 503);
    const body = reply.json();
    assert.match(reply.text, /^\{"Problems":\[.*\],"Status":"Degraded"\}$/, 'serde_json json! order');
    assert.equal(body.Status, 'Degraded');
    assert.ok(
      body.Problems.some((p) => p.includes(d.database) && p.includes('does not exist')),
      reply.text,
    );
  });

  test('POST creates a backup and answers its BackupFile; the list shows it', async (t) => {
    const d = await deployment(t, { nodes: 200 });
    const reply = await admin(d.port, 'POST', '/v1.0/backups', '{"Filename": "backup-2025.db"}');
    assert.equal(reply.status, 200, reply.text);
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal(Number(reply.headers['content-length']), reply.body.length);
    const created = reply.json();
    assertBackupFile(created);
    assert.equal(created.Filename, 'backup-2025.db');
    const copy = path.join(d.backups, 'backup-2025.db');
    assert.equal(integrity(copy, true), 'ok');
    const digests = fileDigests(copy);
    assert.equal(created.SHA256Hash, digests.sha256);
    assert.equal(created.MD5Hash, digests.md5);
    assert.equal(created.Length, fs.statSync(copy).size);

    const listed = await admin(d.port, 'GET', '/v1.0/backups');
    assert.equal(listed.status, 200);
    const items = listed.json();
    assert.equal(items.length, 1);
    assertBackupFile(items[0]);
    assert.equal(items[0].SHA256Hash, created.SHA256Hash);
  });

  test('POST without a name uses the default name; names are case-sensitive', async (t) => {
    const d = await deployment(t);
    for (const body of ['{}', '{"filename":"ignored.db"}', '{"Other":1}']) {
      const reply = await admin(d.port, 'POST', '/v1.0/backups', body);
      assert.equal(reply.status, 200, `${body}: ${reply.text}`);
      assert.match(reply.json().Filename, /^litegraph-backup-\d{8}-\d{6}.*\.db$/);
    }
    assert.equal(fs.existsSync(path.join(d.backups, 'ignored.db')), false);
  });

  test('bad create requests are refused, say why, and change nothing', async (t) => {
    const d = await deployment(t);
    const before = snapshotOf(d);
    const empty = await admin(d.port, 'POST', '/v1.0/backups', '');
    assert.equal(empty.status, 400);
    assert.deepEqual(empty.json(), { Error: 'BadRequest', Message: BAD_REQUEST_MESSAGE, StatusCode: 400 });
    const expected = {
      '{': 'The request body is not valid JSON: EOF while parsing an object at line 1 column 1',
      'not json': 'The request body is not valid JSON: expected ident at line 1 column 2',
      '[]': 'The request body must be a JSON object.',
      '{"Filename":null}': 'Filename must be a non-empty string.',
      '{"Filename":""}': 'Filename must be a non-empty string.',
      '{"Filename":42}': 'Filename must be a non-empty string.',
    };
    for (const [body, description] of Object.entries(expected)) {
      const reply = await admin(d.port, 'POST', '/v1.0/backups', body);
      assert.equal(reply.status, 400, body);
      assert.deepEqual(reply.json(), {
        Error: 'BadRequest',
        Message: BAD_REQUEST_MESSAGE,
        StatusCode: 400,
        Description: description,
      });
    }
    // Hostile names: the policy's refusal, with its reason.
    for (const name of ['../x.db', 'a/b.db', '.hidden', 'a\u0000b', 'a\nb', 'a\\b.db', 'x'.repeat(256), '..', '.']) {
      const reply = await admin(d.port, 'POST', '/v1.0/backups', JSON.stringify({ Filename: name }));
      assert.equal(reply.status, 400, `${JSON.stringify(name)}: ${reply.text}`);
      const error = reply.json();
      assert.equal(error.Error, 'BadRequest');
      assert.equal(typeof error.Description, 'string', 'says why');
    }
    const huge = JSON.stringify({ Filename: 'x.db', Padding: 'x'.repeat(MAX_BODY_BYTES) });
    const tooLarge = await admin(d.port, 'POST', '/v1.0/backups', huge);
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.json().Error, 'TooLarge');
    assert.deepEqual(snapshotOf(d), before);
  });

  test('an existing name is a conflict and the original stays', async (t) => {
    const d = await deployment(t);
    const body = '{"Filename":"x.db"}';
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', body)).status, 200);
    const before = snapshotOf(d);
    const reply = await admin(d.port, 'POST', '/v1.0/backups', body);
    assert.equal(reply.status, 409);
    assert.deepEqual(reply.json(), {
      Error: 'Conflict',
      Message: 'Operation failed as it would create a conflict with an existing resource.',
      StatusCode: 409,
      Description: 'A backup with that filename exists already; it was left untouched.',
    });
    assert.deepEqual(snapshotOf(d), before);
  });

  test('concurrent creates: one name is made once, the others are conflicts; distinct names all made', async (t) => {
    const d = await deployment(t);
    const same = await Promise.all(
      Array.from({ length: 6 }, () => admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"race.db"}')),
    );
    assert.deepEqual(same.map((r) => r.status).sort(), [200, 409, 409, 409, 409, 409]);
    const distinct = await Promise.all(
      Array.from({ length: 6 }, (_, i) => admin(d.port, 'POST', '/v1.0/backups', `{"Filename":"n${i}.db"}`)),
    );
    assert.deepEqual(distinct.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    const listed = (await admin(d.port, 'GET', '/v1.0/backups')).json().map((b) => b.Filename).sort();
    assert.deepEqual(listed, ['n0.db', 'n1.db', 'n2.db', 'n3.db', 'n4.db', 'n5.db', 'race.db']);
    for (const name of listed) assert.equal(integrity(path.join(d.backups, name), false), 'ok', name);
  });

  test('read, exists and delete answer like LiteGraph', async (t) => {
    const d = await deployment(t);
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"x.db"}')).status, 200);

    const head = await admin(d.port, 'HEAD', '/v1.0/backups/x.db');
    assert.deepEqual([head.status, head.body.length, head.headers['content-length']], [200, 0, '0']);
    assert.equal(head.headers['content-type'], 'application/json');
    const missing = await admin(d.port, 'HEAD', '/v1.0/backups/y.db');
    assert.deepEqual([missing.status, missing.body.length], [404, 0], 'HEAD errors have no body');

    const notFound = await admin(d.port, 'GET', '/v1.0/backups/y.db');
    assert.equal(notFound.status, 404);
    assert.equal(
      notFound.text,
      '{"Error":"NotFound","Message":"The requested resource was not found.","StatusCode":404,"Description":"Unable to find backup with filename y.db"}',
    );

    const deleted = await admin(d.port, 'DELETE', '/v1.0/backups/x.db');
    assert.deepEqual([deleted.status, deleted.body.length], [200, 0], '200, not 204');
    assert.equal(deleted.headers['content-type'], 'application/json');
    assert.equal(fs.existsSync(path.join(d.backups, 'x.db')), false);
    const again = await admin(d.port, 'DELETE', '/v1.0/backups/x.db');
    assert.equal(again.status, 404);
    assert.equal(again.json().Description, 'Unable to find backup with filename x.db');
  });

  test('GET one carries the whole file as base64 Data, last, with an exact Content-Length', async (t) => {
    const d = await deployment(t, { nodes: 500 });
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"x.db"}')).status, 200);
    for (const query of ['', '?incldata', '?incldata=false']) {
      const reply = await admin(d.port, 'GET', `/v1.0/backups/x.db${query}`);
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.headers['content-length']), reply.body.length);
      const value = reply.json();
      assertBackupFile(value, { data: true });
      const file = fs.readFileSync(path.join(d.backups, 'x.db'));
      assert.ok(file.length > 3 * 64 * 1024, 'more than one streamed chunk');
      assert.ok(Buffer.from(value.Data, 'base64').equals(file), `Data is the file (${query})`);
      assert.equal(value.Data, file.toString('base64'), 'standard base64, padded');
    }
  });

  test('download serves raw bytes and single ranges', async (t) => {
    const d = await deployment(t, { nodes: 200 });
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"x.db"}')).status, 200);
    const file = fs.readFileSync(path.join(d.backups, 'x.db'));
    const length = file.length;
    const full = await admin(d.port, 'GET', '/v1.0/backups/x.db/download');
    assert.equal(full.status, 200);
    assert.equal(full.headers['content-type'], 'application/octet-stream');
    assert.equal(full.headers['accept-ranges'], 'bytes');
    assert.equal(full.headers['content-disposition'], 'attachment; filename="x.db"');
    assert.equal(full.headers.etag, `"${fileDigests(path.join(d.backups, 'x.db')).sha256}"`);
    assert.ok(full.body.equals(file));
    const head = await admin(d.port, 'HEAD', '/v1.0/backups/x.db/download');
    assert.deepEqual([head.status, head.headers['content-length'], head.body.length], [200, String(length), 0]);

    const ranged = (range) => request(d.port, 'GET', '/v1.0/backups/x.db/download', { headers: { range } });
    let reply = await ranged('bytes=0-99');
    assert.equal(reply.status, 206);
    assert.equal(reply.headers['content-range'], `bytes 0-99/${length}`);
    assert.ok(reply.body.equals(file.subarray(0, 100)));
    reply = await ranged('bytes=-10');
    assert.deepEqual([reply.status, reply.body.equals(file.subarray(length - 10))], [206, true]);
    reply = await ranged(`bytes=${length - 5}-`);
    assert.deepEqual([reply.status, reply.body.equals(file.subarray(length - 5))], [206, true]);
    reply = await ranged(`bytes=${length}-`);
    assert.equal(reply.status, 416);
    assert.equal(reply.headers['content-range'], `bytes */${length}`);
    assert.equal(reply.json().Description, `The backup is ${length} bytes long.`);
    reply = await ranged('bytes=0-1,4-5');
    assert.deepEqual([reply.status, reply.body.length], [200, length], 'several ranges: the whole file');
  });

  test('traversal and bad names in the path are refused and change nothing', async (t) => {
    const d = await deployment(t);
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"keep.db"}')).status, 200);
    const before = snapshotOf(d);
    for (const name of [
      '%2e%2e%2fkeep.db',
      '..%2fkeep.db',
      '%2e%2e',
      '..',
      '.',
      'a%00b.db',
      '%00',
      'a%2fb.db',
      '%2fetc%2fpasswd',
      'a%5cb.db',
      '%0a',
      '.hidden',
      'x'.repeat(256),
    ]) {
      for (const method of ['GET', 'HEAD', 'DELETE']) {
        const reply = await admin(d.port, method, `/v1.0/backups/${name}`);
        assert.equal(reply.status, 400, `${method} ${name}: ${reply.text}`);
        if (method !== 'HEAD') {
          assert.equal(reply.json().Error, 'BadRequest');
          assert.equal(typeof reply.json().Description, 'string');
        }
      }
      const download = await admin(d.port, 'GET', `/v1.0/backups/${name}/download`);
      assert.equal(download.status, 400, `download ${name}`);
    }
    const invalidUtf8 = await admin(d.port, 'GET', '/v1.0/backups/%ff.db');
    assert.equal(invalidUtf8.status, 400);
    assert.equal(invalidUtf8.json().Description, 'Invalid URL: Invalid UTF-8 in `filename`');
    assert.deepEqual(snapshotOf(d), before);
  });

  test('a symbolic link in the backup directory is never followed', async (t) => {
    const d = await deployment(t);
    const outside = path.join(d.root, 'outside.db');
    fs.writeFileSync(outside, 'secret');
    fs.symlinkSync(outside, path.join(d.backups, 'link.db'));
    for (const uri of ['/v1.0/backups/link.db', '/v1.0/backups/link.db/download']) {
      const reply = await admin(d.port, 'GET', uri);
      assert.notEqual(reply.status, 200, `${uri}: ${reply.text}`);
      assert.ok(!reply.text.includes(Buffer.from('secret').toString('base64')));
      assert.ok(!reply.text.includes('secret'));
    }
    const listed = await admin(d.port, 'GET', '/v1.0/backups');
    assert.deepEqual(listed.json(), [], 'a link is not a backup');
    assert.equal(fs.readFileSync(outside, 'utf8'), 'secret');
  });

  test('unknown routes are 404 and wrong methods 405 with Allow', async (t) => {
    const d = await deployment(t);
    for (const uri of ['/', '/v1.0', '/v1.0/backup', '/v2.0/backups', '/v1.0/backups/a/b', '/v1.0/backups/', '//v1.0/backups', '/health/', '/metrics', '/openapi.json']) {
      const reply = await admin(d.port, 'GET', uri);
      assert.equal(reply.status, 404, uri);
      assert.equal(reply.text, '{"Error":"NotFound","Message":"The requested resource was not found.","StatusCode":404}');
    }
    for (const [method, uri, allow] of [
      ['PUT', '/v1.0/backups', 'GET,HEAD,POST'],
      ['DELETE', '/v1.0/backups', 'GET,HEAD,POST'],
      ['POST', '/v1.0/backups/x.db', 'GET,HEAD,HEAD,DELETE'],
      ['PATCH', '/v1.0/backups/x.db', 'GET,HEAD,HEAD,DELETE'],
      ['GET', '/v1.0/backups/x.db/verify', 'POST'],
      ['POST', '/health', 'GET,HEAD'],
    ]) {
      for (const authorization of [ADMIN, undefined]) {
        const reply = await request(d.port, method, uri, { authorization });
        assert.equal(reply.status, 405, `${method} ${uri}`);
        assert.equal(reply.headers.allow, allow, `${method} ${uri}`);
        assert.equal(reply.json().StatusCode, 405);
      }
    }
  });

  test('verify, drill and restore over HTTP', async (t) => {
    const d = await deployment(t, { nodes: 300 });
    assert.equal((await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"a.db"}')).status, 200);
    let verdict = await admin(d.port, 'POST', '/v1.0/backups/a.db/verify?full=true');
    assert.equal(verdict.status, 200, verdict.text);
    const value = verdict.json();
    assert.deepEqual(Object.keys(value), ['Verified', 'Check', 'DigestsRecordedNow', 'Problems', 'Backup', 'Actual']);
    assert.equal(value.Verified, true);
    assert.equal(value.Check, 'integrity_check');
    assert.deepEqual(value.Problems, []);
    assertBackupFile(value.Backup);
    assert.deepEqual(Object.keys(value.Actual), ['MD5Hash', 'SHA1Hash', 'SHA256Hash']);
    for (const [query, check] of [['full', 'integrity_check'], ['full=YES', 'integrity_check'], ['full=no', 'quick_check'], ['', 'quick_check']]) {
      verdict = await admin(d.port, 'POST', `/v1.0/backups/a.db/verify?${query}`);
      assert.equal(verdict.status, 200, `${query}: ${verdict.text}`);
      assert.equal(verdict.json().Check, check, query);
    }
    const badFlag = await admin(d.port, 'POST', '/v1.0/backups/a.db/verify?full=maybe');
    assert.equal(badFlag.status, 400);
    assert.equal(badFlag.json().Description, 'full must be true or false (or 1/0, yes/no), not "maybe"');
    const repeated = await admin(d.port, 'POST', '/v1.0/backups/a.db/verify?full=1&full=0');
    assert.equal(repeated.status, 400);
    assert.match(repeated.json().Description, /more than once/);

    const drill = await admin(d.port, 'POST', '/v1.0/backups/a.db/drill');
    assert.equal(drill.status, 200, drill.text);
    const report = drill.json();
    assert.equal(report.Passed, true, drill.text);
    assert.deepEqual(Object.keys(report), ['Passed', 'Problems', 'Backup', 'StartedUtc', 'Milliseconds', 'LiteGraphSchema', 'Tables']);
    assert.equal(report.LiteGraphSchema, true);
    assert.ok(report.Tables.some((table) => table.Name === 'nodes' && table.InBackup === table.Restored));

    const restored = await admin(d.port, 'POST', '/v1.0/backups/a.db/restore');
    assert.equal(restored.status, 200, restored.text);
    const restoration = restored.json();
    assert.equal(restoration.Restored.Filename, 'a.db');
    assertBackupFile(restoration.SafetyBackup);
    assert.ok(fs.existsSync(path.join(d.backups, restoration.SafetyBackup.Filename)));

    // A damaged backup: verify says so (200, Verified false); restore refuses it (400).
    const copy = path.join(d.backups, 'a.db');
    const bytes = fs.readFileSync(copy);
    bytes[4096] ^= 0xff;
    fs.writeFileSync(copy, bytes);
    verdict = (await admin(d.port, 'POST', '/v1.0/backups/a.db/verify')).json();
    assert.equal(verdict.Verified, false);
    assert.match(JSON.stringify(verdict.Problems), /SHA-256 differs/);
    const live = fileDigests(d.database).sha256;
    const refused = await admin(d.port, 'POST', '/v1.0/backups/a.db/restore');
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.json().Description, /failed verification/);
    assert.equal(fileDigests(d.database).sha256, live);
    const missing = await admin(d.port, 'POST', '/v1.0/backups/none.db/restore');
    assert.equal(missing.status, 404);
    assert.equal(missing.json().Description, 'Unable to find backup with filename none.db');
  });

  test('prune applies the rules in the body, dry or not, and refuses bad rules with serde\'s words', async (t) => {
    const d = await deployment(t);
    for (const body of ['{"Filename":"named.db"}', '{}']) {
      assert.equal((await admin(d.port, 'POST', '/v1.0/backups', body)).status, 200);
    }
    const listed = (await admin(d.port, 'GET', '/v1.0/backups')).json().map((b) => b.Filename);
    const [, defaultName] = listed;
    assert.match(defaultName, /^litegraph-backup-/);
    const before = snapshotOf(d);
    const refusals = {
      '': 'No retention rule is configured (--keep-last, --keep-daily, ...): give the rules in the request body, e.g. {"KeepLast": 7}.',
      '{"KeepLast":-1}': 'The request body is not a set of retention rules: invalid value: integer `-1`, expected u32',
      '{"KeepLast":1e3}': 'The request body is not a set of retention rules: invalid type: floating point `1000.0`, expected u32',
      '{"Keep":1}': 'The request body is not a set of retention rules: unknown field `Keep`, expected one of `KeepLast`, `KeepHourly`, `KeepDaily`, `KeepWeekly`, `KeepMonthly`, `KeepYearly`, `KeepWithin`, `IncludeNamed`',
      '{"KeepWithin":"5"}': 'KeepWithin "5": time unit needed, for example 5sec or 5ms (write a duration with its unit, e.g. 30d)',
      '{"KeepWithin":"1.h"}': 'KeepWithin "1.h": invalid character at 1 (write a duration with its unit, e.g. 30d)',
      '[]': 'The request body is not a set of retention rules: a JSON object was expected',
    };
    for (const [body, description] of Object.entries(refusals)) {
      const reply = await admin(d.port, 'POST', '/v1.0/backup-retention/prune', body);
      assert.equal(reply.status, 400, body);
      assert.equal(reply.json().Description, description, body);
    }
    const empty = await admin(d.port, 'POST', '/v1.0/backup-retention/prune', '{"KeepLast":0}');
    assert.equal(empty.status, 400, 'a rule of 0 is no rule (the policy refuses)');
    const dry = await admin(d.port, 'POST', '/v1.0/backup-retention/prune?dryrun', '{"KeepWithin":"0s","KeepLast":1}');
    assert.equal(dry.status, 200, dry.text);
    const decisions = dry.json();
    assert.deepEqual(Object.keys(decisions[0]), ['Backup', 'Keep', 'Reasons']);
    assert.deepEqual(snapshotOf(d), before, 'a dry run removes nothing');
    // Without IncludeNamed, a name a person chose is never subject to the rules.
    let pruned = await admin(d.port, 'POST', '/v1.0/backup-retention/prune', '{"KeepLast":1}');
    assert.equal(pruned.status, 200, pruned.text);
    assert.deepEqual(pruned.json().filter((decision) => !decision.Keep), []);
    assert.deepEqual(snapshotOf(d), before);
    // With it, the older of the two goes (the newest is always kept) and the answer says so.
    pruned = await admin(d.port, 'POST', '/v1.0/backup-retention/prune', '{"KeepLast":1,"IncludeNamed":true}');
    assert.equal(pruned.status, 200, pruned.text);
    const verdicts = Object.fromEntries(pruned.json().map((decision) => [decision.Backup.Filename, decision.Keep]));
    assert.deepEqual(verdicts, { 'named.db': false, [defaultName]: true });
    assert.deepEqual(fs.readdirSync(d.backups).filter((name) => !name.startsWith('.')), [defaultName]);
  });

  test('a missing database is a 503 that says what to fix', async (t) => {
    const d = await deployment(t);
    fs.rmSync(d.database);
    const reply = await admin(d.port, 'POST', '/v1.0/backups', '{"Filename":"x.db"}');
    assert.equal(reply.status, 503, reply.text);
    const error = reply.json();
    assert.equal(error.Error, 'ServiceUnavailable');
    assert.ok(error.Description.includes(d.database), error.Description);
    assert.deepEqual(fs.readdirSync(d.backups), []);
  });
});

// ---------------------------------------------------------------------------------------
// HTTP layer only (a fake service object stands in for the real one)

const SAMPLE = {
  filename: 'my-backup.db',
  length: 352256n,
  md5Hash: 'EF2A390E654BCFE3052DAF7364037DBE',
  sha1Hash: '74625881C00FEF2E654AB9B800A0C8E23CC7CBB0',
  sha256Hash: '584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF',
  createdUtc: { seconds: 1748316670n, nanoseconds: 904886000 },
  lastUpdateUtc: { seconds: 1748316670n, nanoseconds: 909897000 },
  lastAccessUtc: { seconds: 1748316673n, nanoseconds: 634489999 },
};

/** A fake service whose every method rejects with `error` (HTTP layer only). */
function failing(error) {
  const reject = async () => {
    throw error;
  };
  return { list: reject, create: reject, read: reject, exists: reject, delete: reject, verify: reject, drill: reject, restore: reject, details: reject };
}

describe('HTTP layer only (fake service)', () => {
  test('the wire format is LiteGraph documented example, byte for byte', () => {
    assert.equal(
      toJson(wireBackupFile(SAMPLE)),
      '{"Filename":"my-backup.db","Length":352256,"MD5Hash":"EF2A390E654BCFE3052DAF7364037DBE","SHA1Hash":"74625881C00FEF2E654AB9B800A0C8E23CC7CBB0","SHA256Hash":"584F2D85362F7E7B9755DF7A363120E6FF8F93A162E918E7085C795021D14DCF","CreatedUtc":"2025-05-27T03:31:10.904886Z","LastUpdateUtc":"2025-05-27T03:31:10.909897Z","LastAccessUtc":"2025-05-27T03:31:13.634489Z"}',
    );
    assert.equal(wireTime({ seconds: 0n, nanoseconds: 0 }), '1970-01-01T00:00:00.000000Z');
    assert.equal(
      wireTime({ seconds: (1n << 64n) - 1n, nanoseconds: 4294967295 }),
      '9999-12-31T23:59:59.999999Z',
    );
    assert.equal(toJson({ Length: (1n << 64n) - 1n }), '{"Length":18446744073709551615}', 'u64 exact');
  });

  test('faults are answered as the Rust server answers them', async (t) => {
    const cases = [
      [new BackupError('io', 'the backup directory /x was moved'), 500, 'InternalError', 'the backup directory /x was moved'],
      [new BackupError('no-database', 'the live database /x/l.db does not exist'), 503, 'ServiceUnavailable', 'the live database /x/l.db does not exist'],
      [new BackupError('busy'), 409, 'InUse', 'The database stayed locked for longer than the busy timeout; try again.'],
      [new BackupError('corrupt', 'not a database'), 400, 'BadRequest', 'not a database'],
      [new BackupError('not-permitted', 'the live database itself'), 400, 'BadRequest', 'the live database itself'],
      [new BackupError('trap', 'wasm trap: unreachable at 0x1234'), 500, 'InternalError', undefined],
      [new TypeError('a host bug'), 500, 'InternalError', undefined],
    ];
    for (const [error, status, kind, description] of cases) {
      const logged = [];
      const { port } = await serve(t, createHandler(failing(error), { log: (line) => logged.push(line) }));
      const reply = await admin(port, 'GET', '/v1.0/backups');
      assert.equal(reply.status, status, String(error));
      const body = reply.json();
      assert.equal(body.Error, kind);
      assert.equal(body.Description, description, 'internal details are logged, not sent');
      if (description === undefined) {
        assert.ok(logged.some((line) => line.includes(error.message)), 'the detail is logged');
      }
    }
  });

  test('a body that never finishes is a 408 after the request timeout', async (t) => {
    const { port, server } = await serve(t, createHandler(failing(new Error('never called')), { requestTimeoutMs: 200 }));
    const { default: net } = await import('node:net');
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write('POST /v1.0/backups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer litegraphadmin\r\nContent-Length: 100\r\n\r\n{"Filen');
      });
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk;
        if (text.includes('\r\n\r\n') && text.includes('}')) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /"Error":"RequestTimeout"/);
    server.closeAllConnections();
  });

  test('a chunked body over the limit is a 413', async (t) => {
    let created = false;
    const service = { create: async () => { created = true; return SAMPLE; } };
    const { port } = await serve(t, createHandler(service));
    const http = await import('node:http');
    const reply = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1.0/backups', headers: { authorization: ADMIN } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text }));
      });
      req.on('error', reject);
      // No Content-Length: chunked, so the limit is found while reading.
      req.write('{"Filename":"x.db","Padding":"');
      req.write('x'.repeat(MAX_BODY_BYTES));
      req.end('"}');
    });
    assert.equal(reply.status, 413);
    assert.equal(JSON.parse(reply.text).Error, 'TooLarge');
    assert.equal(created, false);
  });

  test('as Express-style middleware, paths that are not ours go to next()', async (t) => {
    const handler = createHandler(failing(new BackupError('io', 'x')));
    const { port } = await serve(t, (req, res) =>
      handler(req, res, () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('theirs');
      }),
    );
    const theirs = await request(port, 'GET', '/their/own', { authorization: undefined });
    assert.deepEqual([theirs.status, theirs.text], [200, 'theirs']);
    const ours = await request(port, 'GET', '/v1.0/backups', { authorization: undefined });
    assert.equal(ours.status, 401);
  });

  test('create bodies read like serde_json reads them', () => {
    const name = (body) => {
      try {
        return requestedFilename(Buffer.from(body));
      } catch (error) {
        return `${error.kind}: ${error.description}`;
      }
    };
    assert.equal(name('{"Filename":"x.db"}'), 'x.db');
    assert.equal(name('{"Filename":"x.db","Other":1}'), 'x.db');
    assert.equal(name('{"Filenam\\u0065":"x.db"}'), 'x.db', 'escaped keys are decoded');
    assert.equal(name('{}'), undefined);
    assert.equal(name('{"filename":"x.db"}'), undefined, 'names are case-sensitive');
    assert.equal(name('{"Filename":"a","Filename":"b"}'), 'b', 'the last duplicate wins');
    assert.equal(name(''), 'BadRequest: undefined');
    assert.equal(name('{"Filename":"\\ud800"}'), 'BadRequest: The request body is not valid JSON: unexpected end of hex escape at line 1 column 20');
    assert.equal(name('{"a":1,}'), 'BadRequest: The request body is not valid JSON: trailing comma at line 1 column 8');
    assert.equal(name('{\n"a":\n'), 'BadRequest: The request body is not valid JSON: EOF while parsing a value at line 3 column 0');
    assert.equal(name('1e400'), 'BadRequest: The request body is not valid JSON: number out of range at line 1 column 5');
    assert.equal(name('['.repeat(200)), 'BadRequest: The request body is not valid JSON: recursion limit exceeded at line 1 column 128');
    assert.throws(() => parseJson(Buffer.from('{"Filename":"\xff"}', 'latin1')), /invalid unicode code point at line 1 column 14/);
  });

  test('query flags, ranges and Content-Disposition follow the Rust server', () => {
    for (const [query, expected] of [[undefined, false], ['', false], ['other=1', false], ['full', true], ['full=', true], ['full=TRUE', true], ['full=1', true], ['full=Yes', true], ['full=0', false], ['full=NO', false], ['x=1&full&y=2', true], ['fuller=true', false]]) {
      assert.equal(queryFlag(query, 'full'), expected, String(query));
    }
    for (const refused of ['full=2', 'full=on', 'full=true&full=true', 'full&full=0']) {
      assert.throws(() => queryFlag(refused, 'full'), (e) => e.kind === 'BadRequest', refused);
    }
    assert.deepEqual(byteRange(undefined, 100), 'whole');
    assert.deepEqual(byteRange('bytes=0-9', 100), [0, 10]);
    assert.deepEqual(byteRange('bytes=90-', 100), [90, 100]);
    assert.deepEqual(byteRange('bytes=-10', 100), [90, 100]);
    assert.deepEqual(byteRange('bytes=-200', 100), [0, 100]);
    assert.deepEqual(byteRange('bytes=50-500', 100), [50, 100]);
    assert.equal(byteRange('bytes=100-', 100), 'unsatisfiable');
    assert.equal(byteRange('bytes=-0', 100), 'unsatisfiable');
    for (const ignored of ['bytes=0-1,5-6', 'bytes=9-3', 'items=0-1', 'bytes=x-1', 'bytes=-', 'bytes=+1-2', 'junk']) {
      assert.equal(byteRange(ignored, 100), 'whole', ignored);
    }
    assert.equal(contentDisposition('x.db'), 'attachment; filename="x.db"');
    assert.equal(contentDisposition('日本.db'), "attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.db");
    assert.equal(contentDisposition('a"b.db'), "attachment; filename*=UTF-8''a%22b.db");
  });

  test('a backup that shrinks while it is sent cuts the connection, never a short body', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'x.db');
    // 64 MiB (sparse): far more than the socket buffers hold, so the server is still
    // streaming when the client, at its first bytes, cuts the file short.
    fs.closeSync(fs.openSync(file, 'w'));
    fs.truncateSync(file, 64 * 1024 * 1024);
    const service = { read: async () => ({ ...SAMPLE, filename: 'x.db' }) };
    const { port } = await serve(t, createHandler(service, { backups: dir }));
    const http = await import('node:http');
    const outcome = await new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/v1.0/backups/x.db', headers: { authorization: ADMIN }, agent: false }, (res) => {
        const promised = Number(res.headers['content-length']);
        let received = 0;
        res.on('data', (chunk) => {
          if (received === 0) fs.truncateSync(file, 1000);
          received += chunk.length;
        });
        res.on('end', () => resolve({ complete: res.complete, received, promised }));
        res.on('error', () => resolve({ complete: false, received, promised }));
        res.on('aborted', () => resolve({ complete: false, received, promised }));
      });
      req.on('error', () => resolve({ complete: false }));
      req.end();
    });
    assert.equal(outcome.complete, false, JSON.stringify(outcome));
    assert.ok(!(outcome.received >= outcome.promised), 'never the whole promised length');
  });
});

// ---------------------------------------------------------------------------------------
// The example server, as the README shows it

test('examples/server.js serves the routes on loopback and stops on SIGTERM', async (t) => {
  const { spawn } = await import('node:child_process');
  const places = workspace(t, { nodes: 20 });
  const child = spawn(process.execPath, [fileURLToPath(new URL('../examples/server.js', import.meta.url))], {
    env: { ...process.env, LITEGRAPH_DB: places.database, LITEGRAPH_BACKUPS: places.backups, PORT: '0', LITEGRAPH_BACKUP_COMPONENT: componentFile() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`the example did not start within 30 s:\n${output}`)), 30_000);
    const look = (chunk) => {
      output += chunk;
      const found = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (found) {
        clearTimeout(deadline);
        resolve(Number(found[1]));
      }
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    exited.then(() => reject(new Error(`the example exited:\n${output}`)));
  });
  const created = await admin(port, 'POST', '/v1.0/backups', '{"Filename":"example.db"}');
  assert.equal(created.status, 200, created.text);
  assertBackupFile(created.json());
  const listed = await admin(port, 'GET', '/v1.0/backups');
  assert.deepEqual(listed.json().map((b) => b.Filename), ['example.db']);
  assert.equal((await request(port, 'GET', '/v1.0/backups', { authorization: undefined })).status, 401);
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null }, output);
  assert.match(output, /POST \/v1\.0\/backups 200 .*\(backup "example\.db"\)/, 'one log line per request');
});
