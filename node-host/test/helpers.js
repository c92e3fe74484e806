// Shared test helpers: temporary directories, LiteGraph-like databases (the same schema and
// rows as tests/lib.rs `create_litegraph_database`), and the Rust CLI.

import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import Database from 'better-sqlite3';

/** The node-host package directory. */
export const PACKAGE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The Rust CLI: `LITEGRAPH_BACKUP_BIN`, or the debug build of this repository. */
export const CLI = process.env.LITEGRAPH_BACKUP_BIN
  ? path.resolve(process.env.LITEGRAPH_BACKUP_BIN)
  : path.resolve(PACKAGE_DIR, '../target/debug/litegraph-backup');

/**
 * A fresh temporary directory, removed after the test (`t` is node:test's context; without
 * it, the caller removes it).
 */
export function tempDir(t, prefix = 'lgb-node-') {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  t?.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A database and a backup directory in a fresh temporary directory. */
export function workspace(t, { nodes = 20 } = {}) {
  const root = tempDir(t);
  const database = path.join(root, 'litegraph.db');
  const backups = path.join(root, 'backups');
  fs.mkdirSync(backups);
  if (nodes !== null) createLitegraphDatabase(database, nodes);
  return { root, database, backups };
}

/** LiteGraph's tables (SetupQueries.cs, v4.0.17 to v7). */
export const TABLES = ['tenants', 'users', 'creds', 'labels', 'tags', 'vectors', 'graphs', 'nodes', 'edges'];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS 'tenants' (guid VARCHAR(64) NOT NULL UNIQUE, name VARCHAR(128),
  active INT, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'users' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  firstname VARCHAR(64), lastname VARCHAR(64), email VARCHAR(128), password VARCHAR(128),
  active INT, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'creds' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  userguid VARCHAR(64) NOT NULL, name VARCHAR(64), bearertoken VARCHAR(64), active INT,
  scopes TEXT, graphguids TEXT, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'labels' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  graphguid VARCHAR(64) NOT NULL, nodeguid VARCHAR(64), edgeguid VARCHAR(64), label VARCHAR(256),
  createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'tags' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  graphguid VARCHAR(64) NOT NULL, nodeguid VARCHAR(64), edgeguid VARCHAR(64), tagkey VARCHAR(256),
  tagvalue TEXT, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'vectors' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  graphguid VARCHAR(64) NOT NULL, nodeguid VARCHAR(64), edgeguid VARCHAR(64), model VARCHAR(256),
  dimensionality INT, content TEXT, embeddings BLOB, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'graphs' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  name VARCHAR(128), data TEXT, createdutc VARCHAR(64), lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'nodes' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  graphguid VARCHAR(64) NOT NULL, name VARCHAR(128), data TEXT, createdutc VARCHAR(64),
  lastupdateutc VARCHAR(64));
CREATE TABLE IF NOT EXISTS 'edges' (guid VARCHAR(64) NOT NULL UNIQUE, tenantguid VARCHAR(64) NOT NULL,
  graphguid VARCHAR(64) NOT NULL, name VARCHAR(128), fromguid VARCHAR(64) NOT NULL,
  toguid VARCHAR(64) NOT NULL, cost INT NOT NULL, data TEXT, createdutc VARCHAR(64),
  lastupdateutc VARCHAR(64));
CREATE INDEX IF NOT EXISTS 'idx_users_tenantguid' ON 'users' (tenantguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_nodes_graphguid' ON 'nodes' (graphguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_nodes_name' ON 'nodes' (name ASC);
CREATE INDEX IF NOT EXISTS 'idx_edges_graphguid' ON 'edges' (graphguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_edges_fromguid' ON 'edges' (fromguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_edges_toguid' ON 'edges' (toguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_labels_nodeguid' ON 'labels' (nodeguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_tags_nodeguid' ON 'tags' (nodeguid ASC);
CREATE INDEX IF NOT EXISTS 'idx_vectors_nodeguid' ON 'vectors' (nodeguid ASC);
`;

/** About how many bytes of database each node adds (tests/lib.rs BYTES_PER_NODE). */
export const BYTES_PER_NODE = 1400;

const TIMESTAMP = '2025-05-27 03:31:10.904886';
const MASK = (1n << 64n) - 1n;

/** SplitMix64, as tests/lib.rs `Random`: the same seed gives the same rows. */
class Random {
  constructor(seed) {
    this.state = BigInt.asUintN(64, seed);
  }

  next() {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }

  guid() {
    const a = this.next();
    const b = this.next();
    const hex = (v, n) => v.toString(16).padStart(n, '0');
    return `${hex(a >> 32n, 8)}-${hex((a >> 16n) & 0xffffn, 4)}-4${hex(a & 0xfffn, 3)}-${hex((b >> 48n) | 0x8000n, 4)}-${hex(b & 0xffffffffffffn, 12)}`;
  }
}

/**
 * Creates a LiteGraph-like database in WAL mode at `file` (or adds to it): two tenants with
 * users, credentials and graphs, and `nodes` nodes, each with an edge, a label, a tag and a
 * 64-dimension embedding. The same rows as tests/lib.rs `create_litegraph_database`.
 */
export function createLitegraphDatabase(file, nodes) {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA);
    const existing = BigInt(db.prepare('SELECT count(*) AS n FROM nodes').get().n);
    const random = new Random((existing << 20n) ^ BigInt(nodes) ^ 0x5eedn);
    db.transaction(() => {
      const graphs = [];
      for (let t = 0; t < 2; t++) {
        const tenant = random.guid();
        db.prepare('INSERT INTO tenants VALUES (?, ?, 1, ?, ?)').run(tenant, `Tenant ${t}`, TIMESTAMP, TIMESTAMP);
        for (let u = 0; u < 5; u++) {
          const user = random.guid();
          db.prepare("INSERT INTO users VALUES (?, ?, ?, ?, ?, 'password', 1, ?, ?)")
            .run(user, tenant, `First${u}`, `Last${u}`, `user${u}@tenant${t}.example`, TIMESTAMP, TIMESTAMP);
          db.prepare("INSERT INTO creds VALUES (?, ?, ?, 'Default credential', ?, 1, '[\"admin\"]', '[]', ?, ?)")
            .run(random.guid(), tenant, user, random.guid(), TIMESTAMP, TIMESTAMP);
        }
        for (let g = 0; g < 3; g++) {
          const graph = random.guid();
          db.prepare('INSERT INTO graphs VALUES (?, ?, ?, ?, ?, ?)')
            .run(graph, tenant, `Graph ${t}.${g}`, `{"Owner":"tenant ${t}","Purpose":"test"}`, TIMESTAMP, TIMESTAMP);
          graphs.push([tenant, graph]);
        }
      }
      addNodes(db, graphs, nodes, random);
    })();
  } finally {
    db.close();
  }
}

function addNodes(db, graphs, nodes, random) {
  const node = db.prepare('INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?)');
  const edge = db.prepare('INSERT INTO edges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
  const label = db.prepare('INSERT INTO labels VALUES (?, ?, ?, ?, NULL, ?, ?, ?)');
  const tag = db.prepare('INSERT INTO tags VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)');
  const vector = db.prepare(
    "INSERT INTO vectors VALUES (?, ?, ?, ?, NULL, 'all-MiniLM-L6-v2', 64, ?, ?, ?, ?)",
  );
  const text = 'lorem ipsum dolor sit amet '.repeat(4);
  let previous;
  for (let i = 0; i < nodes; i++) {
    const [tenant, graph] = graphs[i % graphs.length];
    const guid = random.guid();
    const score = random.next() % 1000n;
    node.run(guid, tenant, graph, `node ${i}`, `{"Name":"node ${i}","Score":${score},"Tags":["a","b"],"Text":"${text}"}`, TIMESTAMP, TIMESTAMP);
    if (previous !== undefined) {
      edge.run(random.guid(), tenant, graph, `edge ${i}`, previous, guid, score % 10n, '{"Weight":1}', TIMESTAMP, TIMESTAMP);
    }
    label.run(random.guid(), tenant, graph, guid, `label${i % 7}`, TIMESTAMP, TIMESTAMP);
    tag.run(random.guid(), tenant, graph, guid, 'score', String(score), TIMESTAMP, TIMESTAMP);
    const embeddings = Buffer.alloc(64 * 4);
    for (let k = 0; k < 64; k++) {
      embeddings.writeFloatLE(Number(random.next() % 2000n) / 1000 - 1, k * 4);
    }
    vector.run(random.guid(), tenant, graph, guid, `node ${i}`, embeddings, TIMESTAMP, TIMESTAMP);
    previous = guid;
  }
}

/** Grows (or creates) a LiteGraph-like database until its pages hold at least `bytes`. */
export function createLitegraphDatabaseOfSize(file, bytes) {
  const batch = Math.min(Math.max(Math.floor(bytes / BYTES_PER_NODE / 8), 100), 50_000);
  for (;;) {
    const current = databaseBytes(file);
    if (current >= bytes) return;
    createLitegraphDatabase(file, Math.min(batch, Math.floor((bytes - current) / BYTES_PER_NODE) + 1));
  }
}

function databaseBytes(file) {
  if (!fs.existsSync(file)) return 0;
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('page_count', { simple: true }) * db.pragma('page_size', { simple: true });
  } finally {
    db.close();
  }
}

/** Row count of every LiteGraph table. */
export function rowCounts(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return Object.fromEntries(TABLES.map((t) => [t, db.prepare(`SELECT count(*) AS n FROM '${t}'`).get().n]));
  } finally {
    db.close();
  }
}

/** A digest of every row of every table, in a fixed order: equal for equal content. */
export function contentDigest(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const hash = crypto.createHash('sha256');
    for (const table of TABLES) {
      for (const row of db.prepare(`SELECT * FROM '${table}' ORDER BY guid`).raw().iterate()) {
        for (const value of row) {
          hash.update(Buffer.isBuffer(value) ? value : Buffer.from(`${typeof value}:${value}`));
          hash.update('\x1f');
        }
        hash.update('\x1e');
      }
    }
    return hash.digest('hex').toUpperCase();
  } finally {
    db.close();
  }
}

/** SQLite's `integrity_check` (or `quick_check`) verdict: 'ok' or the problems, joined. */
export function integrity(file, full = true) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.pragma(full ? 'integrity_check' : 'quick_check', { simple: false }).map((r) => Object.values(r)[0]).join('\n');
  } finally {
    db.close();
  }
}

/** MD5, SHA-1 and SHA-256 of a file, uppercase hex. */
export function fileDigests(file) {
  const bytes = fs.readFileSync(file);
  const hex = (algorithm) => crypto.createHash(algorithm).update(bytes).digest('hex').toUpperCase();
  return { md5: hex('md5'), sha1: hex('sha1'), sha256: hex('sha256') };
}

const COMPILE_CACHE = path.join(os.tmpdir(), 'litegraph-backup-node-tests-compile-cache');

function withoutNoCache(env) {
  const { LITEGRAPH_NO_COMPILE_CACHE: _, ...rest } = env;
  return rest;
}

/**
 * Runs the Rust CLI with `--json` on `database` and `backups`; returns `{ status, json,
 * stdout, stderr }` (`json` parsed when stdout is JSON). Its compiled policy is cached in
 * one directory the test runs share (as the Rust tests' `cli_command` does), never in the
 * user's ~/.cache.
 */
export function runCli({ database, backups }, args, { json = true } = {}) {
  const prefix = ['--database', database, '--backups', backups];
  const result = spawnSync(CLI, [...(json ? ['--json'] : []), ...prefix, ...args], {
    encoding: 'utf8',
    env: { ...withoutNoCache(process.env), LITEGRAPH_COMPILE_CACHE: COMPILE_CACHE },
  });
  if (result.error) throw result.error;
  let parsed;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    parsed = undefined;
  }
  return { status: result.status, json: parsed, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The component file the tests run: `LITEGRAPH_BACKUP_COMPONENT`, or the package's
 * `litegraph-backup.wasm`, written by the CLI (`litegraph-backup component --output`) when
 * missing.
 */
export function componentFile() {
  const file = process.env.LITEGRAPH_BACKUP_COMPONENT
    ? path.resolve(process.env.LITEGRAPH_BACKUP_COMPONENT)
    : path.join(PACKAGE_DIR, 'litegraph-backup.wasm');
  if (!fs.existsSync(file)) {
    const result = spawnSync(CLI, ['component', '--output', file], { encoding: 'utf8' });
    if (result.status !== 0) {
      throw new Error(`no component at ${file}, and ${CLI} could not write one: ${result.stderr || result.error}`);
    }
  }
  return file;
}

/**
 * The hostile guest the Rust tests run (tests/fixtures/hostile-guest, built by the tests
 * crate's build script): `LITEGRAPH_BACKUP_HOSTILE_COMPONENT`, or the newest build of it
 * under ../target.
 */
export function hostileComponentFile() {
  if (process.env.LITEGRAPH_BACKUP_HOSTILE_COMPONENT) return path.resolve(process.env.LITEGRAPH_BACKUP_HOSTILE_COMPONENT);
  const found = [];
  for (const profile of ['debug', 'release']) {
    const build = path.resolve(PACKAGE_DIR, '../target', profile, 'build');
    if (!fs.existsSync(build)) continue;
    for (const entry of fs.readdirSync(build)) {
      const file = path.join(build, entry, 'out', 'hostile.wasm');
      if (entry.startsWith('litegraph-backup-tests-') && fs.existsSync(file)) found.push(file);
    }
  }
  if (found.length === 0) {
    throw new Error(
      'no hostile guest component: build it with `cargo test -p litegraph-backup-tests --no-run` ' +
        'or set LITEGRAPH_BACKUP_HOSTILE_COMPONENT',
    );
  }
  return found.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
}

/** Every file and link under `root`: relative path -> content's SHA-256, link target or 'dir'. */
export function tree(root) {
  const found = {};
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const key = path.relative(root, full);
      if (entry.isSymbolicLink()) found[key] = `-> ${fs.readlinkSync(full)}`;
      else if (entry.isDirectory()) {
        found[key] = 'dir';
        walk(full);
      } else found[key] = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    }
  };
  walk(root);
  return found;
}

/** A WIT datetime as the Rust host's JSON shows it (RFC 3339, microseconds, UTC). */
export function rustTime({ seconds, nanoseconds }) {
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}.${String(Math.floor(nanoseconds / 1000)).padStart(6, '0')}Z`;
}

/** A BackupFile as the service gives it, in the Rust CLI's JSON shape. */
export function rustBackupFile(backup) {
  return {
    Filename: backup.filename,
    Length: Number(backup.length),
    MD5Hash: backup.md5Hash,
    SHA1Hash: backup.sha1Hash,
    SHA256Hash: backup.sha256Hash,
    CreatedUtc: rustTime(backup.createdUtc),
    LastUpdateUtc: rustTime(backup.lastUpdateUtc),
    LastAccessUtc: rustTime(backup.lastAccessUtc),
  };
}
