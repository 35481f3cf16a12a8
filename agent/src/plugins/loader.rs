//! From a file to something callable: read, hash, read the stamps (manifest, SDK),
//! compile (through the engine's disk cache), check the contract version and every
//! import against what a plugin of its kind may use, and link once into an `InstancePre`.
//! Nothing here runs plugin code.

use super::bindings;
use super::manifest::{read_stamps, Kind, Manifest};
use super::runtime::CallState;
use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::Engine;

/// The contract this agent speaks: `tribune:plugin@0.1.x`.
pub const WIT_PACKAGE: &str = "tribune:plugin";
pub const WIT_VERSION: &str = "0.1.0";
/// Largest component file accepted.
const MAX_FILE: u64 = 256 << 20;

/// What the static analysis of a component found (for `inspect` and the API).
#[derive(Clone, Debug)]
pub struct Analysis {
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub size: u64,
    pub manifest: Result<Manifest, String>,
    pub sdk: Option<String>,
    /// The kind its exports make it, and the contract version they carry.
    pub kind: Option<Kind>,
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Everything that keeps it from loading, one sentence each.
    pub problems: Vec<String>,
    pub compile_time: Duration,
}

/// A compiled, linked, checked component.
pub struct Loaded {
    pub analysis: Analysis,
    pub manifest: Manifest,
    pub kind: Kind,
    pub pre: Pre,
}

/// The typed instance-pre of each world.
#[derive(Clone)]
pub enum Pre {
    Check(bindings::check::HealthCheckPre<CallState>),
    Rewrite(bindings::rewrite::TagRewriterPre<CallState>),
    Hook(bindings::hook::EventHookPre<CallState>),
}

/// Reads the file; the error names it.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "cannot read {}: {}",
            path.display(),
            crate::checks::io_error_text(&e)
        )
    })?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{} is {} MiB, more than the {} MiB a plugin may be",
            path.display(),
            meta.len() >> 20,
            MAX_FILE >> 20
        ));
    }
    std::fs::read(path).map_err(|e| {
        format!(
            "cannot read {}: {}",
            path.display(),
            crate::checks::io_error_text(&e)
        )
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles and analyses `wasm`; `Err` only when it is not a component at all.
pub fn analyze(engine: &Engine, wasm: &[u8]) -> Result<(Component, Analysis), String> {
    let sha256 = sha256_hex(wasm);
    let stamps = read_stamps(wasm);
    if !wasmtime::wasmparser::Parser::is_component(wasm) {
        if wasmtime::wasmparser::Parser::is_core_wasm(wasm) {
            return Err("this is a core WebAssembly module, not a component; build for \
                        wasm32-wasip2 or wrap it with `wasm-tools component new` (see sdk/README.md)"
                .into());
        }
        return Err("not a WebAssembly component (bad magic number)".into());
    }
    let started = Instant::now();
    let component = Component::new(engine, wasm).map_err(|e| format!("does not compile: {e:#}"))?;
    let compile_time = started.elapsed();
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();

    let manifest = match &stamps.manifest {
        Some(text) => Manifest::parse(text),
        None => Err(
            "no manifest: the component has no `tribune:manifest` section (the Rust \
                     SDK's export macro embeds plugin.toml; for other languages run \
                     `tribune plugin pack`)"
                .into(),
        ),
    };

    let mut problems = Vec::new();
    // The kind, from the exports.
    let mut kinds = Vec::new();
    let mut wit_version = None;
    for name in &exports {
        let Some((iface, version)) = tribune_name(name) else {
            continue;
        };
        let kind = [Kind::HealthCheck, Kind::TagRewriter, Kind::EventHook]
            .into_iter()
            .find(|k| k.export_interface() == iface);
        if let Some(kind) = kind {
            kinds.push(kind);
            wit_version = Some(version.to_string());
            if let Err(e) = check_version(version) {
                problems.push(format!("exports {name}: {e}"));
            }
        }
    }
    let kind = match kinds.as_slice() {
        [] => {
            problems.push(format!(
                "exports none of {WIT_PACKAGE}/check, /rewrite or /hook, so it is no Tribune plugin \
                 (it exports: {})",
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ));
            None
        }
        [k] => Some(*k),
        many => {
            problems.push(format!(
                "exports more than one plugin interface ({}); build one component per kind",
                many.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            None
        }
    };
    if let (Some(kind), Ok(m)) = (kind, &manifest) {
        if let Some(declared) = m.kind {
            if declared != kind {
                problems.push(format!(
                    "its manifest says kind = \"{declared}\" but it exports the {kind} interface"
                ));
            }
        }
    }
    if let Some(kind) = kind {
        // One sentence per refused package (`wasi:http` is several interfaces).
        let mut refused: Vec<(String, Vec<&str>)> = Vec::new();
        for name in &imports {
            if let Err(e) = import_allowed(kind, name) {
                match refused.iter_mut().find(|(msg, _)| *msg == e) {
                    Some((_, names)) => names.push(name),
                    None => refused.push((e, vec![name])),
                }
            }
        }
        for (msg, names) in refused {
            problems.push(msg.replace("{}", &names.join(", ")));
        }
    }
    Ok((
        component,
        Analysis {
            sha256,
            size: wasm.len() as u64,
            manifest,
            sdk: stamps.sdk,
            kind,
            wit_version,
            imports,
            exports,
            problems,
            compile_time,
        },
    ))
}

/// Links a checked component; `Err` carries every reason it cannot load.
pub fn link(
    linker: &Linker<CallState>,
    component: &Component,
    analysis: Analysis,
) -> Result<Loaded, Box<(Analysis, String)>> {
    let manifest = match &analysis.manifest {
        Ok(m) => m.clone(),
        Err(e) => {
            let mut all = vec![e.clone()];
            all.extend(analysis.problems.iter().cloned());
            let msg = all.join("; ");
            return Err(Box::new((analysis, msg)));
        }
    };
    if !analysis.problems.is_empty() {
        let msg = analysis.problems.join("; ");
        return Err(Box::new((analysis, msg)));
    }
    let Some(kind) = analysis.kind else {
        return Err(Box::new((analysis, "no plugin kind".into())));
    };
    let pre: InstancePre<CallState> = match linker.instantiate_pre(component) {
        Ok(p) => p,
        Err(e) => return Err(Box::new((analysis, format!("cannot be linked: {e:#}")))),
    };
    let typed = match kind {
        Kind::HealthCheck => bindings::check::HealthCheckPre::new(pre).map(Pre::Check),
        Kind::TagRewriter => bindings::rewrite::TagRewriterPre::new(pre).map(Pre::Rewrite),
        Kind::EventHook => bindings::hook::EventHookPre::new(pre).map(Pre::Hook),
    };
    match typed {
        Ok(pre) => Ok(Loaded {
            analysis,
            manifest,
            kind,
            pre,
        }),
        Err(e) => Err(Box::new((
            analysis,
            format!("its {kind} export does not match the contract: {e:#}"),
        ))),
    }
}

/// `tribune:plugin/check@0.1.0` → (`check`, `0.1.0`).
fn tribune_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(WIT_PACKAGE)?.strip_prefix('/')?;
    let (iface, version) = rest.split_once('@')?;
    Some((iface, version))
}

/// The contract versions this agent accepts: 0.1.x (0.x releases are compatible within
/// a minor version).
fn check_version(version: &str) -> Result<(), String> {
    let mut parts = version.split('.');
    let (major, minor) = (parts.next(), parts.next());
    if major == Some("0") && minor == Some("1") {
        return Ok(());
    }
    Err(format!(
        "built against {WIT_PACKAGE}@{version}, but this agent speaks {WIT_PACKAGE}@{WIT_VERSION} \
         (0.1.x); rebuild the plugin with the SDK for 0.1 or upgrade the agent"
    ))
}

/// The WASI packages linked for every plugin. Their state is empty: no preopened
/// directories, no environment variables or arguments, stdin empty, stdout discarded.
/// `wasi:sockets` is linked but inert: every bind, connect and name lookup is refused
/// (language runtimes such as CPython and StarlingMonkey import it whether or not the
/// plugin uses it); network access goes through the `http` and `tcp` capabilities.
const WASI_PROVIDED: &[&str] = &["cli", "io", "clocks", "random", "filesystem", "sockets"];

/// Whether a plugin of `kind` may import `name`; the error is the sentence an operator
/// reads.
fn import_allowed(kind: Kind, name: &str) -> Result<(), String> {
    if let Some((iface, version)) = tribune_name(name) {
        check_version(version).map_err(|e| format!("imports {name}: {e}"))?;
        let allowed: &[&str] = match kind {
            Kind::TagRewriter => &["types", "log", "clock", "config", "kv"],
            Kind::HealthCheck | Kind::EventHook => {
                &["types", "log", "clock", "config", "http", "tcp", "kv"]
            }
        };
        if allowed.contains(&iface) {
            return Ok(());
        }
        if ["http", "tcp"].contains(&iface) {
            return Err(format!(
                "imports {name}, but a {kind} has no network access (it runs on the \
                 registration path); only health checks and event hooks may use http and tcp"
            ));
        }
        return Err(format!(
            "imports {name}, which {WIT_PACKAGE}@{WIT_VERSION} does not define"
        ));
    }
    if let Some(rest) = name.strip_prefix("wasi:") {
        let package = rest.split('/').next().unwrap_or(rest);
        if WASI_PROVIDED.contains(&package) {
            return Ok(());
        }
        return Err(match package {
            "http" => format!(
                "imports {{}}: wasi:http is not available to plugins (forbidden import); \
                 declare the `http` capability and use {WIT_PACKAGE}/http instead"
            ),
            _ => format!(
                "imports {name}, which Tribune does not provide to plugins (forbidden import)"
            ),
        });
    }
    Err(format!(
        "imports {name}, which Tribune does not provide to plugins (forbidden import)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked_by_minor() {
        assert!(check_version("0.1.0").is_ok());
        assert!(check_version("0.1.7").is_ok());
        let e = check_version("0.2.0").unwrap_err();
        assert!(
            e.contains("tribune:plugin@0.2.0") && e.contains("tribune:plugin@0.1.0"),
            "{e}"
        );
        assert!(check_version("1.0.0").is_err());
    }

    #[test]
    fn imports_follow_the_kind() {
        assert!(import_allowed(Kind::HealthCheck, "tribune:plugin/http@0.1.0").is_ok());
        assert!(import_allowed(Kind::HealthCheck, "wasi:cli/environment@0.2.6").is_ok());
        let e = import_allowed(Kind::TagRewriter, "tribune:plugin/http@0.1.0").unwrap_err();
        assert!(e.contains("no network access"), "{e}");
        // Linked but inert (every operation refused at run time).
        assert!(import_allowed(Kind::HealthCheck, "wasi:sockets/tcp@0.2.0").is_ok());
        let e = import_allowed(Kind::HealthCheck, "wasi:http/outgoing-handler@0.2.0").unwrap_err();
        assert!(e.contains("wasi:http is not available"), "{e}");
        let e = import_allowed(Kind::HealthCheck, "evil:host/exec").unwrap_err();
        assert!(e.contains("forbidden import"), "{e}");
        let e = import_allowed(Kind::EventHook, "tribune:plugin/log@0.3.0").unwrap_err();
        assert!(e.contains("0.3.0"), "{e}");
    }
}
