//! One log line per operation, with its outcome, duration and bytes.

use super::OperationRecord;

/// Writes `record`'s line.
pub fn write(record: &OperationRecord) {
    tracing::debug!(
        operation = record.operation.as_str(),
        outcome = record.outcome.as_str(),
        "operation ended"
    );
}
