//! The log: text lines for people, or JSON lines for log shippers (`--log-format`).

use std::io;

use crate::config::Config;

/// The log goes to stderr, filtered as RUST_LOG says, coloured only on a terminal and
/// without NO_COLOR.
pub(super) fn init_logging(config: &Config) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let colour = config.log.colour && io::IsTerminal::is_terminal(&io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(format)
        .with(config.log.filter.clone())
        .try_init();
}
