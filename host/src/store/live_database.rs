//! The live database's own files, when the backup directory can reach them: never backups.

use std::path::Path;

use cap_std::fs::MetadataExt;

use super::BackupDir;

/// What SQLite keeps beside a database: never backups, whatever their names look like.
const LIVE_DATABASE_SUFFIXES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// How the live database's files are recognised in the backup directory.
#[derive(Debug, Default)]
pub(super) struct LiveDatabaseFiles {
    /// Its file name and SQLite's files beside it, when this is its directory.
    pub(super) names: Vec<String>,
    /// Its device and inode, when it is on this directory's filesystem (a hard link).
    pub(super) identity: Option<(u64, u64)>,
}

impl BackupDir {
    /// Keeps the live database out of reach when it lives in this directory (`--backups`
    /// pointing at the database's own directory, however either path is spelt: symbolic
    /// links are resolved, and a hard link to the database is recognised by its inode):
    /// its file and SQLite's `-wal`, `-shm` and `-journal` files beside it are then refused
    /// by every operation and never listed, so no command or route can list, delete or
    /// restore the live database as a backup. Returns whether this is the database's own
    /// directory.
    pub fn protect_live_database(&mut self, database: &Path) -> bool {
        use std::os::unix::fs::MetadataExt as _;
        // The database as the filesystem resolves it: through symbolic links, to the file
        // SQLite will open (or, before it exists, the directory it will be made in).
        let resolved = std::fs::canonicalize(database).ok().or_else(|| {
            let parent = database.parent().filter(|p| !p.as_os_str().is_empty());
            let parent = std::fs::canonicalize(parent.unwrap_or(Path::new("."))).ok()?;
            Some(parent.join(database.file_name()?))
        });
        let Some(resolved) = resolved else {
            return false;
        };
        let ours = self.dir.dir_metadata().ok();
        let same_directory = match (resolved.parent().map(std::fs::metadata), &ours) {
            (Some(Ok(parent)), Some(ours)) => {
                parent.dev() == ours.dev() && parent.ino() == ours.ino()
            }
            _ => false,
        };
        let mut names = Vec::new();
        if same_directory && let Some(file_name) = resolved.file_name().and_then(|n| n.to_str()) {
            names = LIVE_DATABASE_SUFFIXES
                .iter()
                .map(|suffix| format!("{file_name}{suffix}"))
                .collect();
        }
        let identity = std::fs::metadata(&resolved)
            .ok()
            .filter(|m| ours.as_ref().is_some_and(|ours| ours.dev() == m.dev()))
            .map(|m| (m.dev(), m.ino()));
        let same_directory = !names.is_empty();
        self.live_database = LiveDatabaseFiles { names, identity };
        same_directory
    }

    /// Whether `name` is the live database or one of SQLite's files beside it: by name in
    /// the database's own directory, or by inode (a hard link to the database).
    pub(super) fn is_live_database_file(&self, name: &str) -> bool {
        let live = &self.live_database;
        if live.names.iter().any(|live| live == name) {
            return true;
        }
        live.identity.is_some_and(|(dev, ino)| {
            self.dir
                .symlink_metadata(name)
                .is_ok_and(|m| m.is_file() && m.dev() == dev && m.ino() == ino)
        })
    }
}
