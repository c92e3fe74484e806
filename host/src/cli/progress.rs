//! Progress bars on stderr, for a person at a terminal.

use std::sync::Arc;

use crate::config::Config;
use crate::monitor::{NoProgress, Progress};

/// Where a command shows the progress of its long passes.
pub(super) fn sink(_config: &Config) -> Arc<dyn Progress> {
    Arc::new(NoProgress)
}
