//! Builds the fixture guest components the tests run in place of the real policy.

#[path = "../host/build_component.rs"]
mod component;

fn main() {
    component::build(
        "tests/fixtures/hostile-guest",
        "hostile_guest",
        "hostile.wasm",
    );
}
