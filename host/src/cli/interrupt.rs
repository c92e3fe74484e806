//! Ctrl-C or SIGTERM during a create, restore or drill: the process would die with its
//! temporary file (a half-written copy, possibly gigabytes) left in the backup directory, or
//! a drill's scratch copy in TMPDIR, since no destructor runs when a signal ends a process.
//! Instead a watcher removes the temporaries and scratch directories this process holds,
//! says what state things are in, and exits 128 + the signal. SIGXFSZ (a write past
//! `ulimit -f`) is caught too, so that the write fails with an error instead.

use std::sync::mpsc;

use tokio::signal::unix::{SignalKind, signal};

/// Watches for SIGINT and SIGTERM for the rest of the process's life; on either, removes
/// this process's temporaries, prints `interrupted: <what>` and exits. Returns once the
/// handlers are in place (before that, a signal ends the process as usual).
pub fn remove_temporaries_on_interrupt(
    what: String,
    backups: std::path::PathBuf,
) -> anyhow::Result<()> {
    let (ready, installed) = mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("interrupt".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                let handlers = signal(SignalKind::interrupt())
                    .and_then(|i| Ok((i, signal(SignalKind::terminate())?)))
                    // A write past the file size limit (`ulimit -f`) would kill the process
                    // with SIGXFSZ, silently, its temporary left behind: with a handler in
                    // place the write fails with EFBIG instead, and the copy's error says
                    // what happened (found by the operator review).
                    .and_then(|(i, t)| Ok((i, t, signal(SignalKind::from_raw(libc::SIGXFSZ))?)));
                let (mut interrupt, mut terminate, _file_size_limit) = match handlers {
                    Ok(handlers) => {
                        let _ = ready.send(Ok(()));
                        handlers
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let signal_number = tokio::select! {
                    _ = interrupt.recv() => libc::SIGINT,
                    _ = terminate.recv() => libc::SIGTERM,
                };
                // A restore under way says itself whether it had committed.
                let what = crate::snapshot::interrupted_restore_report(&backups).unwrap_or(what);
                let removed = crate::store::remove_live_temporaries()
                    + crate::snapshot::remove_live_scratch();
                let files = if removed == 1 { "file" } else { "files" };
                // A progress bar drawn now goes first: the last line starts on a clean line.
                super::progress::close();
                eprintln!("interrupted: {what} (removed {removed} temporary {files})");
                std::process::exit(128 + signal_number);
            });
        })?;
    installed
        .recv()
        .map_err(|_| anyhow::anyhow!("the interrupt watcher did not start"))?
        .map_err(|e| anyhow::anyhow!("cannot watch SIGINT and SIGTERM: {e}"))
}
