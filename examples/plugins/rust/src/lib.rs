//! An example health check in Rust: the status comes from the check's config
//! (`{"status": "warning"}`), the output says hello. Build:
//!
//!     cargo build --release --target wasm32-wasip2
//!
//! and use `target/wasm32-wasip2/release/example_rust.wasm`.

use tribune_plugin_sdk::{log, CheckRequest, CheckResult, HealthCheck, Result};

#[derive(Default)]
struct Hello;

impl HealthCheck for Hello {
    fn check(&mut self, request: CheckRequest) -> Result<CheckResult> {
        log::debug(&format!("rust check {} running", request.check_id));
        let output = format!(
            "hello from Rust: check {}, config {}",
            request.check_id, request.config
        );
        Ok(
            match request.config.get("status").and_then(|s| s.as_str()) {
                Some("critical") => CheckResult::critical(output),
                Some("warning") => CheckResult::warning(output),
                _ => CheckResult::passing(output),
            },
        )
    }
}

tribune_plugin_sdk::export_health_check!(Hello);
