//! Write Tribune plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` from a `cdylib` crate
//! with a `plugin.toml` manifest at its root. Implement one trait and export it:
//!
//! ```ignore
//! use tribune_plugin_sdk::{CheckRequest, CheckResult, HealthCheck, Result};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl HealthCheck for Hello {
//!     fn check(&mut self, request: CheckRequest) -> Result<CheckResult> {
//!         Ok(CheckResult::passing(format!("hello from {}", request.check_id)))
//!     }
//! }
//!
//! tribune_plugin_sdk::export_health_check!(Hello);
//! ```
//!
//! | kind | trait | macro | instance |
//! |---|---|---|---|
//! | health check | [`HealthCheck`] | [`export_health_check!`] | fresh for every call |
//! | tag rewriter | [`TagRewriter`] | [`export_tag_rewriter!`] | kept between calls |
//! | event hook | [`EventHook`] | [`export_event_hook!`] | kept between calls |
//!
//! The host functions are in [`log`], [`clock`], [`config`], [`http`], [`tcp`] and [`kv`].
//! `http`, `tcp` and `kv` are capabilities: they work only for targets your manifest
//! declares and the operator grants; anything else returns [`Error::Denied`], whose text
//! says which side is missing. Returning that error from `check` makes the check
//! critical with that text, so operators see why.
//!
//! The export macros also embed `plugin.toml` (from the crate root) and an SDK stamp into
//! the component, so the built `.wasm` is all the agent needs.

use std::fmt;

// The generated bindings name this crate by its published name.
extern crate self as tribune_plugin_sdk;

#[doc(hidden)]
pub mod bindings {
    //! Generated from `sdk/wit/v0.1`; use the re-exports at the crate root instead.

    pub mod health_check {
        wit_bindgen::generate!({
            world: "health-check",
            path: "../wit/v0.1",
            pub_export_macro: true,
            default_bindings_module: "tribune_plugin_sdk::bindings::health_check",
            export_macro_name: "export",
            runtime_path: "tribune_plugin_sdk::__rt",
        });
    }

    pub mod tag_rewriter {
        wit_bindgen::generate!({
            world: "tag-rewriter",
            path: "../wit/v0.1",
            pub_export_macro: true,
            default_bindings_module: "tribune_plugin_sdk::bindings::tag_rewriter",
            export_macro_name: "export",
            runtime_path: "tribune_plugin_sdk::__rt",
            with: {
                "tribune:plugin/types@0.1.0": crate::bindings::health_check::tribune::plugin::types,
                "tribune:plugin/log@0.1.0": crate::bindings::health_check::tribune::plugin::log,
                "tribune:plugin/clock@0.1.0": crate::bindings::health_check::tribune::plugin::clock,
                "tribune:plugin/config@0.1.0": crate::bindings::health_check::tribune::plugin::config,
                "tribune:plugin/kv@0.1.0": crate::bindings::health_check::tribune::plugin::kv,
            },
        });
    }

    pub mod event_hook {
        wit_bindgen::generate!({
            world: "event-hook",
            path: "../wit/v0.1",
            pub_export_macro: true,
            default_bindings_module: "tribune_plugin_sdk::bindings::event_hook",
            export_macro_name: "export",
            runtime_path: "tribune_plugin_sdk::__rt",
            with: {
                "tribune:plugin/types@0.1.0": crate::bindings::health_check::tribune::plugin::types,
                "tribune:plugin/log@0.1.0": crate::bindings::health_check::tribune::plugin::log,
                "tribune:plugin/clock@0.1.0": crate::bindings::health_check::tribune::plugin::clock,
                "tribune:plugin/config@0.1.0": crate::bindings::health_check::tribune::plugin::config,
                "tribune:plugin/http@0.1.0": crate::bindings::health_check::tribune::plugin::http,
                "tribune:plugin/tcp@0.1.0": crate::bindings::health_check::tribune::plugin::tcp,
                "tribune:plugin/kv@0.1.0": crate::bindings::health_check::tribune::plugin::kv,
            },
        });
    }
}

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

use bindings::health_check::tribune::plugin as wit;

pub use wit::types::{
    CheckChange, CheckStatus, Event, EventData, EventKind, Labels, Member, Service, UserEvent,
};

/// The SDK's version, stamped into every plugin built with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The contract version this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// Why something failed. Its text is what the operator reads in a check's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A capability call was refused: not declared in `plugin.toml`, or not granted by
    /// the operator for that target.
    Denied(String),
    /// A host call ran out of time.
    Timeout(String),
    /// A host call failed (connection refused, ...).
    Failed(String),
    /// Bad arguments to a host call.
    Invalid(String),
    /// Anything the plugin itself reports.
    Plugin(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(m) => write!(f, "denied: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Failed(m) | Error::Invalid(m) | Error::Plugin(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit::types::HostError> for Error {
    fn from(e: wit::types::HostError) -> Self {
        use wit::types::HostError as H;
        match e {
            H::Denied(m) => Error::Denied(m),
            H::Timeout(m) => Error::Timeout(m),
            H::Failed(m) => Error::Failed(m),
            H::Invalid(m) => Error::Invalid(m),
        }
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Plugin(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Plugin(s.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Invalid(format!("bad JSON: {e}"))
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a check invocation is about.
#[derive(Clone, Debug)]
pub struct CheckRequest {
    /// The check's ID.
    pub check_id: String,
    /// The service it belongs to (empty for a node check).
    pub service_id: String,
    /// The check's `wasm.config` object.
    pub config: serde_json::Value,
    /// The check's timeout, milliseconds.
    pub timeout_ms: u32,
}

impl CheckRequest {
    /// The check's config decoded into your own type.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.config.clone())
            .map_err(|e| Error::Invalid(format!("bad check config: {e}")))
    }
}

/// What a health check returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub status: CheckStatus,
    pub output: String,
}

impl CheckResult {
    pub fn passing(output: impl Into<String>) -> Self {
        CheckResult {
            status: CheckStatus::Passing,
            output: output.into(),
        }
    }
    pub fn warning(output: impl Into<String>) -> Self {
        CheckResult {
            status: CheckStatus::Warning,
            output: output.into(),
        }
    }
    pub fn critical(output: impl Into<String>) -> Self {
        CheckResult {
            status: CheckStatus::Critical,
            output: output.into(),
        }
    }
}

/// A health check. A fresh instance (`Default::default()`) runs every call, so nothing
/// survives from one call to the next.
pub trait HealthCheck: Default {
    /// Runs the check. An `Err` makes the check critical with the error's text.
    fn check(&mut self, request: CheckRequest) -> Result<CheckResult>;
}

/// A tag rewriter. One instance is kept and called for every service registered on the
/// agent; [`TagRewriter::new`] runs before the first call.
pub trait TagRewriter {
    /// Builds the rewriter (read [`config::plugin_config`] here).
    fn new() -> Result<Self>
    where
        Self: Sized;

    /// The service's new tags and meta, or `None` to leave it as it is (the default).
    /// An `Err` leaves the service unchanged and is logged by the agent.
    fn rewrite(&mut self, service: &Service) -> Result<Option<Labels>> {
        let _ = service;
        Ok(None)
    }
}

/// An event hook. One instance is kept; events arrive one at a time, in order. Override
/// [`EventHook::on_event`] to see everything, or the per-kind methods (all default to
/// doing nothing).
pub trait EventHook {
    /// Builds the hook (read [`config::plugin_config`] here).
    fn new() -> Result<Self>
    where
        Self: Sized;

    /// Every event. The default dispatches to the per-kind methods below.
    fn on_event(&mut self, event: &Event) -> Result<()> {
        match (&event.kind, &event.data) {
            (EventKind::ServiceRegistered, EventData::Service(s)) => {
                self.on_service_registered(event, s)
            }
            (EventKind::ServiceDeregistered, EventData::Service(s)) => {
                self.on_service_deregistered(event, s)
            }
            (EventKind::CheckStatusChanged, EventData::Check(c)) => {
                self.on_check_status_changed(event, c)
            }
            (_, EventData::Member(m)) => self.on_member(event, m),
            (_, EventData::Leader(l)) => self.on_leader_changed(event, l),
            (_, EventData::User(u)) => self.on_user_event(event, u),
            _ => Ok(()),
        }
    }

    fn on_service_registered(&mut self, _event: &Event, _service: &Service) -> Result<()> {
        Ok(())
    }
    fn on_service_deregistered(&mut self, _event: &Event, _service: &Service) -> Result<()> {
        Ok(())
    }
    fn on_check_status_changed(&mut self, _event: &Event, _check: &CheckChange) -> Result<()> {
        Ok(())
    }
    /// member-joined, member-failed and member-left (see `event.kind`).
    fn on_member(&mut self, _event: &Event, _member: &Member) -> Result<()> {
        Ok(())
    }
    /// The new leader's node name, empty while there is none.
    fn on_leader_changed(&mut self, _event: &Event, _leader: &str) -> Result<()> {
        Ok(())
    }
    fn on_user_event(&mut self, _event: &Event, _user: &UserEvent) -> Result<()> {
        Ok(())
    }
}

/// Runs a [`HealthCheck`] for the export glue.
#[doc(hidden)]
pub fn __run_check<T: HealthCheck>(req: wit::types::CheckRequest) -> wit::types::CheckResult {
    let config = if req.config.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match serde_json::from_str(&req.config) {
            Ok(v) => v,
            Err(e) => {
                return wit::types::CheckResult {
                    status: CheckStatus::Critical,
                    output: format!("bad check config: {e}"),
                }
            }
        }
    };
    let request = CheckRequest {
        check_id: req.check_id,
        service_id: req.service_id,
        config,
        timeout_ms: req.timeout_ms,
    };
    match T::default().check(request) {
        Ok(r) => wit::types::CheckResult {
            status: r.status,
            output: r.output,
        },
        Err(e) => wit::types::CheckResult {
            status: CheckStatus::Critical,
            output: e.to_string(),
        },
    }
}

/// Runs a [`TagRewriter`] for the export glue, building it on first use.
#[doc(hidden)]
pub fn __run_rewrite<T: TagRewriter>(
    state: &std::cell::RefCell<Option<T>>,
    service: Service,
) -> Option<Labels> {
    let mut state = state.borrow_mut();
    if state.is_none() {
        match T::new() {
            Ok(t) => *state = Some(t),
            Err(e) => {
                log::error(&format!("tag rewriter failed to start: {e}"));
                return None;
            }
        }
    }
    let rewriter = state.as_mut()?;
    match rewriter.rewrite(&service) {
        Ok(labels) => labels,
        Err(e) => {
            log::warn(&format!("rewrite of service {} skipped: {e}", service.id));
            None
        }
    }
}

/// Runs an [`EventHook`] for the export glue, building it on first use.
#[doc(hidden)]
pub fn __run_hook<T: EventHook>(
    state: &std::cell::RefCell<Option<T>>,
    event: Event,
) -> std::result::Result<(), String> {
    let mut state = state.borrow_mut();
    if state.is_none() {
        *state = Some(T::new().map_err(|e| format!("event hook failed to start: {e}"))?);
    }
    match state.as_mut() {
        Some(hook) => hook.on_event(&event).map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// The SDK stamp embedded in every plugin (`tribune:sdk` section).
#[doc(hidden)]
pub const __SDK_STAMP: &str = concat!("rust ", env!("CARGO_PKG_VERSION"));

/// Copies a byte string into an array (for `link_section` statics, which need a sized
/// type).
#[doc(hidden)]
pub const fn __bytes<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = src[i];
        i += 1;
    }
    out
}

/// Embeds `plugin.toml` and the SDK stamp; used by the export macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __tribune_stamps {
    () => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            const MANIFEST: &[u8] =
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/plugin.toml"));
            #[used]
            #[unsafe(link_section = "tribune:manifest")]
            static TRIBUNE_MANIFEST: [u8; MANIFEST.len()] = $crate::__bytes(MANIFEST);
            const SDK: &[u8] = $crate::__SDK_STAMP.as_bytes();
            #[used]
            #[unsafe(link_section = "tribune:sdk")]
            static TRIBUNE_SDK: [u8; SDK.len()] = $crate::__bytes(SDK);
        };
    };
}

/// Exports a [`HealthCheck`] implementation as the component's `check` function and
/// embeds `plugin.toml` from the crate root.
#[macro_export]
macro_rules! export_health_check {
    ($t:ty) => {
        // Exports exist only in the component; on the host (unit tests of a plugin's
        // logic) the crate builds without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __TribuneExport;
            impl $crate::bindings::health_check::exports::tribune::plugin::check::Guest
                for __TribuneExport
            {
                fn check(
                    request: $crate::bindings::health_check::tribune::plugin::types::CheckRequest,
                ) -> $crate::bindings::health_check::tribune::plugin::types::CheckResult {
                    $crate::__run_check::<$t>(request)
                }
            }
            $crate::__export_health_check_impl!(__TribuneExport with_types_in $crate::bindings::health_check);
        };
        // On the host the plugin's own tests still see the type as used.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $t = <$t as ::core::default::Default>::default;
        $crate::__tribune_stamps!();
    };
}

/// Exports a [`TagRewriter`] implementation (one instance, kept) and embeds
/// `plugin.toml` from the crate root.
#[macro_export]
macro_rules! export_tag_rewriter {
    ($t:ty) => {
        // Exports exist only in the component; on the host (unit tests of a plugin's
        // logic) the crate builds without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(None) };
            }
            struct __TribuneExport;
            impl $crate::bindings::tag_rewriter::exports::tribune::plugin::rewrite::Guest
                for __TribuneExport
            {
                fn rewrite(
                    service: $crate::Service,
                ) -> ::std::option::Option<$crate::Labels> {
                    STATE.with(|s| $crate::__run_rewrite::<$t>(s, service))
                }
            }
            $crate::__export_tag_rewriter_impl!(__TribuneExport with_types_in $crate::bindings::tag_rewriter);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::Result<$t> = <$t as $crate::TagRewriter>::new;
        $crate::__tribune_stamps!();
    };
}

/// Exports an [`EventHook`] implementation (one instance, kept) and embeds
/// `plugin.toml` from the crate root.
#[macro_export]
macro_rules! export_event_hook {
    ($t:ty) => {
        // Exports exist only in the component; on the host (unit tests of a plugin's
        // logic) the crate builds without them.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(None) };
            }
            struct __TribuneExport;
            impl $crate::bindings::event_hook::exports::tribune::plugin::hook::Guest
                for __TribuneExport
            {
                fn on_event(
                    event: $crate::Event,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    STATE.with(|s| $crate::__run_hook::<$t>(s, event))
                }
            }
            $crate::__export_event_hook_impl!(__TribuneExport with_types_in $crate::bindings::event_hook);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::Result<$t> = <$t as $crate::EventHook>::new;
        $crate::__tribune_stamps!();
    };
}

/// Logging into the agent's log (needs `log = true` in the manifest's capabilities).
pub mod log {
    use super::wit::log::log;
    use super::wit::types::Level;

    pub fn trace(message: &str) {
        log(Level::Trace, message)
    }
    pub fn debug(message: &str) {
        log(Level::Debug, message)
    }
    pub fn info(message: &str) {
        log(Level::Info, message)
    }
    pub fn warn(message: &str) {
        log(Level::Warn, message)
    }
    pub fn error(message: &str) {
        log(Level::Error, message)
    }
}

/// Time.
pub mod clock {
    /// Unix milliseconds.
    pub fn now_unix_ms() -> u64 {
        super::wit::clock::now_unix_ms()
    }
    /// Milliseconds left before the agent interrupts this call.
    pub fn remaining_ms() -> u32 {
        super::wit::clock::remaining_ms()
    }
}

/// The plugin's name and its plugin-wide configuration (`plugins[].config`).
pub mod config {
    use super::{Error, Result};

    pub fn plugin_name() -> String {
        super::wit::config::plugin_name()
    }

    /// The agent's node name.
    pub fn node_name() -> String {
        super::wit::config::node_name()
    }

    /// The plugin-wide configuration as JSON (`null` when none).
    pub fn plugin_config_json() -> String {
        super::wit::config::plugin_config()
    }

    /// The plugin-wide configuration decoded into your own type (`null` decodes as an
    /// empty object, so `#[serde(default)]` structs work without any config).
    pub fn plugin_config<T: serde::de::DeserializeOwned>() -> Result<T> {
        let text = plugin_config_json();
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let value = if value.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            value
        };
        serde_json::from_value(value).map_err(|e| Error::Invalid(format!("bad plugin config: {e}")))
    }
}

/// Outgoing HTTP (capability `http`).
pub mod http {
    use super::wit::http as h;
    use super::Result;

    /// A response.
    #[derive(Clone, Debug)]
    pub struct Response {
        pub status: u16,
        /// Header names lower-cased.
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        /// The body as text (lossy UTF-8).
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        /// The body decoded as JSON.
        pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
            Ok(serde_json::from_slice(&self.body)?)
        }
        /// A header's first value.
        pub fn header(&self, name: &str) -> Option<&str> {
            let name = name.to_ascii_lowercase();
            self.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A request under construction.
    #[derive(Clone, Debug)]
    pub struct Request {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u32,
    }

    impl Request {
        pub fn new(method: &str, url: &str) -> Request {
            Request {
                method: method.to_string(),
                url: url.to_string(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: 0,
            }
        }
        pub fn header(mut self, name: &str, value: &str) -> Request {
            self.headers.push((name.to_string(), value.to_string()));
            self
        }
        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
            self.body = body.into();
            self
        }
        /// A JSON body with its content type.
        pub fn json<T: serde::Serialize>(self, value: &T) -> Result<Request> {
            let body = serde_json::to_vec(value)?;
            Ok(self.header("content-type", "application/json").body(body))
        }
        /// A timeout for this request (never longer than what is left of the call).
        pub fn timeout_ms(mut self, ms: u32) -> Request {
            self.timeout_ms = ms;
            self
        }
        pub fn send(self) -> Result<Response> {
            let r = h::fetch(&h::Request {
                method: self.method,
                url: self.url,
                headers: self.headers,
                body: self.body,
                timeout_ms: self.timeout_ms,
            })?;
            Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Result<Response> {
        Request::new("GET", url).send()
    }
}

/// One TCP exchange (capability `tcp`).
pub mod tcp {
    use super::wit::tcp as t;
    use super::Result;

    /// Connects to `address` (`host:port`), sends `send`, reads until `until` appears,
    /// `max_bytes` arrived (0: 4 KiB), the peer closes or `timeout_ms` passes (0: what is
    /// left of the call).
    pub fn exchange(
        address: &str,
        send: &[u8],
        until: &[u8],
        max_bytes: u32,
        timeout_ms: u32,
    ) -> Result<Vec<u8>> {
        Ok(t::request(&t::Exchange {
            address: address.to_string(),
            send: send.to_vec(),
            read_until: until.to_vec(),
            max_bytes,
            timeout_ms,
        })?)
    }
}

/// Reading the agent's KV store (capability `kv-read`).
pub mod kv {
    use super::Result;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
        Ok(super::wit::kv::get(key)?)
    }

    pub fn keys(prefix: &str) -> Result<Vec<String>> {
        Ok(super::wit::kv::keys(prefix)?)
    }
}
