//! Offsite: `push` and `pull` of one backup against a real S3 server on loopback (s3s-fs,
//! signatures checked), side by side with a plain object_store multipart upload of the same
//! file in the same parts (the floor: no hashing, no encoding, no create-only check), with
//! each encoding; and the peak RSS of the CLI doing each push and pull.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use litegraph_backup::remote::{Location, S3Credentials, Secret, TargetConfig, Targets};
use litegraph_backup::snapshot::{DEFAULT_BUSY_TIMEOUT, LiveDatabase};
use litegraph_backup::store::BackupDir;
use litegraph_backup::{Capabilities, Limits, Policy, Runtime};

use super::{Options, Stats};

const ACCESS_KEY: &str = "bench-access";
const SECRET_KEY: &str = "bench-secret-key";
const BUCKET: &str = "bench";
const BACKUP: &str = "offsite.db";

/// One way of encoding a target.
struct Encoding {
    label: &'static str,
    zstd: bool,
    age: bool,
}

const ENCODINGS: [Encoding; 4] = [
    Encoding {
        label: "none",
        zstd: false,
        age: false,
    },
    Encoding {
        label: "zstd",
        zstd: true,
        age: false,
    },
    Encoding {
        label: "age",
        zstd: false,
        age: true,
    },
    Encoding {
        label: "zstd + age",
        zstd: true,
        age: true,
    },
];

/// The loopback S3 server, in this process on a free port (it lives until the process ends).
struct S3 {
    endpoint: String,
}

impl S3 {
    fn start(root: &Path) -> S3 {
        let endpoint =
            litegraph_backup_tests::s3_server::spawn(root, ACCESS_KEY, SECRET_KEY, BUCKET)
                .expect("start the S3 server");
        S3 { endpoint }
    }
}

fn target(name: &str, s3: &S3, prefix: &str, encoding: &Encoding, keys: &Keys) -> TargetConfig {
    TargetConfig {
        name: name.to_owned(),
        location: Location::S3 {
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(s3.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            allow_http: true,
            credentials: Some(S3Credentials {
                access_key_id: ACCESS_KEY.to_owned(),
                secret_access_key: Secret::new(SECRET_KEY),
                session_token: None,
            }),
        },
        zstd_level: encoding.zstd.then_some(3),
        recipients: if encoding.age {
            vec![keys.recipient.clone()]
        } else {
            Vec::new()
        },
        identity_files: vec![keys.identity_file.clone()],
    }
}

/// An age key pair made for the run.
struct Keys {
    recipient: String,
    identity_file: PathBuf,
}

fn keys(scratch: &Path) -> Keys {
    let identity = age::x25519::Identity::generate();
    let identity_file = scratch.join("bench-age-key.txt");
    fs::write(&identity_file, identity.to_string().expose_secret()).expect("write the key");
    fs::set_permissions(&identity_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    Keys {
        recipient: identity.to_public().to_string(),
        identity_file,
    }
}

/// The config file the CLI reads for a target at `prefix`.
fn config_file(path: &Path, s3: &S3, prefix: &str, encoding: &Encoding, keys: &Keys) {
    let mut text = format!(
        "[[remote]]\nname = \"bench\"\nurl = \"s3://{BUCKET}/{prefix}\"\nendpoint = \"{}\"\n\
         region = \"us-east-1\"\nallow_http = true\naccess_key_id = \"{ACCESS_KEY}\"\n\
         secret_access_key = \"{SECRET_KEY}\"\nage_identity_file = \"{}\"\n",
        s3.endpoint,
        keys.identity_file.display()
    );
    if encoding.zstd {
        text.push_str("compression = \"zstd\"\n");
    }
    if encoding.age {
        text.push_str(&format!("age_recipients = [\"{}\"]\n", keys.recipient));
    }
    fs::write(path, text).expect("write the config");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Runs the CLI and returns its time and peak RSS (MiB), polled from /proc while it runs.
fn cli(database: &Path, backups: &Path, config: &Path, args: &[&str]) -> (Duration, f64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_litegraph-backup"))
        .arg("--database")
        .arg(database)
        .arg("--backups")
        .arg(backups)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(status) = fs::read_to_string(&status_file) {
            // VmHWM only grows: the last reading before exit is the peak, within 5 ms.
            if let Some(kib) = status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    if !status.success() {
        let mut message = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut message);
        }
        panic!("litegraph-backup {args:?} failed: {message}");
    }
    (elapsed, peak_kib as f64 / 1024.0)
}

pub(super) fn offsite(options: &Options, database: &Path, scratch: &Path) {
    let root = scratch.join("s3");
    fs::create_dir_all(&root).expect("s3 root");
    let s3 = S3::start(&root);
    let keys = keys(scratch);
    let backups = scratch.join("offsite-backups");
    fs::create_dir_all(&backups).expect("backups");
    let policy = Policy::embedded(Limits::default()).expect("the policy compiles");
    let backup = Runtime::from_policy(&policy, capabilities(database, &backups))
        .create(Some(BACKUP))
        .expect("create");
    let source = backups.join(BACKUP);
    let repetitions = options.repetitions.min(3);
    let mut round = 0;
    let mut fresh_prefix = || {
        round += 1;
        format!("run-{round}")
    };
    // One sample of each method per round, alternating, each after a `sync` and with the
    // bucket emptied first: the server writes every byte it receives (twice for a multipart
    // upload), and a method measured after another's gigabytes of dirty pages would pay
    // for their write-back.
    let bucket = root.join(BUCKET);
    let settle = || {
        for entry in fs::read_dir(&bucket).expect("the bucket").flatten() {
            let _ = fs::remove_dir_all(entry.path());
        }
        let _ = Command::new("sync").status();
    };
    let mut floor_samples = Vec::new();
    let mut samples: Vec<(Vec<Duration>, Vec<Duration>, u64)> = ENCODINGS
        .iter()
        .map(|_| (Vec::new(), Vec::new(), 0))
        .collect();
    for _ in 0..repetitions {
        settle();
        let prefix = fresh_prefix();
        let targets =
            Targets::open(vec![target("bench", &s3, &prefix, &ENCODINGS[0], &keys)]).expect("open");
        let started = Instant::now();
        targets
            .plain_upload("bench", "plain/offsite.db", &source)
            .expect("plain upload");
        floor_samples.push(started.elapsed());
        for (encoding, (pushes, pulls, stored)) in ENCODINGS.iter().zip(samples.iter_mut()) {
            settle();
            let prefix = fresh_prefix();
            let targets =
                Targets::open(vec![target("bench", &s3, &prefix, encoding, &keys)]).expect("open");
            let runtime = Runtime::from_policy(
                &policy,
                capabilities(database, &backups).with_remotes(targets),
            );
            let started = Instant::now();
            let pushed = runtime.push(BACKUP, Some("bench")).expect("push");
            pushes.push(started.elapsed());
            *stored = pushed[0].remote.stored_length;
            let pulled_into = scratch.join(format!("pulled-{prefix}"));
            fs::create_dir_all(&pulled_into).expect("mkdir");
            let targets =
                Targets::open(vec![target("bench", &s3, &prefix, encoding, &keys)]).expect("open");
            let puller = Runtime::from_policy(
                &policy,
                capabilities(database, &pulled_into).with_remotes(targets),
            );
            let _ = Command::new("sync").status();
            let started = Instant::now();
            puller.pull("bench", BACKUP).expect("pull");
            pulls.push(started.elapsed());
            fs::remove_dir_all(&pulled_into).expect("clean");
        }
    }
    let floor = Stats::of(floor_samples);

    println!();
    println!("## Offsite: push and pull against a loopback S3 server");
    println!();
    println!(
        "{:.1} MiB backup; s3s-fs 0.14.1 on 127.0.0.1 (in this process) with signature checks; \
         zstd level 3; age X25519. Push and pull in-process, alternating with the plain upload \
         round by round, each after a `sync` and with the bucket emptied (median of \
         {repetitions}); then once through the CLI for its peak RSS. A pull downloads, \
         decodes, checks every digest and runs quick_check before publishing.",
        backup.length as f64 / 1048576.0,
    );
    println!();
    println!(
        "| encoding | stored | push | ÷ plain upload | pull | CLI push (peak RSS) | CLI pull (peak RSS) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| plain object_store upload (the floor) | {:.1} MiB | {} | 1.00 | | | |",
        backup.length as f64 / 1048576.0,
        floor.seconds()
    );
    for (encoding, (pushes, pulls, stored)) in ENCODINGS.iter().zip(samples) {
        settle();
        let (push, pull) = (Stats::of(pushes), Stats::of(pulls));
        let prefix = fresh_prefix();
        let config = scratch.join("bench-remote.toml");
        config_file(&config, &s3, &prefix, encoding, &keys);
        let (_, push_rss) = cli(database, &backups, &config, &["push", BACKUP]);
        let pulled_into = scratch.join("pulled-cli");
        fs::create_dir_all(&pulled_into).expect("mkdir");
        let (_, pull_rss) = cli(database, &pulled_into, &config, &["pull", BACKUP]);
        fs::remove_dir_all(&pulled_into).expect("clean");
        println!(
            "| {} | {:.1} MiB | {} | {:.2} | {} | {:.0} MiB | {:.0} MiB |",
            encoding.label,
            stored as f64 / 1048576.0,
            push.seconds(),
            push.ratio(&floor),
            pull.seconds(),
            push_rss,
            pull_rss
        );
    }
}

fn capabilities(database: &Path, backups: &Path) -> Capabilities {
    Capabilities::new(
        LiveDatabase::new(database, DEFAULT_BUSY_TIMEOUT),
        BackupDir::create(backups).expect("backups"),
    )
}
