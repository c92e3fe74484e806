//! Builds the policy component (`guest/`) and leaves it in `OUT_DIR/guest.wasm`, where
//! `include_bytes!` embeds it in the host.

#[path = "build_component.rs"]
mod component;

fn main() {
    require_sqlite_dbpage();
    component::build("guest", "litegraph_backup_guest", "guest.wasm");
}

/// Every backup and restore reads or writes pages through SQLite's `sqlite_dbpage` table,
/// which the bundled SQLite has only when built with `SQLITE_ENABLE_DBPAGE_VTAB`: the
/// checkout's `.cargo/config.toml` says so, but cargo reads it only when run inside the
/// checkout. A binary built elsewhere (`cargo install --path host` from another directory)
/// would fail every `create`; better to fail its build, saying why.
fn require_sqlite_dbpage() {
    println!("cargo:rerun-if-env-changed=LIBSQLITE3_FLAGS");
    let flags = std::env::var("LIBSQLITE3_FLAGS").unwrap_or_default();
    if !flags.contains("SQLITE_ENABLE_DBPAGE_VTAB") {
        panic!(
            "litegraph-backup needs SQLite's sqlite_dbpage table: build inside the checkout \
             (its .cargo/config.toml sets LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_DBPAGE_VTAB), or \
             set that variable yourself (LIBSQLITE3_FLAGS is {flags:?})"
        );
    }
}
