//! The log: text lines for people, or JSON lines for log shippers (`--log-format`).

use std::io;

use tracing_subscriber::filter::{LevelFilter, Targets};

use crate::config::{Config, LogFormat, Source};
use crate::monitor;

/// The log goes to stderr, filtered as RUST_LOG says: as text, coloured only on a terminal
/// and without NO_COLOR, or as one JSON object per line whose keys are the event's fields
/// (`message`, `operation`, `outcome`, ...), with `timestamp` and `level`.
pub(super) fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logged = tracing_subscriber::registry().with(filter(config));
    let _ = match config.log.format {
        LogFormat::Text => {
            let colour = config.log.colour && io::IsTerminal::is_terminal(&io::stderr());
            let text = tracing_subscriber::fmt::layer()
                .with_writer(super::progress::stderr)
                .with_ansi(colour)
                .with_target(false);
            logged.with(text).try_init()
        }
        LogFormat::Json => {
            // No `target` key (the event's module): it would clash with an operation's
            // remote `target` field, which the flattened object carries at the top.
            let json = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(super::progress::stderr)
                .with_ansi(false)
                .with_target(false);
            logged.with(json).try_init()
        }
    };
}

/// The configured filter; but a command left at its default (`error`) logs no operation
/// line: it prints its answer, or one error line that already says what the failure's line
/// would. `serve`'s default (info, or warn with `--quiet`) keeps them, since a server's log
/// is its output, and so does any filter the operator chose (RUST_LOG, `--log`, the file).
fn filter(config: &Config) -> Targets {
    let filter = config.log.filter.clone();
    let chosen = config
        .report
        .iter()
        .any(|entry| entry.key == "log" && entry.source != Source::Default);
    if chosen || filter.default_level() > Some(LevelFilter::ERROR) {
        filter
    } else {
        filter.with_target(monitor::log::TARGET, LevelFilter::OFF)
    }
}
