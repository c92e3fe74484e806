//! Test kit for litegraph-backup: LiteGraph-like databases of any size, the checks the
//! end-to-end tests and the benchmarks share, and a loopback S3 server. It does not depend on
//! the host, so the host's benchmarks can use it too.

#[path = "s3_service.rs"]
pub mod s3_server;

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};

/// LiteGraph's tables (SetupQueries.cs, v4.0.17 to v7), without its many indexes' names.
pub const TABLES: [&str; 9] = [
    "tenants", "users", "creds", "labels", "tags", "vectors", "graphs", "nodes", "edges",
];

const SCHEMA: &str = "
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
";

/// Rows added per node: one node, one edge, one label, one tag and one 64-dimension vector;
/// about 1.4 KiB of database per node.
pub const BYTES_PER_NODE: u64 = 1_400;

/// A deterministic pseudo-random stream (SplitMix64), so databases are reproducible.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn guid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 48) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}

const TIMESTAMP: &str = "2025-05-27 03:31:10.904886";

/// Creates a LiteGraph-like database in WAL mode at `path`: two tenants with users,
/// credentials and graphs, and `nodes` nodes spread over the graphs, each with an edge, a
/// label, a tag and an embedding. Adds to the database if it exists.
pub fn create_litegraph_database(path: &Path, nodes: u64) -> rusqlite::Result<()> {
    let mut db = Connection::open(path)?;
    db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    db.execute_batch(SCHEMA)?;
    // Seeded by what is there already, so that growing a database never repeats a guid.
    let existing: i64 = db.query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))?;
    let mut random = Random(((existing as u64) << 20) ^ nodes ^ 0x5eed);
    let tx = db.transaction()?;
    let mut graphs = Vec::new();
    for t in 0..2 {
        let tenant = random.guid();
        tx.execute(
            "INSERT INTO tenants VALUES (?1, ?2, 1, ?3, ?3)",
            params![tenant, format!("Tenant {t}"), TIMESTAMP],
        )?;
        for u in 0..5 {
            let user = random.guid();
            tx.execute(
                "INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, 'password', 1, ?6, ?6)",
                params![
                    user,
                    tenant,
                    format!("First{u}"),
                    format!("Last{u}"),
                    format!("user{u}@tenant{t}.example"),
                    TIMESTAMP
                ],
            )?;
            tx.execute(
                "INSERT INTO creds VALUES (?1, ?2, ?3, 'Default credential', ?4, 1, '[\"admin\"]', '[]', ?5, ?5)",
                params![random.guid(), tenant, user, random.guid(), TIMESTAMP],
            )?;
        }
        for g in 0..3 {
            let graph = random.guid();
            tx.execute(
                "INSERT INTO graphs VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![
                    graph,
                    tenant,
                    format!("Graph {t}.{g}"),
                    format!("{{\"Owner\":\"tenant {t}\",\"Purpose\":\"test\"}}"),
                    TIMESTAMP
                ],
            )?;
            graphs.push((tenant.clone(), graph));
        }
    }
    add_nodes(&tx, &graphs, nodes, &mut random)?;
    tx.commit()
}

fn add_nodes(
    tx: &rusqlite::Transaction<'_>,
    graphs: &[(String, String)],
    nodes: u64,
    random: &mut Random,
) -> rusqlite::Result<()> {
    let mut node = tx.prepare("INSERT INTO nodes VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")?;
    let mut edge =
        tx.prepare("INSERT INTO edges VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)")?;
    let mut label = tx.prepare("INSERT INTO labels VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?6)")?;
    let mut tag = tx.prepare("INSERT INTO tags VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?7)")?;
    let mut vector = tx.prepare(
        "INSERT INTO vectors VALUES (?1, ?2, ?3, ?4, NULL, 'all-MiniLM-L6-v2', 64, ?5, ?6, ?7, ?7)",
    )?;
    let mut previous: Option<String> = None;
    for i in 0..nodes {
        let (tenant, graph) = &graphs[(i % graphs.len() as u64) as usize];
        let guid = random.guid();
        let score = random.next() % 1000;
        let data = format!(
            "{{\"Name\":\"node {i}\",\"Score\":{score},\"Tags\":[\"a\",\"b\"],\"Text\":\"{}\"}}",
            "lorem ipsum dolor sit amet ".repeat(4)
        );
        node.execute(params![
            guid,
            tenant,
            graph,
            format!("node {i}"),
            data,
            TIMESTAMP
        ])?;
        if let Some(from) = &previous {
            edge.execute(params![
                random.guid(),
                tenant,
                graph,
                format!("edge {i}"),
                from,
                guid,
                (score % 10) as i64,
                "{\"Weight\":1}",
                TIMESTAMP
            ])?;
        }
        label.execute(params![
            random.guid(),
            tenant,
            graph,
            guid,
            format!("label{}", i % 7),
            TIMESTAMP
        ])?;
        tag.execute(params![
            random.guid(),
            tenant,
            graph,
            guid,
            "score",
            score.to_string(),
            TIMESTAMP
        ])?;
        let embeddings: Vec<u8> = (0..64)
            .flat_map(|_| ((random.next() % 2000) as f32 / 1000.0 - 1.0).to_le_bytes())
            .collect();
        vector.execute(params![
            random.guid(),
            tenant,
            graph,
            guid,
            format!("node {i}"),
            embeddings,
            TIMESTAMP
        ])?;
        previous = Some(guid);
    }
    Ok(())
}

/// Grows (or creates) a LiteGraph-like database until its file is at least `bytes` long.
pub fn create_litegraph_database_of_size(path: &Path, bytes: u64) -> rusqlite::Result<()> {
    let batch = (bytes / BYTES_PER_NODE / 8).clamp(100, 50_000);
    loop {
        let current = database_bytes(path);
        if current >= bytes {
            return Ok(());
        }
        create_litegraph_database(path, batch.min((bytes - current) / BYTES_PER_NODE + 1))?;
    }
}

/// The size of the database, counting pages still in its WAL once it is checkpointed.
fn database_bytes(path: &Path) -> u64 {
    let Ok(db) = Connection::open(path) else {
        return 0;
    };
    let pages: i64 = db
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap_or(0);
    let page_size: i64 = db
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or(4096);
    (pages * page_size) as u64
}

/// Row count of every LiteGraph table.
pub fn row_counts(path: &Path) -> rusqlite::Result<BTreeMap<String, i64>> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    TABLES
        .iter()
        .map(|table| {
            let count =
                db.query_row(&format!("SELECT count(*) FROM '{table}'"), [], |r| r.get(0))?;
            Ok(((*table).to_owned(), count))
        })
        .collect()
}

/// A digest of every row of every table, in a fixed order: equal for equal content.
pub fn content_digest(path: &Path) -> rusqlite::Result<String> {
    use sha2::{Digest, Sha256};
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut hasher = Sha256::new();
    for table in TABLES {
        let mut rows = db.prepare(&format!("SELECT * FROM '{table}' ORDER BY guid"))?;
        let columns = rows.column_count();
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            for c in 0..columns {
                let value: rusqlite::types::Value = row.get(c)?;
                hasher.update(format!("{value:?}\u{1f}").as_bytes());
            }
            hasher.update(b"\x1e");
        }
    }
    Ok(upper_hex(&hasher.finalize()))
}

/// SQLite's `integrity_check` (or `quick_check`) verdict: `"ok"` or the first problem.
pub fn integrity(path: &Path, full: bool) -> rusqlite::Result<String> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let pragma = if full {
        "integrity_check"
    } else {
        "quick_check"
    };
    db.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
}

/// Uppercase hexadecimal, as LiteGraph writes digests.
pub fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The SHA-256 of a file, uppercase hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    Ok(upper_hex(&Sha256::digest(std::fs::read(path)?)))
}
