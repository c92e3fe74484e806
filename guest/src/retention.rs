//! Which backups to keep: restic's `forget` rules.

use crate::litegraph::backup::types::Retention;

/// Whether the rules hold no keep rule at all (`include-named` is no rule).
pub fn is_empty(rules: &Retention) -> bool {
    [
        rules.keep_last,
        rules.keep_hourly,
        rules.keep_daily,
        rules.keep_weekly,
        rules.keep_monthly,
        rules.keep_yearly,
    ]
    .iter()
    .all(Option::is_none)
        && rules.keep_within_seconds.is_none()
}
