//! The compiled policy, kept on disk between processes: wasmtime's own cache, which keys an
//! entry by the component's bytes, wasmtime's version and the engine's settings, and checks
//! what it reads back (format, version, settings) before using it, but not the machine code
//! itself. So we keep a manifest of our own beside wasmtime's directory: the SHA-256 of every
//! entry wasmtime wrote, recorded after a compile that stored one, and every entry is checked
//! against it before the cache is enabled; one that is not recorded or differs is removed.
//! Whatever is wrong with the cache (missing, stale, damaged, a directory that cannot be made
//! or written) costs a compile, never a failure. The manifest guards against damage, not
//! against someone who can write the cache (they can write the manifest too): the
//! directory's privacy does.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::{Cache, CacheConfig};

/// The subdirectory wasmtime manages. Its clean-up deletes whatever it does not recognise
/// in the directory it is given, so it is never given the operator's directory itself.
const MANAGED: &str = "wasmtime";

/// The manifest, in the cache's root beside [`MANAGED`]: `sha256sum` lines (`HEX  PATH`,
/// the path relative to the root), so `sha256sum -c` in the root checks it too.
const MANIFEST: &str = "wasmtime.sha256";

/// Beyond these, the entries written or used least recently are removed (after a compile
/// that stored one, by [`Opened::finish`]). One entry is one version of the policy or of
/// its settings (~0.35 MiB compressed). Every entry is read and hashed at each start (~0.2
/// ms of CPU each), so the limit also bounds that: ~3 ms at 16 entries.
const SIZE_LIMIT: u64 = 16 << 20;
const ENTRY_LIMIT: usize = 16;

/// wasmtime's own clean-up runs on a thread of its own after a compile, which a short
/// command's exit cuts off (leaving its `.cleanup.wip-PID` lock and more entries than the
/// limit). It starts only when no unexpired lock of that name is in its directory: this one
/// is ours, never expires (the interval is [`Duration::MAX`]), and keeps it from starting;
/// [`prune`] does the work instead, synchronously.
const CLEANUP_LOCK: &str = ".cleanup.wip-litegraph-backup";
const CLEANUP_PREFIX: &str = ".cleanup.wip-";

/// Where the compiled policy is kept between processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCache {
    /// Compile the component in every process.
    Off,
    /// Keep it in this directory (in its `wasmtime/` subdirectory), which is made (with its
    /// parents) when missing: the operator named it, so a warning says when it cannot be used.
    In(PathBuf),
    /// The user's cache directory, the default: `directory`, made only inside `under` (the
    /// home or `XDG_CACHE_HOME`) when that exists; when it cannot be used, the debug log
    /// says so.
    Default { under: PathBuf, directory: PathBuf },
}

/// Whether a named cache that cannot be used is said on stderr (a command's, whose log
/// shows errors only) rather than in the log (`serve`'s, or a library's).
static WARN_ON_STDERR: AtomicBool = AtomicBool::new(false);
/// Whether that warning was printed: once per process.
static WARNED: AtomicBool = AtomicBool::new(false);

impl CompileCache {
    /// The directory, when there is one.
    pub fn directory(&self) -> Option<&Path> {
        match self {
            CompileCache::Off => None,
            CompileCache::In(directory) | CompileCache::Default { directory, .. } => {
                Some(directory)
            }
        }
    }

    /// From now on, a directory named with `--compile-cache` (or its variable or key) that
    /// cannot be used is said in one `warning:` line on stderr, as the settings' warnings are
    /// for a command, instead of in the log.
    pub fn warn_on_stderr() {
        WARN_ON_STDERR.store(true, Ordering::Relaxed);
    }

    /// wasmtime's cache in this directory, its entries checked; `None`, so that the
    /// component is compiled, when off or when the directory cannot be used (said in a
    /// warning when the operator named it, in the log otherwise).
    pub(super) fn open(&self) -> Option<Opened> {
        let (directory, named) = match self {
            CompileCache::Off => return None,
            CompileCache::In(directory) => (directory, true),
            CompileCache::Default { under, directory } => {
                if !under.is_dir() {
                    tracing::debug!(
                        "the compiled policy is not kept: {} is not a directory",
                        under.display()
                    );
                    return None;
                }
                (directory, false)
            }
        };
        match Opened::new(directory) {
            Ok(opened) => Some(opened),
            Err(why) => {
                let message = format!(
                    "the compiled policy is not kept in {} ({why}): it is compiled in every run; --no-compile-cache says so without this warning",
                    directory.display()
                );
                if !named || !WARN_ON_STDERR.load(Ordering::Relaxed) {
                    tracing::warn!("{message}");
                } else if !WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!("warning: {message}");
                }
                None
            }
        }
    }
}

/// A SHA-256 digest.
type Digest256 = [u8; 32];

/// An entry as checked or recorded: its digest, and its length and modification time then
/// (what tells that it was written again since).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    digest: Digest256,
    length: u64,
    modified: Option<SystemTime>,
}

/// The entries by their path relative to the cache's root.
type Manifest = BTreeMap<String, Recorded>;

/// A cache ready for wasmtime: every entry in it matches the manifest.
pub(super) struct Opened {
    cache: Cache,
    root: PathBuf,
    verified: Manifest,
}

impl Opened {
    fn new(directory: &Path) -> Result<Opened, String> {
        // wasmtime wants an absolute path; a relative one is the working directory's.
        let root = std::path::absolute(directory).map_err(|e| e.to_string())?;
        let managed = root.join(MANAGED);
        make_private_directory(&managed)?;
        check_root(&root)?;
        let verified = verify(&root)?;
        hold_cleanup_lock(&managed);
        let mut config = CacheConfig::new();
        config
            .with_directory(managed)
            // Never started: see CLEANUP_LOCK.
            .with_cleanup_interval(Duration::MAX)
            // An entry is compressed again (zstd level 20, seconds of CPU) after this many
            // uses: work that a short command would abandon at exit, and that a server does
            // not need.
            .with_optimized_compression_usage_counter_threshold(u64::MAX);
        let cache = Cache::new(config).map_err(|e| format!("{e:#}"))?;
        Ok(Opened {
            cache,
            root,
            verified,
        })
    }

    /// wasmtime's cache, for the engine's configuration.
    pub(super) fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// Whether the compiled code was loaded from the cache.
    pub(super) fn loaded(&self) -> bool {
        self.cache.cache_hits() > 0
    }

    /// Removes what the cache holds: after its code could not be used, so that the next
    /// process finds it empty instead of failing on it again.
    pub(super) fn clear(&self) {
        let directory = self.cache.directory();
        if let Err(e) = fs::remove_dir_all(directory) {
            tracing::warn!(
                "cannot empty the compile cache {}: {e}",
                directory.display()
            );
        }
    }

    /// After the component was compiled or loaded: says in the debug log which; after a
    /// compile that stored an entry, removes the entries beyond the limits and records the
    /// others in the manifest; when a compile could not be kept, removes what blocks it.
    pub(super) fn finish(&self) {
        let directory = self.cache.directory().display();
        if self.cache.cache_hits() > 0 {
            tracing::debug!("the compiled policy was loaded from {directory}");
        } else if self.cache.cache_misses() > 0 {
            tracing::debug!("the policy was compiled and kept in {directory}");
            if let Err(e) = self.record() {
                tracing::debug!("cannot record the compiled policy in {directory}: {e}");
            }
        } else {
            tracing::debug!("the policy was compiled; it could not be kept in {directory}");
            remove_abandoned_writes(self.cache.directory());
        }
    }

    /// Prunes the entries to the limits and writes the manifest of those left: the digest
    /// checked when the cache was opened for an entry unchanged since, a new one for an
    /// entry written since (this process's, or a concurrent one's).
    fn record(&self) -> io::Result<()> {
        let mut entries = prune(&self.root);
        let mut manifest = Manifest::new();
        for (relative, path) in entries.drain(..) {
            let Ok(metadata) = fs::metadata(&path) else {
                continue;
            };
            let unchanged = self.verified.get(&relative).filter(|verified| {
                verified.length == metadata.len() && verified.modified == metadata.modified().ok()
            });
            let recorded = match unchanged {
                Some(verified) => verified.clone(),
                None => match digest(&path) {
                    Ok(recorded) => recorded,
                    Err(_) => continue,
                },
            };
            manifest.insert(relative, recorded);
        }
        write_manifest(&self.root, &manifest)
    }
}

/// Makes `path` (and its parents) when missing: private to this user, since whoever can
/// write there chooses the machine code this process runs.
fn make_private_directory(path: &Path) -> Result<(), String> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    check_private(path)
}

/// Refuses a directory that another user owns or may write to.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if metadata.uid() != rustix::process::geteuid().as_raw() {
        return Err(format!("{} belongs to another user", path.display()));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "others may write to {} (mode {:o})",
            path.display(),
            metadata.mode() & 0o777
        ));
    }
    Ok(())
}

/// Refuses a root (which holds the manifest and `wasmtime/`) where others may replace
/// either: writable by others without the sticky bit (with it, as in /tmp, only the owner
/// renames or removes what is in it).
#[cfg(unix)]
fn check_root(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if metadata.mode() & 0o022 != 0 && metadata.mode() & 0o1000 == 0 {
        return Err(format!(
            "others may write to {} (mode {:o})",
            path.display(),
            metadata.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

#[cfg(not(unix))]
fn check_root(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Every entry file under the root's `wasmtime/modules/VERSION/` (the compiled code; not
/// wasmtime's `.stats` and `.wip-*` files), by its path relative to the root.
fn entries(root: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(versions) = fs::read_dir(root.join(MANAGED).join("modules")) else {
        return found;
    };
    for version in versions.flatten() {
        if !version.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = fs::read_dir(version.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let name = name.to_string_lossy();
            if name.contains('.') || file.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let relative = format!(
                "{MANAGED}/modules/{}/{name}",
                version.file_name().to_string_lossy()
            );
            found.push((relative, file.path()));
        }
    }
    found
}

/// An entry's digest, length and modification time: read in pieces (a buffer the size of
/// the entry would cost more in page faults than the hashing).
fn digest(path: &Path) -> io::Result<Recorded> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let metadata = file.metadata()?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 64 << 10];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Recorded {
        digest: hasher.finalize().into(),
        length: metadata.len(),
        modified: metadata.modified().ok(),
    })
}

/// Checks every entry against the manifest and removes one that is not recorded (written
/// by a version without a manifest, or by a concurrent process that has not recorded it
/// yet: that costs a compile) or differs (damaged). An entry that cannot be removed makes
/// the cache unusable: wasmtime would load it.
fn verify(root: &Path) -> Result<Manifest, String> {
    let recorded = read_manifest(root);
    let mut verified = Manifest::new();
    for (relative, path) in entries(root) {
        let expected = recorded.get(&relative);
        match (expected, digest(&path)) {
            (Some(expected), Ok(actual)) if expected == &actual.digest => {
                verified.insert(relative, actual);
                continue;
            }
            // Removed meanwhile (by a concurrent process).
            (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => continue,
            (Some(_), _) => tracing::warn!(
                "{} is not the compiled code recorded for it (damaged): removed, compiled again",
                path.display()
            ),
            (None, _) => tracing::debug!("{} is not recorded: removed", path.display()),
        }
        for file in [path.clone(), stats_of(&path)] {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
            }
        }
    }
    Ok(verified)
}

/// The `.stats` file wasmtime keeps beside an entry.
fn stats_of(entry: &Path) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_owned();
    name.push(".stats");
    entry.with_file_name(name)
}

/// The manifest's digests; empty when it is missing or unreadable (every entry is then
/// compiled again), a line that does not parse left out.
fn read_manifest(root: &Path) -> BTreeMap<String, Digest256> {
    let Ok(text) = fs::read_to_string(root.join(MANIFEST)) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|line| {
            let (hex, relative) = line.split_once("  ")?;
            Some((relative.to_owned(), parse_hex(hex)?))
        })
        .collect()
}

fn parse_hex(hex: &str) -> Option<Digest256> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16);
    let mut digest = [0; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        let high = nibble(bytes[2 * i])?;
        let low = nibble(bytes[2 * i + 1])?;
        *byte = u8::try_from(high << 4 | low).ok()?;
    }
    Some(digest)
}

/// Writes the manifest whole: to a temporary beside it, renamed over it. Not flushed: after
/// a crash, a manifest lost or left empty removes the entries at the next start (a compile).
/// Two processes recording at once: the last rename wins, and an entry only the other
/// recorded is removed at the next start (a compile, never a failure).
fn write_manifest(root: &Path, manifest: &Manifest) -> io::Result<()> {
    let mut text = String::new();
    for (relative, recorded) in manifest {
        for byte in recorded.digest {
            text.push_str(&format!("{byte:02x}"));
        }
        text.push_str("  ");
        text.push_str(relative);
        text.push('\n');
    }
    let temporary = root.join(format!("{MANIFEST}.tmp-{}", std::process::id()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        fs::rename(&temporary, root.join(MANIFEST))
    });
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Keeps wasmtime's clean-up from starting (see [`CLEANUP_LOCK`]), and removes the locks
/// of clean-ups an exit cut off. Nothing here is needed to use the cache (a read-only one
/// works without).
fn hold_cleanup_lock(managed: &Path) {
    let Ok(files) = fs::read_dir(managed) else {
        return;
    };
    let mut held = false;
    for file in files.flatten() {
        let name = file.file_name();
        let name = name.to_string_lossy();
        if name == CLEANUP_LOCK {
            held = true;
        } else if name.starts_with(CLEANUP_PREFIX) {
            let _ = fs::remove_file(file.path());
        }
    }
    if !held {
        let made = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(managed.join(CLEANUP_LOCK));
        if let Err(e) = made {
            tracing::debug!("cannot write {CLEANUP_LOCK} in {}: {e}", managed.display());
        }
    }
}

/// When an entry was last written or (its `.stats`, which wasmtime rewrites on each use)
/// used.
fn last_used(entry: &Path) -> SystemTime {
    [entry.to_owned(), stats_of(entry)]
        .iter()
        .filter_map(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Removes the entries used least recently beyond [`ENTRY_LIMIT`] entries or [`SIZE_LIMIT`]
/// bytes (the newest is always kept), with their `.stats`, and abandoned writes; returns the
/// entries left.
fn prune(root: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(SystemTime, u64, String, PathBuf)> = entries(root)
        .into_iter()
        .map(|(relative, path)| {
            let length = fs::metadata(&path).map_or(0, |m| m.len());
            (last_used(&path), length, relative, path)
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let mut kept = Vec::new();
    let mut total = 0u64;
    for (_, length, relative, path) in found {
        total = total.saturating_add(length);
        if kept.is_empty() || (kept.len() < ENTRY_LIMIT && total <= SIZE_LIMIT) {
            kept.push((relative, path));
            continue;
        }
        tracing::debug!("removed {}: beyond the cache's limits", path.display());
        for file in [stats_of(&path), path] {
            let _ = fs::remove_file(file);
        }
    }
    remove_abandoned_writes(&root.join(MANAGED));
    kept
}

/// An entry being written lasts milliseconds.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// wasmtime writes an entry to `NAME.wip-atomic-write-mod` (made exclusively) and renames
/// it; a process killed in between leaves that file, and no later write of the entry can
/// begin while it is there. wasmtime's clean-up would have removed it, but does not run (see
/// [`CLEANUP_LOCK`]). So a file of a write older than [`ABANDONED_AFTER`] is removed here,
/// once a compile could not be kept and when pruning.
fn remove_abandoned_writes(directory: &Path) {
    let Ok(versions) = fs::read_dir(directory.join("modules")) else {
        return;
    };
    for version in versions.flatten() {
        let Ok(files) = fs::read_dir(version.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let abandoned = name.to_string_lossy().contains(".wip-atomic-write-")
                && file
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| {
                        modified.elapsed().is_ok_and(|age| age > ABANDONED_AFTER)
                    });
            if abandoned {
                match fs::remove_file(file.path()) {
                    Ok(()) => {
                        tracing::debug!("removed {}, an unfinished write", file.path().display())
                    }
                    Err(e) => tracing::debug!("cannot remove {}: {e}", file.path().display()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Policy};

    /// The entries (compiled code, not their `.stats`) under a cache directory.
    fn entry_paths(directory: &Path) -> Vec<PathBuf> {
        entries(directory)
            .into_iter()
            .map(|(_, path)| path)
            .collect()
    }

    #[test]
    fn a_foreign_entry_that_loads_is_replaced_by_a_compile() {
        let policy = tempfile::tempdir().expect("scratch");
        let cache = CompileCache::In(policy.path().to_owned());
        Policy::compile(crate::GUEST_COMPONENT, Limits::default(), &cache).expect("compiles");
        let [entry] = &entry_paths(policy.path())[..] else {
            panic!("one entry: {:?}", entry_paths(policy.path()));
        };
        let compiled = fs::read(entry).expect("read the entry");

        // The compiled code of another, valid component (an empty one) by the same engine:
        // wasmtime's checks on reading pass, and the policy cannot be built from it.
        let other = tempfile::tempdir().expect("scratch");
        let empty_component = b"\0asm\x0d\x00\x01\x00";
        let refused = Policy::compile(
            empty_component,
            Limits::default(),
            &CompileCache::In(other.path().to_owned()),
        );
        assert!(refused.is_err(), "it exports nothing");
        let [foreign] = &entry_paths(other.path())[..] else {
            panic!("one entry: {:?}", entry_paths(other.path()));
        };
        fs::copy(foreign, entry).expect("put the foreign code in the policy's place");
        let other_entry = policy.path().join(MANAGED).join("modules/wasmtime-0/other");
        fs::create_dir_all(other_entry.parent().expect("a parent")).expect("make it");
        fs::write(&other_entry, b"another version's code").expect("write");
        // Recorded as if they were what wasmtime wrote (as whoever can write the cache can):
        // the manifest lets them through, and the code that loads and fails is caught after.
        let manifest: Manifest = entries(policy.path())
            .into_iter()
            .map(|(relative, path)| (relative, digest(&path).expect("digest")))
            .collect();
        write_manifest(policy.path(), &manifest).expect("write the manifest");

        Policy::compile(crate::GUEST_COMPONENT, Limits::default(), &cache).expect("compiled again");
        assert!(
            !other_entry.exists(),
            "code that loaded and failed empties the cache: none of it is trusted"
        );
        assert_eq!(
            fs::read(entry).expect("the entry, written again"),
            compiled,
            "the entry holds the policy's code again"
        );
        assert_eq!(
            read_manifest(policy.path())
                .into_values()
                .collect::<Vec<_>>(),
            vec![<Digest256>::from(Sha256::digest(&compiled))],
            "and the manifest records it alone"
        );
    }

    #[test]
    fn entries_not_as_recorded_are_removed_before_use() {
        let root = tempfile::tempdir().expect("scratch");
        let version = root.path().join(MANAGED).join("modules/wasmtime-0");
        fs::create_dir_all(&version).expect("make it");
        let [good, damaged, unrecorded] = ["good", "damaged", "unrecorded"].map(|name| {
            let path = version.join(name);
            fs::write(&path, name.as_bytes()).expect("write");
            fs::write(stats_of(&path), b"usages = 1").expect("write its stats");
            path
        });
        let manifest: Manifest = entries(root.path())
            .into_iter()
            .filter(|(_, path)| path != &unrecorded)
            .map(|(relative, path)| (relative, digest(&path).expect("digest")))
            .collect();
        write_manifest(root.path(), &manifest).expect("write the manifest");
        fs::write(&damaged, b"damaged!").expect("damage it");

        let opened = CompileCache::In(root.path().to_owned())
            .open()
            .expect("opens");
        assert!(good.exists() && stats_of(&good).exists());
        for removed in [&damaged, &unrecorded] {
            assert!(!removed.exists(), "{}", removed.display());
            assert!(!stats_of(removed).exists(), "{}", removed.display());
        }
        assert_eq!(
            opened.verified.keys().collect::<Vec<_>>(),
            vec!["wasmtime/modules/wasmtime-0/good"]
        );
        assert!(
            root.path().join(MANAGED).join(CLEANUP_LOCK).exists(),
            "wasmtime's own clean-up is held off"
        );
    }

    #[test]
    fn a_manifest_that_does_not_parse_records_nothing() {
        let root = tempfile::tempdir().expect("scratch");
        fs::write(
            root.path().join(MANIFEST),
            "zz  wasmtime/modules/a/b\nno separator\n",
        )
        .expect("write");
        assert!(read_manifest(root.path()).is_empty());
        let digest = [7u8; 32];
        let manifest = Manifest::from([(
            "wasmtime/modules/v/e".to_owned(),
            Recorded {
                digest,
                length: 1,
                modified: None,
            },
        )]);
        write_manifest(root.path(), &manifest).expect("write");
        assert_eq!(
            read_manifest(root.path()),
            BTreeMap::from([("wasmtime/modules/v/e".to_owned(), digest)])
        );
        let names: Vec<_> = fs::read_dir(root.path())
            .expect("list")
            .flatten()
            .map(|f| f.file_name())
            .collect();
        assert_eq!(names, [MANIFEST], "no temporary left");
    }

    #[test]
    fn pruning_keeps_the_entries_used_last_within_the_limits() {
        let root = tempfile::tempdir().expect("scratch");
        let version = root.path().join(MANAGED).join("modules/wasmtime-0");
        fs::create_dir_all(&version).expect("make it");
        let now = SystemTime::now();
        let age = |path: &Path, seconds: u64| {
            fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(now - Duration::from_secs(seconds)))
                .expect("age it");
        };
        // Entry i was written i minutes ago; the last one's .stats says it was used just now.
        let last = ENTRY_LIMIT + 5;
        for i in 0..=last as u64 {
            let path = version.join(format!("e{i}"));
            fs::write(&path, b"code").expect("write");
            age(&path, 60 * (i + 1));
            fs::write(stats_of(&path), b"usages").expect("write");
            age(&stats_of(&path), 60 * (i + 1));
        }
        age(&stats_of(&version.join(format!("e{last}"))), 0);
        let kept = prune(root.path());
        assert_eq!(kept.len(), ENTRY_LIMIT);
        assert_eq!(entries(root.path()).len(), ENTRY_LIMIT);
        assert!(version.join(format!("e{last}")).exists(), "used last");
        for i in 0..ENTRY_LIMIT - 1 {
            assert!(version.join(format!("e{i}")).exists(), "e{i}");
        }
        for i in ENTRY_LIMIT - 1..last {
            let removed = version.join(format!("e{i}"));
            assert!(!removed.exists(), "{}", removed.display());
            assert!(!stats_of(&removed).exists(), "{}", removed.display());
        }

        // By size: one entry over the limit alone is kept when it is the newest.
        let big = version.join("big");
        fs::File::create(&big)
            .and_then(|f| f.set_len(SIZE_LIMIT + 1))
            .expect("a sparse file");
        let kept = prune(root.path());
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].1, big);
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_may_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("scratch");
        let managed = root.path().join(MANAGED);
        fs::create_dir(&managed).expect("make it");
        fs::set_permissions(&managed, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(CompileCache::In(root.path().to_owned()).open().is_none());

        fs::set_permissions(&managed, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(CompileCache::In(root.path().to_owned()).open().is_some());

        // The root, which holds the manifest: writable by others only with the sticky bit.
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(CompileCache::In(root.path().to_owned()).open().is_none());
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert!(CompileCache::In(root.path().to_owned()).open().is_some());
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("scratch");
        let directory = root.path().join("new/cache");
        assert!(CompileCache::In(directory.clone()).open().is_some());
        for made in [directory.clone(), directory.join(MANAGED)] {
            let mode = fs::metadata(&made).expect("made").permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", made.display());
        }
    }

    #[test]
    fn the_default_directory_is_made_only_under_an_existing_home() {
        let root = tempfile::tempdir().expect("scratch");
        let home = root.path().join("missing/home");
        let default = CompileCache::Default {
            under: home.clone(),
            directory: home.join(".cache/litegraph-backup"),
        };
        assert!(default.open().is_none());
        assert!(!root.path().join("missing").exists(), "nothing made");

        fs::create_dir_all(&home).expect("make the home");
        assert!(default.open().is_some());
        assert!(home.join(".cache/litegraph-backup").join(MANAGED).is_dir());
    }

    #[test]
    fn an_abandoned_write_is_removed_and_a_fresh_one_kept() {
        let root = tempfile::tempdir().expect("scratch");
        let version = root.path().join("modules/wasmtime-0");
        fs::create_dir_all(&version).expect("make it");
        let old = version.join("entry.wip-atomic-write-mod");
        let fresh = version.join("other.wip-atomic-write-mod");
        let kept = version.join("entry");
        for file in [&old, &fresh, &kept] {
            fs::write(file, b"x").expect("write");
        }
        let long_ago = std::time::SystemTime::now() - ABANDONED_AFTER * 2;
        for file in [&old, &kept] {
            fs::File::options()
                .write(true)
                .open(file)
                .and_then(|f| f.set_modified(long_ago))
                .expect("age it");
        }
        remove_abandoned_writes(root.path());
        assert!(!old.exists());
        assert!(fresh.exists(), "a write may still be under way");
        assert!(kept.exists(), "an entry is not removed as a write");
    }
}
