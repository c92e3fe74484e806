//! The compiled policy kept between runs (`--compile-cache`): the first run fills the
//! cache, the next ones load from it, and nothing wrong with it (damaged, unwritable, in
//! the way, half written) makes a command fail or answer differently.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use crate::support::{Deployment, stderr, stdout};

/// A deployment holding one backup, so that `list --json` has something to answer.
fn deployment() -> Deployment {
    let deployment = Deployment::with_nodes(10);
    deployment
        .runtime()
        .create(Some("kept.db"))
        .expect("create a backup");
    deployment
}

/// The command every test runs: it needs the policy.
const LIST: [&str; 2] = ["list", "--json"];

/// The CLI of `deployment` keeping the compiled policy in `cache`, with the runtime's
/// debug log on stderr (which says whether the policy was loaded or compiled).
fn cli(deployment: &Deployment, cache: &Path) -> Command {
    let mut command = deployment.cli();
    command
        .arg("--compile-cache")
        .arg(cache)
        .args(["--log", "litegraph_backup::runtime=debug"]);
    command
}

/// Runs `command`, which must succeed.
fn succeeds(command: &mut Command) -> Output {
    let output = command.output().expect("run the CLI");
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// What `list --json` answers without any cache.
fn uncached_answer(deployment: &Deployment) -> String {
    stdout(&succeeds(
        deployment.cli().arg("--no-compile-cache").args(LIST),
    ))
}

/// One file of compiled code as found: its bytes, and what tells a rewrite (inode,
/// modification time).
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    bytes: Vec<u8>,
    inode: u64,
    modified: SystemTime,
}

/// Every file of compiled code under `cache`: files without an extension (wasmtime's
/// `.stats` files and `.wip-*` locks are its bookkeeping).
fn entries(cache: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut found = BTreeMap::new();
    let mut pending = vec![cache.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let metadata = fs::metadata(&path).expect("stat");
            if metadata.is_dir() {
                pending.push(path);
            } else if path.extension().is_none() {
                let bytes = fs::read(&path).expect("read an entry");
                let modified = metadata.modified().expect("mtime");
                let inode = metadata.ino();
                found.insert(
                    path,
                    Entry {
                        bytes,
                        inode,
                        modified,
                    },
                );
            }
        }
    }
    found
}

/// Every path under `root`.
fn everything(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                pending.push(entry.path());
            }
            found.push(entry.path());
        }
    }
    found.sort();
    found
}

#[test]
fn the_first_run_fills_the_cache_and_the_next_load_it_unchanged() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    let answer = uncached_answer(&deployment);

    let first = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert_eq!(stdout(&first), answer);
    assert!(
        stderr(&first).contains("compiled and kept in"),
        "{}",
        stderr(&first)
    );
    let filled = entries(cache.path());
    assert_eq!(filled.len(), 1, "one entry: {:?}", filled.keys());

    for _ in 0..2 {
        let next = succeeds(cli(&deployment, cache.path()).args(LIST));
        assert_eq!(stdout(&next), answer);
        assert!(stderr(&next).contains("loaded from"), "{}", stderr(&next));
        assert_eq!(entries(cache.path()), filled, "read, never rewritten");
    }
}

/// `content` as a zstd frame of one raw block: it decompresses, into something that is not
/// compiled code.
fn zstd_frame(content: &[u8]) -> Vec<u8> {
    let length = u8::try_from(content.len()).expect("a short content");
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x20, length];
    let block_header = (u32::from(length) << 3) | 1;
    frame.extend_from_slice(&block_header.to_le_bytes()[..3]);
    frame.extend_from_slice(content);
    frame
}

/// What a damage makes of a file's bytes.
type Damage = fn(&[u8]) -> Vec<u8>;

#[test]
fn a_damaged_cache_is_compiled_again_and_repaired() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    let answer = stdout(&succeeds(cli(&deployment, cache.path()).args(LIST)));
    let filled = entries(cache.path());
    assert_eq!(filled.len(), 1);

    let damages: [(&str, Damage); 4] = [
        ("garbage", |bytes| {
            (0..bytes.len()).map(|i| (i * 131 + 7) as u8).collect()
        }),
        ("truncated", |bytes| bytes[..bytes.len() / 2].to_vec()),
        ("empty", |_| Vec::new()),
        ("compressed garbage", |_| zstd_frame(b"not compiled code")),
    ];
    for (damage, damaged) in damages {
        // Every file of the cache, wasmtime's bookkeeping included.
        for path in everything(cache.path()) {
            if path.is_file() {
                let bytes = fs::read(&path).expect("read");
                fs::write(&path, damaged(&bytes)).expect("damage it");
            }
        }
        let output = succeeds(cli(&deployment, cache.path()).args(LIST));
        assert_eq!(stdout(&output), answer, "{damage}");
        assert!(
            stderr(&output).contains("compiled and kept in"),
            "{damage}: {}",
            stderr(&output)
        );
        let repaired = entries(cache.path());
        assert_eq!(
            repaired.keys().collect::<Vec<_>>(),
            filled.keys().collect::<Vec<_>>(),
            "{damage}"
        );
        for (path, entry) in &filled {
            assert!(repaired[path].bytes == entry.bytes, "{damage}: {path:?}");
        }
        let loaded = succeeds(cli(&deployment, cache.path()).args(LIST));
        assert!(stderr(&loaded).contains("loaded from"), "{damage}");
    }
}

/// Whether this process can write into `dir` whatever its permissions say (root can).
fn writes_past_permissions(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let wrote = fs::write(&probe, b"").is_ok();
    let _ = fs::remove_file(probe);
    wrote
}

#[test]
fn a_cache_directory_that_cannot_be_used_is_skipped() {
    let deployment = deployment();
    let answer = uncached_answer(&deployment);
    let scratch = tempfile::tempdir().expect("scratch");

    let run = |cache: &Path, case: &str| {
        let output = succeeds(cli(&deployment, cache).args(LIST));
        assert_eq!(stdout(&output), answer, "{case}");
        stderr(&output)
    };
    let skipped = |cache: &Path, case: &str| {
        let log = run(cache, case);
        assert!(
            log.contains("the compiled policy is not kept in"),
            "{case}: {log}"
        );
    };

    let file = scratch.path().join("a-file");
    fs::write(&file, b"mine").expect("write");
    skipped(&file, "a regular file in its place");
    assert_eq!(fs::read(&file).expect("read"), b"mine");

    let taken = scratch.path().join("taken");
    fs::create_dir(&taken).expect("mkdir");
    fs::write(taken.join("wasmtime"), b"mine").expect("write");
    skipped(&taken, "a regular file in the place of its wasmtime/");
    assert_eq!(fs::read(taken.join("wasmtime")).expect("read"), b"mine");

    skipped(
        Path::new("/proc/self/litegraph-backup-cache"),
        "a place where no directory can be made",
    );

    let shared = scratch.path().join("shared");
    fs::create_dir_all(shared.join("wasmtime")).expect("mkdir");
    fs::set_permissions(shared.join("wasmtime"), fs::Permissions::from_mode(0o777)).expect("chmod");
    skipped(&shared, "a directory others may write to");
    assert!(
        everything(&shared.join("wasmtime")).is_empty(),
        "code others could have written is never loaded, and none is written there"
    );

    let read_only = scratch.path().join("read-only");
    fs::create_dir(&read_only).expect("mkdir");
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).expect("chmod");
    if writes_past_permissions(&read_only) {
        // Permissions do not stop this user (root): only the command's answer is tested.
        run(&read_only, "a read-only directory");
    } else {
        skipped(&read_only, "a read-only directory");
        assert!(everything(&read_only).is_empty());
    }
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_filled_cache_made_read_only_is_still_loaded() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    let answer = stdout(&succeeds(cli(&deployment, cache.path()).args(LIST)));
    let chmod_all = |directories: u32, files: u32| {
        for path in everything(cache.path()) {
            let mode = if path.is_dir() { directories } else { files };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        }
    };
    chmod_all(0o555, 0o444);
    let output = succeeds(cli(&deployment, cache.path()).args(LIST));
    chmod_all(0o755, 0o644);
    assert_eq!(stdout(&output), answer);
    assert!(
        stderr(&output).contains("loaded from"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_interrupted_write_does_not_block_the_cache_for_good() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    succeeds(cli(&deployment, cache.path()).args(LIST));
    let filled = entries(cache.path());
    let [entry] = &filled.keys().collect::<Vec<_>>()[..] else {
        panic!("one entry: {filled:?}");
    };
    // What a process killed while writing the entry leaves: the temporary it writes first,
    // and no entry.
    fs::remove_file(entry).expect("remove the entry");
    let unfinished = entry.with_extension("wip-atomic-write-mod");
    fs::write(&unfinished, b"half").expect("write");
    fs::File::options()
        .write(true)
        .open(&unfinished)
        .and_then(|file| file.set_modified(SystemTime::now() - Duration::from_secs(3600)))
        .expect("an hour ago");

    let blocked = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert!(
        stderr(&blocked).contains("could not be kept"),
        "{}",
        stderr(&blocked)
    );
    assert!(!unfinished.exists(), "the unfinished write is removed");
    let kept = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert!(
        stderr(&kept).contains("compiled and kept in"),
        "{}",
        stderr(&kept)
    );
    assert_eq!(entries(cache.path()).len(), 1);
}

#[test]
fn no_compile_cache_writes_nothing() {
    let deployment = deployment();
    let home = tempfile::tempdir().expect("scratch");
    let named = home.path().join("named");
    let in_home = |command: &mut Command| {
        command
            .env("HOME", home.path())
            .env_remove("XDG_CACHE_HOME")
            .env_remove("LITEGRAPH_COMPILE_CACHE")
            .env_remove("LITEGRAPH_NO_COMPILE_CACHE");
    };

    let mut flag = deployment.cli();
    in_home(&mut flag);
    succeeds(flag.arg("--no-compile-cache").args(LIST));
    let mut variable = deployment.cli();
    in_home(&mut variable);
    succeeds(variable.env("LITEGRAPH_NO_COMPILE_CACHE", "1").args(LIST));
    let mut over_a_named_one = deployment.cli();
    in_home(&mut over_a_named_one);
    succeeds(
        over_a_named_one
            .env("LITEGRAPH_COMPILE_CACHE", &named)
            .arg("--no-compile-cache")
            .args(LIST),
    );
    assert!(everything(home.path()).is_empty(), "nothing in HOME");

    // Without it, the cache is the user's: ~/.cache/litegraph-backup, or under
    // XDG_CACHE_HOME.
    let mut default = deployment.cli();
    in_home(&mut default);
    succeeds(default.args(LIST));
    assert_eq!(
        entries(&home.path().join(".cache/litegraph-backup")).len(),
        1,
        "{:?}",
        everything(home.path())
    );
    let xdg = tempfile::tempdir().expect("scratch");
    let mut under_xdg = deployment.cli();
    in_home(&mut under_xdg);
    succeeds(under_xdg.env("XDG_CACHE_HOME", xdg.path()).args(LIST));
    assert_eq!(entries(&xdg.path().join("litegraph-backup")).len(), 1);
}

#[test]
fn config_shows_where_the_compiled_policy_is_kept() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    let shown = |command: &mut Command| {
        let output = succeeds(command.arg("config"));
        stdout(&output)
            .lines()
            .find(|line| line.starts_with("compile_cache "))
            .unwrap_or_else(|| panic!("no compile_cache in {}", stdout(&output)))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        shown(deployment.cli().arg("--compile-cache").arg(cache.path())),
        format!("{} flag", cache.path().display())
    );
    assert_eq!(
        shown(
            deployment
                .cli()
                .env_remove("LITEGRAPH_COMPILE_CACHE")
                .env("LITEGRAPH_NO_COMPILE_CACHE", "1")
        ),
        "(off) env LITEGRAPH_NO_COMPILE_CACHE"
    );
    assert_eq!(
        shown(
            deployment
                .cli()
                .env_remove("LITEGRAPH_COMPILE_CACHE")
                .env_remove("HOME")
                .env_remove("XDG_CACHE_HOME")
        ),
        "(off) default",
        "no home, no cache"
    );
    assert!(
        everything(cache.path()).is_empty(),
        "config compiles nothing"
    );
}

/// The compiled code of an entry (a zstd frame around an ELF image): `damage` applied to
/// its `.text`, compressed again by the standard `zstd` tool. wasmtime's own checks (format,
/// version, settings) still pass: only the code differs.
fn damage_machine_code(entry: &Path, damage: impl FnOnce(&mut [u8])) {
    let scratch = tempfile::tempdir().expect("scratch");
    let image = scratch.path().join("image");
    let decompressed = crate::support::s3::zstd_decompress(entry, &image);
    assert!(decompressed.status.success(), "{}", stderr(&decompressed));
    let mut bytes = fs::read(&image).expect("read the image");
    let elf = bytes
        .windows(4)
        .position(|w| w == b"\x7fELF")
        .expect("an ELF image");
    let (offset, size) = elf_section(&bytes[elf..], b".text").expect("a .text section");
    damage(&mut bytes[elf + offset..elf + offset + size]);
    fs::write(&image, &bytes).expect("write the damaged image");
    let compressed = Command::new("zstd")
        .args(["-q", "-f"])
        .arg(&image)
        .arg("-o")
        .arg(entry)
        .output()
        .expect("run zstd");
    assert!(compressed.status.success(), "{}", stderr(&compressed));
}

/// Where the section `name` of a little-endian ELF64 image is: its offset and size.
fn elf_section(elf: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at =
        |at: usize| usize::try_from(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?)).ok();
    let headers = u64_at(0x28)?;
    let header_size = usize::from(u16_at(0x3A)?);
    let count = usize::from(u16_at(0x3C)?);
    let names = headers + usize::from(u16_at(0x3E)?) * header_size;
    let names_offset = u64_at(names + 24)?;
    (0..count).find_map(|i| {
        let header = headers + i * header_size;
        let start = names_offset + usize::try_from(u32_at(header)?).ok()?;
        let found = elf.get(start..start + name.len() + 1)?;
        (found[..name.len()] == *name && found[name.len()] == 0)
            .then(|| Some((u64_at(header + 24)?, u64_at(header + 32)?)))
            .flatten()
    })
}

#[test]
fn damaged_machine_code_that_still_decompresses_is_compiled_again() {
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    let answer = stdout(&succeeds(cli(&deployment, cache.path()).args(LIST)));
    let filled = entries(cache.path());
    let [(entry, original)] = &filled.iter().collect::<Vec<_>>()[..] else {
        panic!("one entry: {:?}", filled.keys());
    };

    // Bit rot in the code: every instruction `ud2`. Loaded, it would crash every run.
    damage_machine_code(entry, |text| {
        for pair in text.chunks_exact_mut(2) {
            pair.copy_from_slice(&[0x0f, 0x0b]);
        }
    });
    assert_ne!(fs::read(entry).expect("read"), original.bytes);
    let output = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert_eq!(stdout(&output), answer);
    let log = stderr(&output);
    assert!(log.contains("(damaged): removed"), "{log}");
    assert!(log.contains("compiled and kept in"), "{log}");
    assert_eq!(
        fs::read(entry).expect("the entry, written again"),
        original.bytes,
        "repaired"
    );
    let loaded = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert_eq!(stdout(&loaded), answer);
    assert!(
        stderr(&loaded).contains("loaded from"),
        "{}",
        stderr(&loaded)
    );

    // An entry the manifest does not record (a cache from before it, or a lost manifest)
    // is not trusted either.
    fs::remove_file(cache.path().join("wasmtime.sha256")).expect("remove the manifest");
    let output = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert_eq!(stdout(&output), answer);
    assert!(
        stderr(&output).contains("compiled and kept in"),
        "{}",
        stderr(&output)
    );
    assert!(cache.path().join("wasmtime.sha256").exists());
}

#[test]
fn the_default_cache_is_not_made_without_an_existing_home() {
    let deployment = deployment();
    let answer = uncached_answer(&deployment);
    let scratch = tempfile::tempdir().expect("scratch");
    let missing = scratch.path().join("nonexistent");
    let run = |home: &Path, xdg: Option<&Path>| {
        let mut command = deployment.cli();
        command
            .env_remove("LITEGRAPH_COMPILE_CACHE")
            .env("HOME", home)
            .env_remove("XDG_CACHE_HOME")
            .args(["--log", "litegraph_backup::runtime=debug"]);
        if let Some(xdg) = xdg {
            command.env("XDG_CACHE_HOME", xdg);
        }
        let output = succeeds(command.args(LIST));
        assert_eq!(stdout(&output), answer);
        stderr(&output)
    };
    let log = run(&missing.join("x"), None);
    assert!(log.contains("is not a directory"), "{log}");
    let log = run(scratch.path(), Some(&missing.join("cache")));
    assert!(log.contains("is not a directory"), "{log}");
    assert!(
        everything(scratch.path()).is_empty(),
        "neither the home nor the XDG cache directory is made: {:?}",
        everything(scratch.path())
    );
}

#[test]
fn entries_beyond_the_limits_are_pruned_in_the_run_that_compiles() {
    use sha2::{Digest, Sha256};
    let deployment = deployment();
    let cache = tempfile::tempdir().expect("scratch");
    succeeds(cli(&deployment, cache.path()).args(LIST));
    let [policy] = &entries(cache.path()).into_keys().collect::<Vec<_>>()[..] else {
        panic!("one entry");
    };
    fs::remove_file(policy).expect("remove it, so that the next run compiles");

    // 20 entries of other versions, recorded as wasmtime's, written 1 to 20 hours ago, and
    // the lock of a clean-up an exit cut off.
    let managed = cache.path().join("wasmtime");
    let other = managed.join("modules/wasmtime-0");
    fs::create_dir_all(&other).expect("mkdir");
    let mut manifest = String::new();
    for i in 1..=20u64 {
        let name = format!("old{i:02}");
        let path = other.join(&name);
        fs::write(&path, name.as_bytes()).expect("write");
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600 * i)))
            .expect("age it");
        let digest: String = Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        manifest.push_str(&format!("{digest}  wasmtime/modules/wasmtime-0/{name}\n"));
    }
    fs::write(cache.path().join("wasmtime.sha256"), manifest).expect("write the manifest");
    let cut_off = managed.join(".cleanup.wip-4242");
    fs::write(&cut_off, b"").expect("write");

    let output = succeeds(cli(&deployment, cache.path()).args(LIST));
    assert!(
        stderr(&output).contains("compiled and kept in"),
        "{}",
        stderr(&output)
    );
    let left = entries(cache.path());
    assert_eq!(left.len(), 16, "at most 16 entries: {:?}", left.keys());
    assert!(left.contains_key(policy), "the new entry is kept");
    assert!(other.join("old01").exists() && other.join("old15").exists());
    assert!(!other.join("old16").exists() && !other.join("old20").exists());
    let recorded = fs::read_to_string(cache.path().join("wasmtime.sha256")).expect("read");
    assert_eq!(recorded.lines().count(), 16, "{recorded}");
    let locks: Vec<_> = fs::read_dir(&managed)
        .expect("list")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".cleanup"))
        .collect();
    assert_eq!(
        locks,
        [".cleanup.wip-litegraph-backup"],
        "no cut-off clean-up's lock, and wasmtime's clean-up held off"
    );
}

#[test]
fn a_named_cache_that_cannot_be_used_is_one_warning_the_default_none() {
    let deployment = deployment();
    let answer = uncached_answer(&deployment);
    let scratch = tempfile::tempdir().expect("scratch");
    let file = scratch.path().join("a-file");
    fs::write(&file, b"mine").expect("write");
    let shared = scratch.path().join("shared");
    fs::create_dir(&shared).expect("mkdir");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).expect("chmod");

    for (named, case) in [
        (&file, "a file"),
        (&shared, "a directory others may write to"),
    ] {
        let output = succeeds(
            deployment
                .cli()
                .arg("--compile-cache")
                .arg(named)
                .args(LIST),
        );
        assert_eq!(stdout(&output), answer, "{case}");
        let log = stderr(&output);
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{case}: {log}");
        assert!(
            lines[0].starts_with("warning: the compiled policy is not kept in"),
            "{case}: {log}"
        );
        let from_variable = succeeds(
            deployment
                .cli()
                .env("LITEGRAPH_COMPILE_CACHE", named)
                .args(LIST),
        );
        assert_eq!(stderr(&from_variable).lines().count(), 1, "{case}");
    }

    // The default location, unusable (a file where ~/.cache should be): silent.
    let home = scratch.path().join("home");
    fs::create_dir(&home).expect("mkdir");
    fs::write(home.join(".cache"), b"not a directory").expect("write");
    let output = succeeds(
        deployment
            .cli()
            .env_remove("LITEGRAPH_COMPILE_CACHE")
            .env("HOME", &home)
            .env_remove("XDG_CACHE_HOME")
            .args(LIST),
    );
    assert_eq!(stdout(&output), answer);
    assert_eq!(stderr(&output), "", "the default location says nothing");
}
