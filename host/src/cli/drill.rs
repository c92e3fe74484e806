//! `drill`: a restore tested in a scratch database, never the live one.

use std::io::Write;

use super::{Exit, Failure};
use crate::config::Config;

pub(super) fn drill(
    _config: &Config,
    _name: Option<&str>,
    _out: &mut impl Write,
) -> anyhow::Result<Exit> {
    Err(Failure::error(Exit::Failed, "drill: not built yet"))
}
