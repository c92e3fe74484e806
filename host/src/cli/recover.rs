//! `recover --to PATH [NAME | --latest]`: a database file made from a backup, for a machine
//! that lost everything. A local backup is verified and used; otherwise the backup is pulled
//! from the target (checked as `pull` checks it) into the backup directory. Then it is
//! copied to PATH, which must not exist, hashed as it is copied, flushed to disk, and
//! checked with SQLite's `integrity_check`; a copy that fails any of this is removed.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::commands::{LATEST, Operation, explain, plain_name};
use super::remote::{RemoteOperation, explain_remote, list_runtime, newest_remote, one_target};
use super::{Exit, Failure, RecoverArgs};
use crate::config::Config;
use crate::digests::upper_hex;
use crate::{BackupFile, Runtime};

pub const ABOUT: &str = "\
Make a database file from a backup, local or remote: for a machine that lost everything.

A backup in the backup directory is verified (its digests and quick_check) and used. Any
other is pulled from the remote target into the backup directory (created when missing),
its stored and decoded digests checked against the target's manifest, as `pull` does. The
backup is then copied to --to, where nothing may exist (exit 2 otherwise: recover never
overwrites), hashed as it is copied and compared with the backup's SHA-256, flushed to disk
with its directory, and checked with SQLite's integrity_check. A copy that fails a check is
removed (exit 4). --latest takes the newest backup by creation time among the local ones and
those the target holds (a local one when they are the same).

The file is a plain SQLite database: point LiteGraph at it (or move it into place) while
LiteGraph is stopped.";

pub const EXAMPLES: &str = "\
Examples:
  # a new machine: only the config file (and the age identity file) survived
  litegraph-backup --config lgb.toml recover --to /srv/litegraph/litegraph.db --latest
  litegraph-backup recover --to restored.db litegraph-backup-20250527-030000.db --target offsite";

/// Where the backup came from.
enum Origin {
    Local,
    Remote(String),
}

pub fn recover(config: &Config, args: &RecoverArgs, out: &mut impl Write) -> anyhow::Result<Exit> {
    refuse_existing(&args.to)?;
    let runtime = list_runtime(config)?;
    let (name, origin) = choose(&runtime, args, config)?;
    let backup = match &origin {
        Origin::Local => verified_local(&runtime, &name, args, config)?,
        Origin::Remote(target) => runtime
            .pull(target, &name)
            .map_err(|e| explain_remote(e, &RemoteOperation::Pull(&name, target), config))?,
    };
    let to = &args.to;
    materialise(&runtime, &backup, to)?;
    if config.json {
        writeln!(out, "{}", serde_json::to_string(&backup)?)?;
    } else if !config.quiet {
        let from = match &origin {
            Origin::Local => format!("{} (verified)", config.backups.path.display()),
            Origin::Remote(target) => format!(
                "remote target {target} (pulled into {})",
                config.backups.path.display()
            ),
        };
        writeln!(
            out,
            "recovered {} from {from} into {}: integrity_check ok",
            backup.filename,
            to.display()
        )?;
    }
    Ok(Exit::Success)
}

/// Refused before anything is read or downloaded: recover never overwrites.
fn refuse_existing(to: &Path) -> anyhow::Result<()> {
    if to.symlink_metadata().is_ok() {
        return Err(exists(to));
    }
    Ok(())
}

fn exists(to: &Path) -> anyhow::Error {
    Failure::error(
        Exit::Refused,
        format!(
            "{} exists; recover never overwrites a file: move it away or choose another --to",
            to.display()
        ),
    )
}

/// Which backup, and from where: a named local backup, else the target's; `--latest` the
/// newest of both.
fn choose(
    runtime: &Runtime,
    args: &RecoverArgs,
    config: &Config,
) -> anyhow::Result<(String, Origin)> {
    let named = args.name.as_deref().filter(|name| *name != LATEST);
    if let Some(name) = named {
        let name = plain_name(name).to_owned();
        let local = runtime
            .exists(&name)
            .map_err(|e| explain(e, &Operation::Exists(&name), config))?;
        if local {
            return Ok((name, Origin::Local));
        }
        if config.remotes.is_empty() {
            return Err(Failure::error(
                Exit::NotFound,
                format!(
                    "no backup named {name:?} in {}, and no remote target is configured",
                    config.backups.path.display()
                ),
            ));
        }
        return Ok((name, Origin::Remote(one_target(config, &args.target)?)));
    }
    newest(runtime, args, config)
}

/// The newest backup by creation time among the local ones and the target's; a local one
/// when both hold the same (nothing to download).
fn newest(
    runtime: &Runtime,
    args: &RecoverArgs,
    config: &Config,
) -> anyhow::Result<(String, Origin)> {
    let local = runtime
        .list()
        .map_err(|e| explain(e, &Operation::List, config))?
        .into_iter()
        .last();
    let remote = if config.remotes.is_empty() {
        None
    } else {
        let target = one_target(config, &args.target)?;
        newest_remote(runtime, &target, config)?.map(|r| (r, target))
    };
    match (local, remote) {
        (Some(local), Some((remote, _))) if local.created_utc >= remote.backup.created_utc => {
            Ok((local.filename, Origin::Local))
        }
        (_, Some((remote, target))) => Ok((remote.backup.filename, Origin::Remote(target))),
        (Some(local), None) => Ok((local.filename, Origin::Local)),
        (None, None) => Err(Failure::error(
            Exit::NotFound,
            format!(
                "no backups in {}{}, so none is the latest",
                config.backups.path.display(),
                if config.remotes.is_empty() {
                    ""
                } else {
                    " nor on the remote target"
                }
            ),
        )),
    }
}

fn verified_local(
    runtime: &Runtime,
    name: &str,
    args: &RecoverArgs,
    config: &Config,
) -> anyhow::Result<BackupFile> {
    let verdict = runtime
        .verify(name, false)
        .map_err(|e| explain(e, &Operation::Verify(name), config))?;
    if !verdict.verified {
        // The local copy is preferred while it exists, so a sound remote copy would never
        // be reached without being told how.
        let remedy = remote_holder(runtime, name, args, config)
            .map(|target| {
                let flag = match config.remotes.len() {
                    1 => String::new(),
                    _ => format!(" with --target {target}"),
                };
                format!(
                    "; remote target {target} holds a copy: move the damaged local backup \
                     away and re-run{flag} to recover from it"
                )
            })
            .unwrap_or_default();
        return Err(Failure::error(
            Exit::Damaged,
            format!(
                "{name} in {} failed verification, so nothing was recovered from it: {}{remedy}",
                config.backups.path.display(),
                verdict.problems.join("; ")
            ),
        ));
    }
    runtime
        .read(name)
        .map_err(|e| explain(e, &Operation::Show(name), config))
}

/// The first target (the one given, else each configured) whose listing holds `name`; a
/// target that cannot be listed is passed over (the error is about the local copy).
fn remote_holder(
    runtime: &Runtime,
    name: &str,
    args: &RecoverArgs,
    config: &Config,
) -> Option<String> {
    let targets: Vec<&str> = match &args.target.target {
        Some(target) => vec![target.as_str()],
        None => config.remotes.iter().map(|t| t.name.as_str()).collect(),
    };
    targets.into_iter().find_map(|target| {
        let held = runtime.remote_list(target).ok()?;
        held.iter()
            .any(|r| r.backup.filename == name)
            .then(|| target.to_owned())
    })
}

/// Puts the backup's bytes at `to`, which never holds anything but a whole, checked
/// database: they are copied to a hidden temporary beside it (`.NAME.lgb-recover-PID`),
/// hashed as they are written and compared with the recorded SHA-256, flushed, checked with
/// SQLite's `integrity_check`, and only then linked to `to` (a hard link, which never
/// replaces a file) and the temporary removed. An interrupted recover leaves at most the
/// temporary, never a partial file under the name asked for.
fn materialise(runtime: &Runtime, backup: &BackupFile, to: &Path) -> anyhow::Result<()> {
    let directory = parent_of(to);
    std::fs::create_dir_all(&directory).map_err(|e| {
        Failure::error(
            Exit::Failed,
            format!("cannot create the directory {}: {e}", directory.display()),
        )
    })?;
    let temporary = temporary_beside(to);
    let checked = write_copy(runtime, backup, &temporary, to).and_then(|()| {
        integrity_check(&temporary).map_err(|findings| {
            Failure::error(
                Exit::Damaged,
                format!(
                    "the copy of {} failed SQLite's integrity_check, nothing was written to {}: \
                     {findings}",
                    backup.filename,
                    to.display()
                ),
            )
        })
    });
    let published = checked.and_then(|()| {
        std::fs::hard_link(&temporary, to).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => exists(to),
            _ => Failure::error(Exit::Failed, format!("cannot create {}: {e}", to.display())),
        })
    });
    remove_copy(&temporary);
    published?;
    File::open(&directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| {
            Failure::error(
                Exit::Failed,
                format!("cannot flush the directory {}: {e}", directory.display()),
            )
        })
}

/// A hidden name beside `to`, unique to this process.
fn temporary_beside(to: &Path) -> PathBuf {
    let name = to
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recovered.db".to_owned());
    parent_of(to).join(format!(".{name}.lgb-recover-{}", std::process::id()))
}

/// Copies the backup's bytes to `copy_path` (created, never replaced), comparing their
/// SHA-256 with the one recorded, then flushes the file.
fn write_copy(
    runtime: &Runtime,
    backup: &BackupFile,
    copy_path: &Path,
    to: &Path,
) -> anyhow::Result<()> {
    let failed = |what: &str, e: io::Error| {
        Failure::error(
            Exit::Failed,
            format!("cannot {what} {}: {e}", copy_path.display()),
        )
    };
    let mut source = runtime
        .capabilities()
        .backups
        .open_for_reading(&backup.filename)
        .map_err(|e| {
            Failure::error(
                Exit::of(&e),
                format!("cannot read backup {}: {e}", backup.filename),
            )
        })?;
    let mut copy = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(copy_path)
        .map_err(|e| failed("create", e))?;
    let sha256 = copy_hashed(&mut source, &mut copy).map_err(|e| failed("write", e))?;
    copy.sync_all().map_err(|e| failed("flush", e))?;
    if !sha256.eq_ignore_ascii_case(&backup.sha256_hash) {
        return Err(Failure::error(
            Exit::Damaged,
            format!(
                "the copy of {} read SHA-256 {sha256}, not the recorded {}: the backup changed \
                 while it was copied; nothing was written to {}",
                backup.filename,
                backup.sha256_hash,
                to.display()
            ),
        ));
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Copies `source` to `target` in 1 MiB chunks; answers the SHA-256 of what was copied.
fn copy_hashed(source: &mut impl Read, target: &mut impl Write) -> io::Result<String> {
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash.update(&buffer[..read]);
        target.write_all(&buffer[..read])?;
    }
    Ok(upper_hex(&hash.finalize()))
}

/// SQLite's full `integrity_check` of the copy: `Err` with its findings.
fn integrity_check(path: &Path) -> Result<(), String> {
    use rusqlite::{Connection, OpenFlags};
    // Read-write (never create): a WAL-mode database needs its -shm to be read, and SQLite
    // removes the -wal and -shm it made when the connection closes.
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| e.to_string())?;
    let findings = connection
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| e.to_string())?;
    if findings.len() == 1 && findings[0] == "ok" {
        Ok(())
    } else {
        Err(findings.join("; "))
    }
}

/// Removes a copy that failed, with the -wal and -shm SQLite may have left beside it.
fn remove_copy(to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = to.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_path_is_refused_with_exit_2() {
        let dir = tempfile::tempdir().expect("scratch");
        let taken = dir.path().join("litegraph.db");
        std::fs::write(&taken, b"precious").expect("write");
        let error = refuse_existing(&taken).expect_err("taken");
        let failure = error.downcast_ref::<Failure>().expect("with its exit");
        assert_eq!(failure.exit, Exit::Refused);
        assert!(
            failure.message.contains("never overwrites"),
            "{}",
            failure.message
        );
        assert!(refuse_existing(&dir.path().join("free.db")).is_ok());
        assert_eq!(std::fs::read(&taken).expect("read"), b"precious");
    }

    #[test]
    fn a_copy_is_hashed_as_it_is_written() {
        let data = vec![7u8; 3 << 20];
        let mut copied = Vec::new();
        let sha256 = copy_hashed(&mut &data[..], &mut copied).expect("copied");
        assert_eq!(copied, data);
        assert_eq!(sha256, upper_hex(&Sha256::digest(&data)));
    }

    #[test]
    fn integrity_check_passes_a_database_and_fails_garbage() {
        let dir = tempfile::tempdir().expect("scratch");
        let good = dir.path().join("good.db");
        let connection = rusqlite::Connection::open(&good).expect("open");
        connection
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .expect("write");
        drop(connection);
        assert_eq!(integrity_check(&good), Ok(()));
        assert!(!dir.path().join("good.db-wal").exists(), "no -wal left");

        let bad = dir.path().join("bad.db");
        std::fs::write(&bad, vec![0x5Au8; 8192]).expect("write");
        assert!(integrity_check(&bad).is_err());
        remove_copy(&bad);
        assert!(!bad.exists());
    }
}
