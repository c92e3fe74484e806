//! `cargo bench --bench compare [-- --size-mib N | --quick]`: litegraph-backup against the
//! physical limit and the alternatives, side by side in one run, on a LiteGraph-like WAL
//! database. Prints Markdown tables (median and min-max of several runs, and ratios).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use litegraph_backup::digests::{digests, upper_hex};
use litegraph_backup::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use litegraph_backup::store::BackupDir;
use litegraph_backup::{Capabilities, Limits, Policy, Runtime};
use litegraph_backup_guest::litegraph::backup::remote as guest_remote;
use litegraph_backup_guest::litegraph::backup::types as guest_types;
use litegraph_backup_guest::service::{Host as GuestHost, Service};
use rusqlite::Connection;

#[path = "compare/offsite.rs"]
mod offsite;

/// What to measure, from the command line.
struct Options {
    size_mib: u64,
    repetitions: usize,
    http_seconds: f64,
    quick: bool,
    /// Only this section (backup, digests, metadata, boundary, http, writer, offsite).
    only: Option<String>,
}

impl Options {
    fn parse() -> Options {
        let mut options = Options {
            size_mib: 256,
            repetitions: 5,
            http_seconds: 3.0,
            quick: false,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => {
                    options.quick = true;
                    options.size_mib = 16;
                    options.repetitions = 3;
                    options.http_seconds = 0.5;
                }
                "--size-mib" => {
                    options.size_mib = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--size-mib takes a number of MiB");
                }
                "--repetitions" => {
                    options.repetitions = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--repetitions takes a number");
                }
                "--only" => {
                    options.only = Some(args.next().expect("--only takes a section name"));
                }
                // cargo bench passes --bench; anything else is a mistake worth saying.
                "--bench" => {}
                other => {
                    panic!("unknown option {other:?}; use --size-mib N, --repetitions N or --quick")
                }
            }
        }
        options
    }
}

/// Median and range of some durations.
#[derive(Clone, Copy)]
struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    fn seconds(&self) -> String {
        format!(
            "{:.3} s ({:.3}-{:.3})",
            self.median.as_secs_f64(),
            self.min.as_secs_f64(),
            self.max.as_secs_f64()
        )
    }

    fn micros(&self) -> String {
        format!(
            "{:.1} µs ({:.1}-{:.1})",
            self.median.as_secs_f64() * 1e6,
            self.min.as_secs_f64() * 1e6,
            self.max.as_secs_f64() * 1e6
        )
    }

    fn ratio(&self, to: &Stats) -> f64 {
        self.median.as_secs_f64() / to.median.as_secs_f64()
    }
}

/// Runs `prepare` then times `work`, `repetitions` times (after one untimed warm-up).
fn measure(repetitions: usize, prepare: impl FnMut(), work: impl FnMut()) -> Stats {
    measure_with_cpu(repetitions, prepare, work).0
}

/// As [`measure`], with the CPU time this process (all its threads) spent in `work`.
fn measure_with_cpu(
    repetitions: usize,
    mut prepare: impl FnMut(),
    mut work: impl FnMut(),
) -> (Stats, Stats) {
    prepare();
    work();
    let (wall, cpu) = (0..repetitions)
        .map(|_| {
            prepare();
            let (started, cpu) = (Instant::now(), process_cpu());
            work();
            (started.elapsed(), process_cpu().saturating_sub(cpu))
        })
        .unzip();
    (Stats::of(wall), Stats::of(cpu))
}

/// The CPU time of this process so far, every thread's (exited ones included).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

fn fsync(path: &Path) {
    File::open(path).and_then(|f| f.sync_all()).expect("fsync");
}

fn main() {
    let options = Options::parse();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    fs::create_dir_all(&data).expect("bench directory");
    let database = data.join(format!("litegraph-{}mib.db", options.size_mib));
    prepare_database(&database, options.size_mib << 20);
    let bytes = fs::metadata(&database).expect("stat").len();

    println!("# litegraph-backup benchmark");
    println!();
    println!(
        "- date: {}",
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    println!("- machine: {}", machine());
    println!(
        "- database: LiteGraph-like, WAL mode, {:.1} MiB ({} bytes), warm page cache",
        bytes as f64 / 1048576.0,
        bytes
    );
    println!(
        "- command: `cargo bench --bench compare -- {}`",
        if options.quick {
            "--quick".to_owned()
        } else {
            format!("--size-mib {}", options.size_mib)
        }
    );
    println!(
        "- each figure: median of {} runs (min-max)",
        options.repetitions
    );

    let scratch = data.join("scratch");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).expect("scratch");
    let backups = scratch.join("backups");
    fs::create_dir_all(&backups).expect("backups");

    let run = |section: &str| options.only.as_deref().is_none_or(|only| only == section);
    if run("backup") || run("http") {
        backup_speed(
            &options,
            &database,
            &scratch,
            &backups,
            bytes,
            run("backup"),
        );
    }
    if run("digests") {
        digest_speed(&options, &database, bytes);
    }
    if run("metadata") || run("boundary") {
        thousand_backups(&scratch);
    }
    if run("metadata") {
        metadata_operations(&options, &database, &scratch);
    }
    if run("boundary") {
        wasm_boundary(&options, &database, &scratch);
    }
    if run("http") {
        http_load(&options, &database, &scratch, "largest.db");
    }
    if run("writer") {
        writer_during_backup(&options, &database, &scratch);
    }
    if run("offsite") {
        offsite::offsite(&options, &database, &scratch);
    }
    let _ = fs::remove_dir_all(&scratch);
}

/// Creates (once, then reuses) a LiteGraph-like database of about `bytes`, checkpointed.
fn prepare_database(path: &Path, bytes: u64) {
    if fs::metadata(path)
        .map(|m| m.len() >= bytes)
        .unwrap_or(false)
    {
        return;
    }
    let _ = fs::remove_file(path);
    let started = Instant::now();
    litegraph_backup_tests::create_litegraph_database_of_size(path, bytes).expect("generate");
    Connection::open(path)
        .and_then(|db| db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
        .expect("checkpoint");
    eprintln!(
        "generated {} in {:.1} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1048576.0))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {memory}")
}

fn runtime_for(database: &Path, backups: &Path) -> Runtime {
    Runtime::new(
        Capabilities::new(
            LiveDatabase::new(database, DEFAULT_BUSY_TIMEOUT),
            BackupDir::create(backups).expect("backups"),
        ),
        Limits::default(),
    )
    .expect("the policy compiles")
}

/// The copy: `cp` + fsync, sqlite3 `.backup`, `VACUUM INTO`, a bare `step(-1)`, ours (when
/// `compare`); and a backup named `largest.db` left in `backups` for the HTTP part.
fn backup_speed(
    options: &Options,
    database: &Path,
    scratch: &Path,
    backups: &Path,
    bytes: u64,
    compare: bool,
) {
    let runtime = runtime_for(database, backups);
    if compare {
        compare_copies(options, database, scratch, backups, bytes, &runtime);
    }
    runtime.create(Some("largest.db")).expect("create");
}

fn compare_copies(
    options: &Options,
    database: &Path,
    scratch: &Path,
    backups: &Path,
    bytes: u64,
    runtime: &Runtime,
) {
    let out = scratch.join("copy.db");
    let clear = || {
        let _ = fs::remove_file(&out);
        for suffix in ["-journal", "-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", out.display()));
        }
    };
    let n = options.repetitions;
    // Each method: its time, the CPU time of this process when the work is in it, a note.
    let mut rows: Vec<(String, Stats, Option<Stats>, &str)> = Vec::new();

    let (cp, cp_cpu) = measure_with_cpu(n, clear, || {
        fs::copy(database, &out).expect("copy");
        fsync(&out);
    });
    rows.push((
        "`cp` + fsync (the physical limit)".into(),
        cp,
        Some(cp_cpu),
        "",
    ));

    if Command::new("sqlite3").arg("-version").output().is_ok() {
        let cli = measure(n, clear, || {
            let status = Command::new("sqlite3")
                .arg(database)
                .arg(format!(".backup '{}'", out.display()))
                .status()
                .expect("sqlite3");
            assert!(status.success());
        });
        rows.push(("sqlite3 CLI `.backup`".into(), cli, None, "no fsync"));
    } else {
        eprintln!("sqlite3 CLI not installed: skipped");
    }

    let (vacuum, vacuum_cpu) = measure_with_cpu(n, clear, || {
        Connection::open(database)
            .and_then(|db| db.execute("VACUUM INTO ?1", [out.to_string_lossy()]))
            .expect("vacuum into");
    });
    rows.push((
        "`VACUUM INTO` (LiteGraph's way)".into(),
        vacuum,
        Some(vacuum_cpu),
        "no fsync",
    ));

    let (step, step_cpu) = measure_with_cpu(n, clear, || {
        let source = Connection::open(database).expect("open");
        let mut copy = Connection::open(&out).expect("open");
        rusqlite::backup::Backup::new(&source, &mut copy)
            .and_then(|b| b.step(-1))
            .expect("step");
        drop(copy);
        fsync(&out);
    });
    rows.push((
        "bare rusqlite `Backup::step(-1)` + fsync".into(),
        step,
        Some(step_cpu),
        "",
    ));

    // The parts of a snapshot, each alone: the copy (our page pass, no digests) and each
    // digest of the result. Their CPU times, summed and halved, are the least two cores
    // can do the whole in; and never less than MD5, which cannot be split.
    let live = LiveDatabase::new(database, DEFAULT_BUSY_TIMEOUT);
    let (pages, pages_cpu) = measure_with_cpu(n, clear, || {
        live.copy_pages_only(&out).expect("copy the pages");
    });
    rows.push((
        "the copy alone: our page pass + fsync, no digests".into(),
        pages,
        Some(pages_cpu),
        "",
    ));
    let md5 = measure_with_cpu(n, || {}, || drop(digest_alone::<md5::Md5>(&out))).1;
    let sha1 = measure_with_cpu(n, || {}, || drop(digest_alone::<sha1::Sha1>(&out))).1;
    let sha256 = measure_with_cpu(n, || {}, || drop(digest_alone::<sha2::Sha256>(&out))).1;
    let parts = [&pages_cpu, &md5, &sha1, &sha256].map(|s| s.median);
    let floor = (parts.iter().sum::<Duration>() / 2).max(md5.median);
    let floor = Stats {
        median: floor,
        min: floor,
        max: floor,
    };
    rows.push((
        "the 2-core CPU floor: (copy + MD5 + SHA-1 + SHA-256 CPU) / 2".into(),
        floor,
        None,
        "computed, see below",
    ));

    let clear_backups = || {
        for entry in fs::read_dir(backups).expect("read").flatten() {
            let _ = fs::remove_file(entry.path());
        }
    };
    let (ours, ours_cpu) = measure_with_cpu(n, clear_backups, || {
        runtime.create(Some("bench.db")).expect("create");
    });
    rows.push((
        "litegraph-backup `create`, in-process (copy + 3 digests + metadata)".into(),
        ours,
        Some(ours_cpu),
        "",
    ));

    let binary = env!("CARGO_BIN_EXE_litegraph-backup");
    let cli = measure(n, clear_backups, || {
        let status = Command::new(binary)
            // Its own compile cache, filled by the untimed first run.
            .env("LITEGRAPH_COMPILE_CACHE", scratch.join("compile-cache"))
            .arg("--database")
            .arg(database)
            .arg("--backups")
            .arg(backups)
            .args(["create", "bench.db"])
            .stdout(Stdio::null())
            .status()
            .expect("run the CLI");
        assert!(status.success());
    });
    rows.push((
        "litegraph-backup `create`, CLI process".into(),
        cli,
        None,
        "the compiled policy loaded from its compile cache",
    ));
    clear();

    println!();
    println!("## Backup of the live database");
    println!();
    println!(
        "| method | time | CPU | MiB/s | ÷ cp+fsync | ÷ step(-1)+fsync | ÷ CPU floor | note |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, stats, cpu, note) in &rows {
        println!(
            "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {note} |",
            stats.seconds(),
            cpu.map(|c| format!("{:.3} s", c.median.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            bytes as f64 / 1048576.0 / stats.median.as_secs_f64(),
            stats.ratio(&cp),
            stats.ratio(&step),
            stats.ratio(&floor),
        );
    }
    println!();
    println!(
        "CPU floor = max((copy {:.3} + MD5 {:.3} + SHA-1 {:.3} + SHA-256 {:.3}) / 2, MD5) = {:.3} s; \
         CPU is this process's, all threads, median of {n}; the CLI and sqlite3 rows run in \
         another process (-).",
        parts[0].as_secs_f64(),
        parts[1].as_secs_f64(),
        parts[2].as_secs_f64(),
        parts[3].as_secs_f64(),
        floor.median.as_secs_f64(),
    );
    println!(
        "`create` in-process: {:.2}x the bare step(-1)+fsync, {:.2}x the CPU floor; \
         the CLI adds {:.0} ms to it.",
        ours.ratio(&step),
        ours.ratio(&floor),
        (cli.median.as_secs_f64() - ours.median.as_secs_f64()) * 1000.0,
    );
}

/// One digest of a file, alone on this thread.
fn digest_alone<D: sha2::Digest>(path: &Path) -> String {
    let mut file = File::open(path).expect("open");
    let mut digest = D::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).expect("read");
        if n == 0 {
            break;
        }
        digest.update(&buffer[..n]);
    }
    upper_hex(&digest.finalize())
}

/// The three digests in one parallel pass against each digest alone.
fn digest_speed(options: &Options, database: &Path, bytes: u64) {
    use md5::Md5;
    use sha1::Sha1;
    use sha2::Sha256;
    let n = options.repetitions;
    let rows = [
        (
            "MD5 alone",
            measure(n, || {}, || drop(digest_alone::<Md5>(database))),
        ),
        (
            "SHA-1 alone",
            measure(n, || {}, || drop(digest_alone::<Sha1>(database))),
        ),
        (
            "SHA-256 alone",
            measure(n, || {}, || drop(digest_alone::<Sha256>(database))),
        ),
        (
            "all three, one after another (three passes)",
            measure(
                n,
                || {},
                || {
                    digest_alone::<Md5>(database);
                    digest_alone::<Sha1>(database);
                    digest_alone::<Sha256>(database);
                },
            ),
        ),
        (
            "all three, ours (one read pass; MD5 on one thread, SHA-1 + SHA-256 on another)",
            measure(
                n,
                || {},
                || drop(digests(File::open(database).expect("open")).expect("digests")),
            ),
        ),
    ];
    let slowest = rows[..3]
        .iter()
        .map(|(_, s)| s.median)
        .max()
        .expect("three");
    println!();
    println!("## Digests of the database file");
    println!();
    println!("| digest | time | MiB/s | ÷ slowest single digest |");
    println!("|---|---|---|---|");
    for (name, stats) in &rows {
        println!(
            "| {name} | {} | {:.0} | {:.2} |",
            stats.seconds(),
            bytes as f64 / 1048576.0 / stats.median.as_secs_f64(),
            stats.median.as_secs_f64() / slowest.as_secs_f64()
        );
    }
}

/// A directory of 1,000 backups (small copies, metadata recorded): list, show, exists.
fn thousand_backups(scratch: &Path) -> PathBuf {
    let dir = scratch.join("thousand");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("dir");
    let small = scratch.join("small.db");
    let _ = fs::remove_file(&small);
    litegraph_backup_tests::create_litegraph_database(&small, 20).expect("small database");
    for i in 0..1000 {
        fs::copy(&small, dir.join(format!("backup-{i:04}.db"))).expect("copy");
    }
    dir
}

fn metadata_operations(options: &Options, database: &Path, scratch: &Path) {
    let dir = scratch.join("thousand");
    let runtime = runtime_for(database, &dir);
    let first = Instant::now();
    assert_eq!(runtime.list().expect("list").len(), 1000);
    let first = first.elapsed();
    let n = options.repetitions.max(5) * 4;
    let list = measure(
        n,
        || {},
        || assert_eq!(runtime.list().expect("list").len(), 1000),
    );
    let show = measure(
        n * 10,
        || {},
        || drop(runtime.read("backup-0500.db").expect("read")),
    );
    let exists = measure(
        n * 10,
        || {},
        || assert!(runtime.exists("backup-0500.db").expect("exists")),
    );
    println!();
    println!("## Metadata with 1,000 backups in the directory (in-process)");
    println!();
    println!("| operation | time |");
    println!("|---|---|");
    println!(
        "| first `list` (hashes each hand-copied file once, records it) | {:.3} s |",
        first.as_secs_f64()
    );
    println!(
        "| `list` (1,000 BackupFiles, no file re-read) | {} |",
        list.seconds()
    );
    println!("| `show` one | {} |", show.micros());
    println!("| `exists` one | {} |", exists.micros());
}

/// The guest's own policy code, linked natively, over a host made of plain `std::fs` calls:
/// the same decisions without the sandbox, to price the wasm boundary.
struct NativeHost {
    dir: PathBuf,
}

fn guest_stat(metadata: &fs::Metadata) -> guest_types::FileStat {
    let time = |t: std::io::Result<SystemTime>| {
        t.ok().map(|t| {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            guest_types::Datetime {
                seconds: d.as_secs(),
                nanoseconds: d.subsec_nanos(),
            }
        })
    };
    let modified = time(metadata.modified()).expect("mtime");
    guest_types::FileStat {
        length: metadata.len(),
        created: time(metadata.created()),
        modified,
        accessed: time(metadata.accessed()).unwrap_or(modified),
    }
}

impl GuestHost for &NativeHost {
    fn now(&self) -> guest_types::Datetime {
        let d = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        guest_types::Datetime {
            seconds: d.as_secs(),
            nanoseconds: d.subsec_nanos(),
        }
    }
    fn list(&self) -> Result<Vec<String>, guest_types::Error> {
        Ok(fs::read_dir(&self.dir)
            .expect("read")
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }
    fn stat(&self, name: &str) -> Result<guest_types::FileStat, guest_types::Error> {
        match fs::symlink_metadata(self.dir.join(name)) {
            Ok(m) if m.is_file() => Ok(guest_stat(&m)),
            _ => Err(guest_types::Error::NotFound),
        }
    }
    fn digests(&self, name: &str) -> Result<guest_types::FileDigests, guest_types::Error> {
        let d = digests(File::open(self.dir.join(name)).expect("open")).expect("digests");
        Ok(guest_types::FileDigests {
            md5: d.md5,
            sha1: d.sha1,
            sha256: d.sha256,
        })
    }
    fn read(&self, name: &str) -> Result<Vec<u8>, guest_types::Error> {
        fs::read(self.dir.join(name)).map_err(|_| guest_types::Error::NotFound)
    }
    fn write(&self, name: &str, contents: &[u8]) -> Result<(), guest_types::Error> {
        fs::write(self.dir.join(name), contents).map_err(|e| guest_types::Error::Io(e.to_string()))
    }
    fn rename_noreplace(&self, _: &str, _: &str) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remove(&self, _: &str) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn take_snapshot(
        &self,
    ) -> Result<litegraph_backup_guest::litegraph::backup::snapshot::SnapshotFile, guest_types::Error>
    {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn check(&self, _: &str, _: bool) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn drill(&self, _: &str) -> Result<guest_types::ScratchRestore, guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn take_for_restore(
        &self,
        _: &str,
    ) -> Result<litegraph_backup_guest::litegraph::backup::snapshot::SnapshotFile, guest_types::Error>
    {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn restore(&self, _: &str, _: &str) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_targets(&self) -> Vec<guest_remote::Target> {
        Vec::new()
    }
    fn remote_put_file(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<guest_remote::Upload, guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_put(&self, _: &str, _: &str, _: &[u8]) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_list(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Vec<guest_remote::Object>, guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_get(&self, _: &str, _: &str) -> Result<Vec<u8>, guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_get_file(
        &self,
        _: &str,
        _: &str,
        _: &[String],
    ) -> Result<guest_remote::Download, guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
    fn remote_delete(&self, _: &str, _: &str) -> Result<(), guest_types::Error> {
        Err(guest_types::Error::Io("not used by this benchmark".into()))
    }
}

fn wasm_boundary(options: &Options, database: &Path, scratch: &Path) {
    let dir = scratch.join("thousand");
    let runtime = runtime_for(database, &dir);
    let native = NativeHost { dir: dir.clone() };
    let n = options.repetitions.max(5) * 40;
    let in_wasm = measure(
        n,
        || {},
        || assert!(runtime.exists("backup-0500.db").expect("exists")),
    );
    let in_rust = measure(
        n,
        || {},
        || {
            assert!(
                Service::new(&native)
                    .exists("backup-0500.db")
                    .expect("exists")
            );
        },
    );
    let list_wasm = measure(
        n / 20,
        || {},
        || assert_eq!(runtime.list().expect("list").len(), 1000),
    );
    let list_rust = measure(
        n / 20,
        || {},
        || {
            assert_eq!(Service::new(&native).list().expect("list").len(), 1000);
        },
    );
    let compile = measure(
        options.repetitions,
        || {},
        || drop(Policy::embedded(Limits::default()).expect("compile")),
    );
    println!();
    println!("## The wasm boundary: the same policy through the component and linked natively");
    println!();
    println!("| call | component (fresh Store + instance per call) | native | ÷ |");
    println!("|---|---|---|---|");
    println!(
        "| `exists` (name rules + one stat) | {} | {} | {:.1} |",
        in_wasm.micros(),
        in_rust.micros(),
        in_wasm.ratio(&in_rust)
    );
    println!(
        "| `list` of 1,000 (1,000 stats and sidecar reads) | {} | {} | {:.2} |",
        list_wasm.seconds(),
        list_rust.seconds(),
        list_wasm.ratio(&list_rust)
    );
    println!();
    println!(
        "Compiling the component (once per process; the CLI only when its compile cache lacks this policy): {}.",
        compile.seconds()
    );
}

/// A `serve` process (the release binary) on a free port.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(database: &Path, backups: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_litegraph-backup"))
            .arg("--database")
            .arg(database)
            .arg("--backups")
            .arg(backups)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("serve");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        let addr = rx.recv().expect("serve started").parse().expect("address");
        Server { child, addr }
    }

    fn peak_rss_mib(&self) -> f64 {
        let status =
            fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmHWM");
        kib / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a kept-alive connection; returns the body length.
fn exchange(stream: &mut BufReader<TcpStream>, method: &str, path: &str) -> u64 {
    write!(
        stream.get_mut(),
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer litegraphadmin\r\n\r\n"
    )
    .expect("send");
    let mut line = String::new();
    stream.read_line(&mut line).expect("status");
    assert!(line.contains(" 200 "), "{method} {path}: {line}");
    let mut length = 0u64;
    loop {
        line.clear();
        stream.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        }
    }
    if method != "HEAD" {
        std::io::copy(&mut stream.by_ref().take(length), &mut std::io::sink()).expect("body");
    }
    length
}

/// Requests/s and latency percentiles with `clients` concurrent keep-alive connections.
fn load(
    addr: SocketAddr,
    method: &str,
    path: &str,
    clients: usize,
    seconds: f64,
) -> (f64, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, latencies) = (Arc::clone(&stop), Arc::clone(&latencies));
            let (method, path) = (method.to_owned(), path.to_owned());
            thread::spawn(move || {
                let connection = TcpStream::connect(addr).expect("connect");
                connection.set_nodelay(true).expect("nodelay");
                let mut stream = BufReader::new(connection);
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    exchange(&mut stream, &method, &path);
                    mine.push(t.elapsed());
                }
                latencies.lock().expect("lock").extend(mine);
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Arc::try_unwrap(latencies)
        .expect("joined")
        .into_inner()
        .expect("lock");
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (latencies.len() as f64 / elapsed, at(0.50), at(0.99))
}

fn http_load(options: &Options, database: &Path, scratch: &Path, largest: &str) {
    let backups = scratch.join("backups");
    let server = Server::start(database, &backups);
    let clients = 8;
    println!();
    println!(
        "## HTTP (`serve`, release build; a Rust load generator with {clients} keep-alive clients, {:.1} s each)",
        options.http_seconds
    );
    println!();
    println!("| request | requests/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for (method, path) in [
        ("HEAD", format!("/v1.0/backups/{largest}")),
        ("GET", "/v1.0/backups".to_owned()),
        ("GET", "/health".to_owned()),
    ] {
        let (rate, p50, p99) = load(server.addr, method, &path, clients, options.http_seconds);
        println!(
            "| {method} {path} | {rate:.0} | {:.2} ms | {:.2} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let size = fs::metadata(backups.join(largest)).expect("stat").len();
    let baseline = server.peak_rss_mib();
    let mut rows = Vec::new();
    for (what, path) in [
        (
            "GET with `Data` (base64 in JSON)",
            format!("/v1.0/backups/{largest}"),
        ),
        ("raw download", format!("/v1.0/backups/{largest}/download")),
    ] {
        let mut stream = BufReader::new(TcpStream::connect(server.addr).expect("connect"));
        let started = Instant::now();
        let body = exchange(&mut stream, "GET", &path);
        let elapsed = started.elapsed();
        rows.push((what, body, elapsed, server.peak_rss_mib()));
    }
    println!();
    println!(
        "Streaming the largest backup ({:.1} MiB); the server's peak RSS was {baseline:.1} MiB before:",
        size as f64 / 1048576.0
    );
    println!();
    println!("| response | body | time | MiB/s of backup | server peak RSS after |");
    println!("|---|---|---|---|---|");
    for (what, body, elapsed, rss) in rows {
        println!(
            "| {what} | {:.1} MiB | {:.2} s | {:.0} | {rss:.1} MiB |",
            body as f64 / 1048576.0,
            elapsed.as_secs_f64(),
            size as f64 / 1048576.0 / elapsed.as_secs_f64()
        );
    }
}

/// A writer committing small transactions: its commit latency alone and while `create` copies
/// the database, and whether the backup finished. Once as fast as it can (a stress test), once
/// paced at LiteGraph-like 600 commits/s.
fn writer_during_backup(options: &Options, database: &Path, scratch: &Path) {
    let seconds = if options.quick { 0.5 } else { 2.0 };
    println!();
    println!(
        "## A writer committing continuously (WAL, synchronous=NORMAL, one row per transaction)"
    );
    println!();
    println!("| writer | | commits/s | p50 | p99 | max | backup took |");
    println!("|---|---|---|---|---|---|---|");
    for pace in [None, Some(600.0)] {
        let label = match pace {
            None => "unthrottled".to_owned(),
            Some(rate) => format!("paced at {rate:.0}/s"),
        };
        for with_backup in [false, true] {
            let (stats, took) = writer_run(database, scratch, pace, with_backup, seconds);
            println!(
                "| {label} | {} | {:.0} | {:.3} ms | {:.3} ms | {:.1} ms | {} |",
                if with_backup {
                    "during `create`"
                } else {
                    "alone"
                },
                stats["tx/s"],
                stats["p50"],
                stats["p99"],
                stats["max"],
                took.map_or("".to_owned(), |t| format!(
                    "{:.2} s, quick_check ok",
                    t.as_secs_f64()
                ))
            );
        }
    }
    Connection::open(database)
        .and_then(|db| {
            db.execute_batch("DROP TABLE IF EXISTS bench_writes; PRAGMA wal_checkpoint(TRUNCATE);")
        })
        .expect("clean up");
}

fn writer_run(
    database: &Path,
    scratch: &Path,
    pace: Option<f64>,
    with_backup: bool,
    seconds: f64,
) -> (BTreeMap<&'static str, f64>, Option<Duration>) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, database) = (Arc::clone(&stop), database.to_owned());
        thread::spawn(move || {
            let mut db = Connection::open(&database).expect("open");
            db.busy_timeout(Duration::from_secs(10)).expect("timeout");
            db.execute_batch(
                "PRAGMA synchronous = NORMAL; CREATE TABLE IF NOT EXISTS bench_writes (n INTEGER, at TEXT)",
            )
            .expect("table");
            let mut latencies = Vec::new();
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(rate) = pace {
                    let due = started + Duration::from_secs_f64(latencies.len() as f64 / rate);
                    thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                let t = Instant::now();
                let tx = db.transaction().expect("begin");
                tx.execute(
                    "INSERT INTO bench_writes VALUES (?1, datetime('now'))",
                    [latencies.len() as i64],
                )
                .expect("insert");
                tx.commit().expect("commit");
                latencies.push(t.elapsed());
            }
            (latencies, started.elapsed())
        })
    };
    let backup_time = if with_backup {
        let backups = scratch.join("under-load");
        let _ = fs::remove_dir_all(&backups);
        let runtime = runtime_for(database, &backups);
        let t = Instant::now();
        runtime
            .create(Some("under-load.db"))
            .expect("the backup finishes under a writer");
        let took = t.elapsed();
        let check: String = Connection::open(backups.join("under-load.db"))
            .and_then(|db| db.query_row("PRAGMA quick_check", [], |r| r.get(0)))
            .expect("check");
        assert_eq!(check, "ok");
        Some(took)
    } else {
        thread::sleep(Duration::from_secs_f64(seconds));
        None
    };
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, elapsed) = writer.join().expect("writer");
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    let stats = BTreeMap::from([
        ("tx/s", latencies.len() as f64 / elapsed.as_secs_f64()),
        ("p50", at(0.50)),
        ("p99", at(0.99)),
        ("max", at(1.0)),
    ]);
    (stats, backup_time)
}
