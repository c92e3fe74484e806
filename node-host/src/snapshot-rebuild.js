// A restore without `sqlite_dbpage`: inside one write transaction of the target database, the
// backup (a private copy of exactly the bytes whose SHA-256 was checked, ATTACHed) replaces
// the target's schema and rows: every table, index, view and trigger of the target is
// dropped, the backup's are created and filled, and sqlite_sequence, the statistics tables,
// user_version and application_id are carried over. Other connections see the old content or
// the new one (one commit), never a mix, and re-read the schema. Restores work whatever
// tables were added or dropped since the backup was made.
//
// The rows are the backup's (rowids kept), the pages are SQLite's own: the restored file is
// not the backup's bytes page for page as the Rust host makes it, but the same content.

import { WitError } from './errors.js';
import { firstColumn, isCorrupt, quoted, sqliteError } from './snapshot-sqlite.js';

/** The schema name the backup is attached under. */
const BACKUP = 'lgb_backup';
/** SQLite's statistics tables, which `ANALYZE sqlite_schema` creates. */
const STAT_TABLES = ['sqlite_stat1', 'sqlite_stat2', 'sqlite_stat3', 'sqlite_stat4'];

/** Whether `sql` creates a virtual table. */
function isVirtual(sql) {
  return /^\s*CREATE\s+VIRTUAL\s+TABLE/i.test(sql ?? '');
}

function isInternal(name) {
  return name.toLowerCase().startsWith('sqlite_');
}

/** Attaches the file at `file` as the backup schema of `connection`. */
export function attachBackup(connection, file) {
  try {
    connection.prepare(`ATTACH DATABASE ? AS ${BACKUP}`).run(file);
  } catch (error) {
    throw sqliteError(error, 'cannot attach the backup');
  }
}

/** Detaches the backup again, if attached (outside any transaction). */
export function detachBackup(connection) {
  try {
    if (connection.open && !connection.inTransaction) connection.exec(`DETACH DATABASE ${BACKUP}`);
  } catch {
    // Not attached: nothing to do.
  }
}

/** The backup's schema, in creation order; `corrupt` when it cannot be read. */
function backupSchema(connection) {
  try {
    return connection.prepare(`SELECT type, name, tbl_name AS tableName, sql FROM ${BACKUP}.sqlite_schema ORDER BY rowid`).all();
  } catch (error) {
    if (isCorrupt(error)) throw new WitError('corrupt', `its schema cannot be read: ${error.message}`);
    throw sqliteError(error);
  }
}

function objectsOf(connection, schema) {
  return connection.prepare(`SELECT type, name, sql FROM ${schema}.sqlite_schema`).all();
}

/** Drops every table, index, view and trigger of main (SQLite's statistics too). */
function dropMain(connection) {
  const objects = objectsOf(connection, 'main');
  for (const { type, name } of objects.filter((o) => o.type === 'view')) connection.exec(`DROP VIEW main.${quoted(name)}`);
  for (const { name } of objects.filter((o) => o.type === 'trigger')) connection.exec(`DROP TRIGGER main.${quoted(name)}`);
  // Virtual tables first: dropping one drops its shadow tables.
  for (const { name } of objects.filter((o) => o.type === 'table' && isVirtual(o.sql))) {
    connection.exec(`DROP TABLE main.${quoted(name)}`);
  }
  for (const { name } of objectsOf(connection, 'main').filter((o) => o.type === 'table')) {
    if (!isInternal(name) || STAT_TABLES.includes(name.toLowerCase())) connection.exec(`DROP TABLE main.${quoted(name)}`);
  }
  if (hasTable(connection, 'main', 'sqlite_sequence')) connection.exec('DELETE FROM main.sqlite_sequence');
}

function hasTable(connection, schema, name) {
  return connection.prepare(`SELECT 1 FROM ${schema}.sqlite_schema WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

/** The columns of a backup table that hold stored values (generated columns left out). */
function storedColumns(connection, table) {
  return connection.prepare(`PRAGMA ${BACKUP}.table_xinfo(${quoted(table)})`).all()
    .filter((column) => column.hidden === 0)
    .map((column) => column.name);
}

/** How to address a backup table's rowid, or `undefined` for a WITHOUT ROWID table. */
function rowidAlias(connection, table, columns) {
  const taken = new Set(columns.map((c) => c.toLowerCase()));
  const alias = ['rowid', '_rowid_', 'oid'].find((a) => !taken.has(a));
  if (alias === undefined) return undefined;
  try {
    connection.prepare(`SELECT ${alias} FROM ${BACKUP}.${quoted(table)} LIMIT 0`);
    return alias;
  } catch {
    return undefined;
  }
}

/** Copies the rows of `table` from the backup into main's (empty) table of that name. */
function copyRows(connection, table) {
  const columns = storedColumns(connection, table);
  const alias = rowidAlias(connection, table, columns);
  const list = [...(alias ? [alias] : []), ...columns.map(quoted)].join(', ');
  connection.exec(`DELETE FROM main.${quoted(table)}`);
  connection.exec(`INSERT INTO main.${quoted(table)} (${list}) SELECT ${list} FROM ${BACKUP}.${quoted(table)}`);
}

/**
 * Replaces main's content with the attached backup's, inside the connection's open write
 * transaction: the first failure is thrown (`corrupt` for damage SQLite found, `io` or `busy`
 * else) and the caller rolls back. `tolerant` (a drill, into a scratch database nobody else
 * sees): no transaction is open, each step runs in one of its own, and a table whose rows
 * cannot be copied, or an index, view or trigger that cannot be made, is a finding
 * (returned) while the rest goes on.
 */
export function rebuildFromBackup(connection, { tolerant = false } = {}) {
  const findings = [];
  const attempt = (what, action) => {
    if (!tolerant) {
      try {
        action();
      } catch (error) {
        if (error instanceof WitError) throw error;
        if (isCorrupt(error)) throw new WitError('corrupt', `the backup cannot be restored: ${what}: ${error.message}`);
        throw sqliteError(error, `cannot restore ${what}`);
      }
      return;
    }
    // Each step in a transaction of its own: after SQLite meets a damaged page, rolling back
    // to a savepoint left the scratch database unwritable ("malformed") for every later
    // step; a whole rollback does not.
    connection.exec('BEGIN IMMEDIATE');
    try {
      action();
      connection.exec('COMMIT');
    } catch (error) {
      if (connection.inTransaction) connection.exec('ROLLBACK');
      findings.push(`${what}: ${error.message}`);
    }
  };

  const schema = backupSchema(connection);
  attempt('the live schema', () => dropMain(connection));
  const tables = schema.filter((o) => o.type === 'table' && !isInternal(o.name));
  // Virtual tables first: they create their shadow tables, whose rows are then copied.
  for (const table of tables.filter((t) => isVirtual(t.sql))) {
    attempt(`table ${table.name}`, () => connection.exec(table.sql));
  }
  for (const table of tables.filter((t) => !isVirtual(t.sql))) {
    attempt(`table ${table.name}`, () => {
      if (!hasTable(connection, 'main', table.name)) connection.exec(table.sql);
      copyRows(connection, table.name);
    });
  }
  if (hasTable(connection, BACKUP, 'sqlite_sequence') && hasTable(connection, 'main', 'sqlite_sequence')) {
    attempt('table sqlite_sequence', () => {
      connection.exec('DELETE FROM main.sqlite_sequence');
      connection.exec(`INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM ${BACKUP}.sqlite_sequence`);
    });
  }
  const stats = STAT_TABLES.filter((name) => hasTable(connection, BACKUP, name));
  if (stats.length > 0) {
    attempt('the statistics', () => {
      connection.exec('ANALYZE main.sqlite_schema');
      for (const name of STAT_TABLES) {
        if (!hasTable(connection, 'main', name)) continue;
        if (stats.includes(name)) {
          connection.exec(`DELETE FROM main.${name}`);
          connection.exec(`INSERT INTO main.${name} SELECT * FROM ${BACKUP}.${name}`);
        } else {
          connection.exec(`DROP TABLE main.${name}`);
        }
      }
    });
  }
  // Indexes once the rows are in, then views, then triggers (which must not fire above).
  for (const type of ['index', 'view', 'trigger']) {
    for (const object of schema.filter((o) => o.type === type && o.sql)) {
      attempt(`${type} ${object.name}`, () => connection.exec(object.sql));
    }
  }
  attempt('user_version and application_id', () => {
    for (const pragma of ['user_version', 'application_id']) {
      const value = connection.pragma(`${BACKUP}.${pragma}`, { simple: true });
      connection.pragma(`main.${pragma} = ${Number(value) | 0}`);
    }
  });
  return findings;
}

/** Every table of the schema but SQLite's own and virtual ones, by name (drill.rs). */
export function tableNames(connection, schema) {
  return firstColumn(
    connection,
    `SELECT name FROM ${schema}.sqlite_schema WHERE type = 'table' ` +
      "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' " +
      "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
  );
}

/** The rows of `schema.table`, or SQLite's reason why not: `{ rows }` or `{ error }`. */
export function countRows(connection, schema, table) {
  try {
    const rows = connection.prepare(`SELECT count(*) FROM ${schema}.${quoted(table)}`).pluck().get();
    return { rows: BigInt(rows) };
  } catch (error) {
    return { error: error.message };
  }
}
