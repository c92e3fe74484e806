//! Progress bars on stderr, for a person at a terminal: one bar a pass (copying, hashing,
//! restoring, uploading, downloading) with bytes, rate and ETA, drawn by `indicatif`.
//!
//! The passes only store a byte count in an atomic; a ticker thread of ours copies it into
//! the bar ten times a second, and indicatif draws. A bar is drawn once when its pass
//! starts and cleared when it ends, on the worker's thread, so nothing of it is left when
//! the command prints its answer or its error.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::monitor::{NoProgress, Progress};

/// How often a shown bar is brought up to date.
const TICK: Duration = Duration::from_millis(100);
/// How often an idle ticker looks whether it is still needed.
const IDLE: Duration = Duration::from_secs(1);

/// A pass whose size is known.
const BAR: &str =
    "{msg:>11} [{wide_bar}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  ETA {eta}";
/// A pass whose size is not known: how long it has taken.
const SPINNER: &str = "{msg:>11} {spinner} {elapsed}";

/// Where a command shows the progress of its long passes: bars when stderr is a terminal
/// that can draw them (`TERM` set and not `dumb`), and neither `--quiet` nor `--json`.
pub(super) fn sink(config: &Config) -> Arc<dyn Progress> {
    let drawable = std::io::stderr().is_terminal() && !ProgressDrawTarget::stderr().is_hidden();
    if config.quiet || config.json || !drawable {
        return Arc::new(NoProgress);
    }
    match TERMINAL.get_or_init(|| Bars::start(ProgressDrawTarget::stderr)) {
        Some(bars) => Arc::clone(bars) as Arc<dyn Progress>,
        // No thread for the ticker: the command runs without bars.
        None => Arc::new(NoProgress),
    }
}

/// Clears the bar on the terminal, if one is shown, and draws none after: for a process
/// about to exit on a signal, so that its last line starts on a clean line.
pub(super) fn close() {
    if let Some(Some(bars)) = TERMINAL.get() {
        bars.close();
    }
}

/// Stderr for the log: a line written while a bar is shown takes the bar off the terminal
/// first and draws it again after, so that neither is drawn over the other.
pub(super) fn stderr() -> Stderr {
    Stderr
}

/// See [`stderr`].
pub(super) struct Stderr;

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        around_bars(|| io::stderr().write(bytes))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        around_bars(|| io::stderr().write_all(bytes))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

fn around_bars<R>(write: impl FnOnce() -> R) -> R {
    match TERMINAL.get() {
        Some(Some(bars)) => bars.suspend(write),
        _ => write(),
    }
}

/// The process's bars on stderr, made by the first [`sink`] that draws.
static TERMINAL: OnceLock<Option<Arc<Bars>>> = OnceLock::new();

/// The bars of one terminal: at most one shown at a time.
struct Bars {
    /// Bytes done in the current pass: the workers' only write.
    done: AtomicU64,
    shown: Mutex<Shown>,
    /// Wakes the ticker when a bar appears.
    started: Condvar,
    /// Where a new bar draws (stderr; a recording terminal in the tests).
    target: fn() -> ProgressDrawTarget,
}

#[derive(Default)]
struct Shown {
    bar: Option<ProgressBar>,
    /// The bar was drawn by its start and not yet ticked: the next tick is a [`TICK`] away.
    fresh: bool,
    /// Set when the process is about to exit: no bar is drawn any more.
    closed: bool,
}

impl Bars {
    /// Bars drawing on `target`, with their ticker thread; `None` if it cannot start.
    fn start(target: fn() -> ProgressDrawTarget) -> Option<Arc<Bars>> {
        let bars = Arc::new(Bars {
            done: AtomicU64::new(0),
            shown: Mutex::new(Shown::default()),
            started: Condvar::new(),
            target,
        });
        let ticker = Arc::downgrade(&bars);
        std::thread::Builder::new()
            .name("progress".to_owned())
            .spawn(move || tick(&ticker))
            .ok()?;
        Some(bars)
    }

    fn shown(&self) -> MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `write` with the bar shown, if any, off the terminal.
    fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.shown().bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// Clears the bar shown, if any, and draws no other: the process is about to exit.
    fn close(&self) {
        let mut shown = self.shown();
        shown.closed = true;
        if let Some(bar) = shown.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Brings the shown bar up to date every [`TICK`] until the bars are gone.
fn tick(bars: &Weak<Bars>) {
    while let Some(bars) = bars.upgrade() {
        let mut shown = bars.shown();
        let wait = match &shown.bar {
            Some(_) if shown.fresh => {
                shown.fresh = false;
                TICK
            }
            Some(bar) => {
                bar.set_position(bars.done.load(Ordering::Relaxed));
                TICK
            }
            None => IDLE,
        };
        drop(bars.started.wait_timeout(shown, wait));
    }
}

impl Progress for Bars {
    fn start(&self, what: &str, total: u64) {
        let mut shown = self.shown();
        if let Some(previous) = shown.bar.take() {
            previous.finish_and_clear();
        }
        if shown.closed {
            return;
        }
        self.done.store(0, Ordering::Relaxed);
        let (length, template) = match total {
            0 => (None, SPINNER),
            total => (Some(total), BAR),
        };
        let style = ProgressStyle::with_template(template)
            .expect("the templates are valid")
            .progress_chars("=> ")
            .tick_chars("-\\|/ ");
        let bar = ProgressBar::with_draw_target(length, (self.target)())
            .with_style(style)
            .with_message(what.to_owned());
        // Drawn at once, however short the pass.
        bar.tick();
        shown.bar = Some(bar);
        shown.fresh = true;
        self.started.notify_one();
    }

    fn update(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    fn finish(&self) {
        if let Some(bar) = self.shown().bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use indicatif::TermLike;

    /// A terminal that keeps what was written and which lines were cleared.
    #[derive(Debug, Default)]
    struct Recording(Mutex<String>);

    impl Recording {
        fn text(&self) -> String {
            self.0.lock().expect("not poisoned").clone()
        }
        fn push(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().expect("not poisoned").push_str(s);
            Ok(())
        }
    }

    /// One recording per test (the draw target is made by a plain `fn`).
    macro_rules! recording {
        () => {{
            static RECORDING: OnceLock<Arc<Recording>> = OnceLock::new();
            fn target() -> ProgressDrawTarget {
                let recording = Arc::clone(RECORDING.get_or_init(Default::default));
                ProgressDrawTarget::term_like(Box::new(Shared(recording)))
            }
            (target as fn() -> ProgressDrawTarget, || {
                RECORDING.get_or_init(Default::default).text()
            })
        }};
    }

    #[derive(Debug)]
    struct Shared(Arc<Recording>);

    impl TermLike for Shared {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.0.push(&format!("<up {n}>"))
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.0.push(&format!("<down {n}>"))
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.0.push(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.push(s)
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.push("<clear>")
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Polls `text` until it contains `wanted`, for up to ten seconds.
    fn eventually(text: impl Fn() -> String, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = text();
            if now.contains(wanted) || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_bar_is_drawn_at_once_follows_the_count_and_is_cleared_at_the_end() {
        let (target, text) = recording!();
        let bars = Bars::start(target).expect("a ticker thread");
        bars.start("copying", 4 << 20);
        let drawn = text();
        assert!(drawn.contains("copying"), "{drawn:?}");
        assert!(drawn.contains("0 B/4.00 MiB"), "{drawn:?}");
        // Only the atomic is written; the ticker draws it.
        bars.update(3 << 20);
        let ticked = eventually(text, "3.00 MiB/4.00 MiB");
        assert!(ticked.contains("3.00 MiB/4.00 MiB"), "{ticked:?}");
        assert!(ticked.contains("/s"), "a rate: {ticked:?}");
        assert!(ticked.contains("ETA"), "{ticked:?}");
        let before = text().len();
        bars.finish();
        let after = text();
        assert!(
            after[before..].contains("<clear>"),
            "cleared at the end: {:?}",
            &after[before..]
        );
        // Nothing more is drawn once the pass has ended, whatever is reported.
        bars.update(4 << 20);
        std::thread::sleep(3 * TICK);
        assert_eq!(text(), after);
    }

    #[test]
    fn a_pass_of_unknown_size_shows_its_time_and_the_next_pass_replaces_it() {
        let (target, text) = recording!();
        let bars = Bars::start(target).expect("a ticker thread");
        bars.start("checking", 0);
        assert!(text().contains("checking"), "{:?}", text());
        bars.start("hashing", 100);
        let drawn = text();
        let hashing = drawn.find("hashing").expect("the second pass is drawn");
        assert!(
            drawn[..hashing].contains("<clear>"),
            "the first was cleared first: {drawn:?}"
        );
        bars.finish();
    }

    #[test]
    fn a_line_written_during_a_pass_takes_the_bar_off_and_puts_it_back() {
        let (target, text) = recording!();
        let bars = Bars::start(target).expect("a ticker thread");
        bars.start("uploading", 100);
        bars.suspend(|| {
            let before = text();
            let drawn = before.find("uploading").expect("drawn at the start");
            assert!(before[drawn..].contains("<clear>"), "{before:?}");
        });
        let after = text();
        assert_eq!(after.matches("uploading").count(), 2, "{after:?}");
        bars.finish();
    }

    #[test]
    fn the_log_can_write_through_the_bars() {
        // What cli/logging.rs would pass instead of `io::stderr`.
        let layer = tracing_subscriber::fmt::layer().with_writer(stderr);
        let _subscriber =
            tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), layer);
    }

    #[test]
    fn closed_bars_draw_nothing_more() {
        let (target, text) = recording!();
        let bars = Bars::start(target).expect("a ticker thread");
        bars.start("restoring", 100);
        bars.close();
        let closed = text();
        let drawn = closed.find("restoring").expect("drawn at the start");
        assert!(closed[drawn..].contains("<clear>"), "{closed:?}");
        bars.start("hashing", 100);
        bars.finish();
        assert_eq!(text(), closed);
    }
}
