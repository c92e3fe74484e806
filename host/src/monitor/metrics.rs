//! The Prometheus metrics of the operations.

use super::OperationRecord;

/// The metrics of every operation this process ran.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn observe(&self, _record: &OperationRecord) {}
}
