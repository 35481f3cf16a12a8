//! Host-side bindings generated from `sdk/wit/v0.1` (private to the plugin host).
//!
//! The imports (`log`, `clock`, `config`, `http`, `tcp`, `kv`) are generated once, with the
//! health-check world, which imports them all; the other two worlds reuse them. Every
//! import is trappable: the host-call quota ends a call with a trap.

pub mod check {
    wasmtime::component::bindgen!({
        world: "health-check",
        path: "../sdk/wit/v0.1",
        imports: { default: trappable },
    });
}

pub mod rewrite {
    wasmtime::component::bindgen!({
        world: "tag-rewriter",
        path: "../sdk/wit/v0.1",
        imports: { default: trappable },
        with: {
            "tribune:plugin/types": super::check::tribune::plugin::types,
            "tribune:plugin/log": super::check::tribune::plugin::log,
            "tribune:plugin/clock": super::check::tribune::plugin::clock,
            "tribune:plugin/config": super::check::tribune::plugin::config,
            "tribune:plugin/kv": super::check::tribune::plugin::kv,
        },
    });
}

pub mod hook {
    wasmtime::component::bindgen!({
        world: "event-hook",
        path: "../sdk/wit/v0.1",
        imports: { default: trappable },
        with: {
            "tribune:plugin/types": super::check::tribune::plugin::types,
            "tribune:plugin/log": super::check::tribune::plugin::log,
            "tribune:plugin/clock": super::check::tribune::plugin::clock,
            "tribune:plugin/config": super::check::tribune::plugin::config,
            "tribune:plugin/http": super::check::tribune::plugin::http,
            "tribune:plugin/tcp": super::check::tribune::plugin::tcp,
            "tribune:plugin/kv": super::check::tribune::plugin::kv,
        },
    });
}

pub use check::tribune::plugin::{clock, config, http, kv, log, tcp, types};
