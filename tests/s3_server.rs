//! `s3-test-server`: a real S3 protocol server on loopback for the offsite tests, the
//! benchmarks and the README's walk-through. It is `s3s-fs` (objects are files under a root
//! directory, buckets its subdirectories) behind `s3s`'s signature checks, so a wrong key is
//! refused as a real provider would refuse it.
//!
//! ```text
//! s3-test-server --root DIR --access-key K --secret-key S [--port P] [--bucket B]
//!                [--stop-on-stdin-eof]
//! ```
//!
//! It binds 127.0.0.1 (port 0 unless `--port`: the system picks one) and prints
//! `listening http://127.0.0.1:PORT` as its first line on stdout, so a harness reads the port
//! instead of guessing or sleeping. Requests are path style (`http://127.0.0.1:PORT/bucket/key`).
//! With `--stop-on-stdin-eof` it exits when its stdin closes: a test process that dies
//! without running its destructors leaves no server behind.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use litegraph_backup_tests::s3_server::{serve, service};
use tokio::net::TcpListener;

const USAGE: &str = "usage: s3-test-server --root DIR --access-key K --secret-key S \
[--port P] [--bucket B] [--stop-on-stdin-eof]";

struct Options {
    root: PathBuf,
    access_key: String,
    secret_key: String,
    port: u16,
    bucket: Option<String>,
    stop_on_stdin_eof: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut root, mut access_key, mut secret_key) = (None, None, None);
    let (mut port, mut bucket, mut stop_on_stdin_eof) = (0, None, false);
    while let Some(flag) = args.next() {
        if flag == "--stop-on-stdin-eof" {
            stop_on_stdin_eof = true;
            continue;
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--root" => root = Some(PathBuf::from(value)),
            "--access-key" => access_key = Some(value),
            "--secret-key" => secret_key = Some(value),
            "--port" => port = value.parse().map_err(|_| format!("bad port {value:?}"))?,
            "--bucket" => bucket = Some(value),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Options {
        root: root.ok_or("--root is required")?,
        access_key: access_key.ok_or("--access-key is required")?,
        secret_key: secret_key.ok_or("--secret-key is required")?,
        port,
        bucket,
        stop_on_stdin_eof,
    })
}

/// Ends the process when stdin reaches its end (or fails): the parent has gone. A thread of
/// its own, as tokio's stdin needs a feature nothing else in the workspace uses.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 256];
        while let Ok(read) = stdin.read(&mut buffer) {
            if read == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
}

async fn run(options: Options) -> Result<(), String> {
    let service = service(
        &options.root,
        &options.access_key,
        &options.secret_key,
        options.bucket.as_deref(),
    )?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("bind {address}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening http://{bound}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("announce the port: {e}"))?;
    if options.stop_on_stdin_eof {
        exit_when_stdin_closes();
    }
    serve(listener, service).await;
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("s3-test-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("s3-test-server: start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("s3-test-server: {message}");
            ExitCode::FAILURE
        }
    }
}
