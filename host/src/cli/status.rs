//! `status`: the state of the backups, as `/health` and the metrics see it.

use std::io::Write;

use super::{Exit, Failure};
use crate::config::Config;

pub(super) fn status(_config: &Config, _out: &mut impl Write) -> anyhow::Result<Exit> {
    Err(Failure::error(Exit::Failed, "status: not built yet"))
}
