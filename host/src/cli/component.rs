//! `component`: the policy component this binary runs, and its WIT, written out for another
//! host (the Node.js host in `node-host/`, any wasm runtime with the component model).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use sha2::{Digest, Sha256};

use super::Exit;
use crate::digests::upper_hex;

/// The WIT package the component implements, as this binary was built with it.
const WIT: [(&str, &str); 6] = [
    ("backup.wit", include_str!("../../../wit/backup.wit")),
    ("remote.wit", include_str!("../../../wit/remote.wit")),
    ("snapshot.wit", include_str!("../../../wit/snapshot.wit")),
    ("store.wit", include_str!("../../../wit/store.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("world.wit", include_str!("../../../wit/world.wit")),
];

pub(super) const ABOUT: &str = "\
Write the policy component this binary runs (the exact bytes) to a file, for another host.

The component exports litegraph:backup's `backup` interface and imports `store`, `snapshot`
and `remote` (and WASI, unused): any host that implements those runs the same policy, e.g.
the Node.js host in node-host/ of the source tree. --wit DIR also writes the WIT package it
implements. The file is written whole or not at all (a temporary beside it, flushed, then
renamed over FILE); its SHA-256 is printed.";

pub(super) const EXAMPLES: &str = "\
Examples:
  litegraph-backup component --output litegraph-backup.wasm
  litegraph-backup component --output node-host/litegraph-backup.wasm --wit node-host/wit
  litegraph-backup component --output policy.wasm --json   # {Path, Bytes, Sha256, Wit}";

/// `component`'s options.
#[derive(Debug, Args)]
pub struct ComponentArgs {
    /// Where to write the component (replaced if it exists).
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Also write the WIT package (backup.wit, types.wit, ...) into this directory, made
    /// when missing.
    #[arg(long, value_name = "DIR")]
    pub wit: Option<PathBuf>,
}

/// Writes the component (and the WIT), then prints what was written.
pub fn write(args: &ComponentArgs, json: bool, out: &mut impl Write) -> anyhow::Result<Exit> {
    let component = crate::GUEST_COMPONENT;
    replace_file(&args.output, component)?;
    if let Some(dir) = &args.wit {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        for (name, text) in WIT {
            replace_file(&dir.join(name), text.as_bytes())?;
        }
    }
    let sha256 = upper_hex(&Sha256::digest(component));
    if json {
        let answer = serde_json::json!({
            "Path": args.output,
            "Bytes": component.len(),
            "Sha256": sha256,
            "Wit": args.wit,
        });
        writeln!(out, "{answer:#}")?;
    } else {
        writeln!(
            out,
            "wrote {} ({} bytes, SHA-256 {sha256})",
            args.output.display(),
            component.len()
        )?;
        if let Some(dir) = &args.wit {
            writeln!(
                out,
                "wrote the WIT package litegraph:backup into {}",
                dir.display()
            )?;
        }
    }
    Ok(Exit::Success)
}

/// Replaces `path` with `bytes`, whole or not at all: a temporary beside it, flushed, then
/// renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let failed =
        |what: &str, e: io::Error| anyhow::anyhow!("cannot {what} {}: {e}", path.display());
    let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "cannot write {}: the directory {} does not exist",
                path.display(),
                dir.display()
            )
        } else {
            failed(
                "write",
                io::Error::new(e.kind(), format!("in {}: {e}", dir.display())),
            )
        }
    })?;
    // Readable by all, as a file `cp` or the compiler would make (a temporary is 0600).
    temporary
        .write_all(bytes)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            temporary
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|e| failed("write", e))?;
    temporary
        .persist(path)
        .map_err(|e| failed("replace", e.error))?;
    Ok(())
}
