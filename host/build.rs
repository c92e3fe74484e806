//! Builds the policy component (`guest/`) and leaves it in `OUT_DIR/guest.wasm`, where
//! `include_bytes!` embeds it in the host.

#[path = "build_component.rs"]
mod component;

fn main() {
    component::build("guest", "litegraph_backup_guest", "guest.wasm");
}
