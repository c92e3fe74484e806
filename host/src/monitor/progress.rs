//! How far a long pass (copy, digests, restore, upload, download) is, for a person watching.
//!
//! A mechanism starts a [`Pass`] on the operation's [`Progress`] sink, reports the bytes it
//! has done, and the pass ends when the `Pass` is dropped, on every path out (an error
//! too): a terminal's bar is then gone before the command prints its answer or its error.

use std::io::{self, Read};

/// Receives the progress of one pass at a time. Calls come from the threads doing the
/// work, so [`Progress::update`] must be cheap (an atomic store) and none may fail; a pass
/// is started and finished on one thread, its updates may come from another.
pub trait Progress: Send + Sync {
    /// A pass over `total` bytes starts (0: not known); `what` names it for a person
    /// ("copying", "hashing", "uploading").
    fn start(&self, what: &str, total: u64);
    /// `done` bytes of the current pass are through (a running total, not a delta).
    fn update(&self, done: u64);
    /// The current pass ended.
    fn finish(&self);
}

/// Shows nothing: servers, pipes, `--quiet`, `--json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: u64) {}
    fn update(&self, _done: u64) {}
    fn finish(&self) {}
}

/// One pass, from its start to its drop.
#[must_use = "the pass ends when this is dropped"]
pub struct Pass<'a> {
    progress: &'a dyn Progress,
}

impl<'a> Pass<'a> {
    /// Starts the pass `what` over `total` bytes (0: not known) on `progress`.
    pub fn start(progress: &'a dyn Progress, what: &str, total: u64) -> Pass<'a> {
        progress.start(what, total);
        Pass { progress }
    }

    /// `done` bytes are through.
    pub fn update(&self, done: u64) {
        self.progress.update(done);
    }

    /// `source`, reporting the bytes read through it as this pass's progress.
    pub fn reader<R: Read>(&self, source: R) -> Reading<'_, R> {
        Reading {
            inner: source,
            pass: self,
            done: 0,
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.progress.finish();
    }
}

/// A reader whose bytes are a pass's progress (one atomic store a read).
pub struct Reading<'a, R> {
    inner: R,
    pass: &'a Pass<'a>,
    done: u64,
}

impl<R: Read> Read for Reading<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.done += n as u64;
        self.pass.update(self.done);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Every call, in order.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Progress for Recorded {
        fn start(&self, what: &str, total: u64) {
            self.push(format!("start {what} {total}"));
        }
        fn update(&self, done: u64) {
            self.push(format!("update {done}"));
        }
        fn finish(&self) {
            self.push("finish".into());
        }
    }

    impl Recorded {
        fn push(&self, call: String) {
            self.0.lock().expect("not poisoned").push(call);
        }
        fn calls(&self) -> Vec<String> {
            self.0.lock().expect("not poisoned").clone()
        }
    }

    #[test]
    fn a_reader_reports_running_totals_and_the_pass_ends_when_dropped() {
        let recorded = Recorded::default();
        {
            let pass = Pass::start(&recorded, "hashing", 10);
            let mut reader = pass.reader(io::Cursor::new(vec![7u8; 10]));
            let mut buffer = [0u8; 4];
            while reader.read(&mut buffer).expect("in memory") > 0 {}
        }
        assert_eq!(
            recorded.calls(),
            [
                "start hashing 10",
                "update 4",
                "update 8",
                "update 10",
                "update 10",
                "finish"
            ]
        );
    }

    #[test]
    fn a_pass_ends_on_an_early_return_too() {
        let recorded = Recorded::default();
        let failing = || -> Result<(), &'static str> {
            let pass = Pass::start(&recorded, "copying", 100);
            pass.update(50);
            Err("disk full")
        };
        assert_eq!(failing(), Err("disk full"));
        assert_eq!(
            recorded.calls(),
            ["start copying 100", "update 50", "finish"]
        );
    }
}
