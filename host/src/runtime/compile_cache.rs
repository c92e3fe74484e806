//! The compiled policy, kept on disk between processes: wasmtime's own cache, which keys an
//! entry by the component's bytes, wasmtime's version and the engine's settings, and checks
//! what it reads back (format, version, settings) before using it. Whatever is wrong with
//! the cache (missing, stale, damaged, a directory that cannot be made or written) costs a
//! compile, never a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::{Cache, CacheConfig};

/// The subdirectory wasmtime manages. Its clean-up deletes whatever it does not recognise
/// in the directory it is given, so it is never given the operator's directory itself.
const MANAGED: &str = "wasmtime";

/// Above these, wasmtime's clean-up (at most hourly, on a thread of its own, after a
/// compile) removes the entries used least recently. One entry is one version of the
/// policy (~0.35 MiB compressed); a few dozen versions fit.
const SIZE_LIMIT: u64 = 64 << 20;
const ENTRY_LIMIT: u64 = 64;

/// Where the compiled policy is kept between processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileCache {
    /// Compile the component in every process.
    Off,
    /// Keep it in this directory (in its `wasmtime/` subdirectory), which is made when
    /// missing.
    In(PathBuf),
}

impl CompileCache {
    /// wasmtime's cache in this directory; `None`, so that the component is compiled, when
    /// off or when the directory cannot be used (said in the log).
    pub(super) fn open(&self) -> Option<Cache> {
        let CompileCache::In(directory) = self else {
            return None;
        };
        match open(directory) {
            Ok(cache) => Some(cache),
            Err(why) => {
                tracing::warn!(
                    "the compiled policy is not kept in {} ({why}): it is compiled in every run; --no-compile-cache says so without this warning",
                    directory.display()
                );
                None
            }
        }
    }
}

fn open(directory: &Path) -> Result<Cache, String> {
    // wasmtime wants an absolute path; a relative one is the working directory's.
    let managed = std::path::absolute(directory)
        .map_err(|e| e.to_string())?
        .join(MANAGED);
    make_private_directory(&managed)?;
    let mut config = CacheConfig::new();
    config
        .with_directory(managed)
        .with_files_total_size_soft_limit(SIZE_LIMIT)
        .with_file_count_soft_limit(ENTRY_LIMIT)
        // An entry is compressed again (zstd level 20, seconds of CPU) after this many uses:
        // work that a short command would abandon at exit, and that a server does not need.
        .with_optimized_compression_usage_counter_threshold(u64::MAX);
    Cache::new(config).map_err(|e| format!("{e:#}"))
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

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Removes what the cache holds: after its code could not be used, so that the next
/// process finds it empty instead of failing on it again.
pub(super) fn clear(cache: &Cache) {
    if let Err(e) = fs::remove_dir_all(cache.directory()) {
        tracing::warn!(
            "cannot empty the compile cache {}: {e}",
            cache.directory().display()
        );
    }
}

/// Says in the debug log whether the policy came from the cache; when it could not be
/// kept there, removes what blocks it.
pub(super) fn report(cache: &Cache) {
    let directory = cache.directory().display();
    if cache.cache_hits() > 0 {
        tracing::debug!("the compiled policy was loaded from {directory}");
    } else if cache.cache_misses() > 0 {
        tracing::debug!("the policy was compiled and kept in {directory}");
    } else {
        tracing::debug!("the policy was compiled; it could not be kept in {directory}");
        remove_abandoned_writes(cache.directory());
    }
}

/// An entry being written lasts milliseconds.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// wasmtime writes an entry to `NAME.wip-atomic-write-mod` (made exclusively) and renames
/// it; a process killed in between leaves that file, and no later write of the entry can
/// begin while it is there. wasmtime's clean-up would remove it, but only runs after a
/// write succeeds: with one policy version, never. So a file of a write older than
/// [`ABANDONED_AFTER`] is removed here, once a compile could not be kept.
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
    fn entries(directory: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let modules = directory.join(MANAGED).join("modules");
        for version in fs::read_dir(modules).into_iter().flatten().flatten() {
            for file in fs::read_dir(version.path()).into_iter().flatten().flatten() {
                if file.path().extension().is_none() {
                    found.push(file.path());
                }
            }
        }
        found
    }

    #[test]
    fn a_foreign_entry_that_loads_is_replaced_by_a_compile() {
        let policy = tempfile::tempdir().expect("scratch");
        let cache = CompileCache::In(policy.path().to_owned());
        Policy::compile(crate::GUEST_COMPONENT, Limits::default(), &cache).expect("compiles");
        let [entry] = &entries(policy.path())[..] else {
            panic!("one entry: {:?}", entries(policy.path()));
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
        let [foreign] = &entries(other.path())[..] else {
            panic!("one entry: {:?}", entries(other.path()));
        };
        fs::copy(foreign, entry).expect("put the foreign code in the policy's place");
        let other_entry = policy.path().join(MANAGED).join("modules/wasmtime-0/other");
        fs::create_dir_all(other_entry.parent().expect("a parent")).expect("make it");
        fs::write(&other_entry, b"another version's code").expect("write");

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
        assert!(kept.exists(), "an entry is wasmtime's to remove");
    }
}
