//! How far a long pass (copy, digests, restore, upload, download) is, for a person watching.

/// Receives the progress of one pass at a time. Calls come from the thread doing the
/// work, so they must be cheap (an atomic store), and never fail.
pub trait Progress: Send + Sync {
    /// A pass over `total` bytes starts; `what` names it for a person ("copying",
    /// "hashing", "uploading").
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
