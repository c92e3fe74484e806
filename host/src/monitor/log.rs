//! One log line per operation, with its outcome, duration and bytes.
//!
//! The line's fields are `operation`, `outcome`, `backup` and `target` (when it had them),
//! `duration` (seconds, to the millisecond), `bytes`, and `reason` when it did not succeed;
//! as text they follow the message (`create succeeded operation="create" ...`), as JSON
//! (`--log-format json`) they are the object's keys. A success is logged at INFO, a
//! refusal (the caller's mistake) at WARN, a failure at ERROR.

use super::{OperationRecord, Outcome};

/// The log target of the operation lines, for a filter (`RUST_LOG`, `--log`) that wants
/// them alone, or not at all.
pub const TARGET: &str = "litegraph_backup::operation";

/// Writes `record`'s line.
pub fn write(record: &OperationRecord) {
    let operation = record.operation.as_str();
    let duration = (record.duration.as_secs_f64() * 1e3).round() / 1e3;
    macro_rules! line {
        ($level:expr, $ended:literal) => {
            tracing::event!(
                target: TARGET,
                $level,
                operation,
                outcome = record.outcome.as_str(),
                backup = record.backup.as_deref(),
                target = record.target.as_deref(),
                duration,
                bytes = record.bytes,
                reason = record.outcome.reason(),
                "{operation} {}",
                $ended
            )
        };
    }
    match record.outcome {
        Outcome::Success => line!(tracing::Level::INFO, "succeeded"),
        Outcome::Refused(_) => line!(tracing::Level::WARN, "refused"),
        Outcome::Failure(_) => line!(tracing::Level::ERROR, "failed"),
    }
}
