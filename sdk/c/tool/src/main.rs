//! `tribune-c-tool`: what a C plugin build needs besides clang and wasi-libc.
//!
//! ```text
//! tribune-c-tool bindgen   WIT_DIR WORLD OUT_DIR            # C bindings + component-type object
//! tribune-c-tool component CORE.wasm OUT.wasm [MANIFEST SDK]  # preview1 module -> component
//! tribune-c-tool pack      IN.wasm OUT.wasm MANIFEST SDK      # embed plugin.toml + SDK stamp
//! ```
//!
//! `component` wraps a `wasm32-wasi` (preview1) reactor module with the WASI preview1
//! adapter that matches the agent's wasmtime, so the result imports WASI 0.2 like any
//! other component. `pack` appends the `tribune:manifest` and `tribune:sdk` custom
//! sections the agent reads (the same bytes `tribune plugin pack` writes).

use anyhow::{bail, Context, Result};
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["bindgen", wit, world, out] => bindgen(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out), None),
        ["component", core, out, manifest, sdk] => component(
            Path::new(core),
            Path::new(out),
            Some((Path::new(manifest), sdk)),
        ),
        ["pack", input, out, manifest, sdk] => {
            let wasm = std::fs::read(input).with_context(|| format!("read {input}"))?;
            write_packed(wasm, Path::new(out), Path::new(manifest), sdk)
        }
        _ => bail!(
            "usage: tribune-c-tool bindgen WIT_DIR WORLD OUT_DIR\n       \
             tribune-c-tool component CORE.wasm OUT.wasm [MANIFEST SDK]\n       \
             tribune-c-tool pack IN.wasm OUT.wasm MANIFEST SDK"
        ),
    }
}

fn bindgen(wit: &Path, world: &str, out: &Path) -> Result<()> {
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        .push_dir(wit)
        .with_context(|| format!("parse WIT in {}", wit.display()))?;
    let world = resolve.select_world(&[pkg], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, bytes) in files.iter() {
        std::fs::write(out.join(name), bytes).with_context(|| format!("write {name}"))?;
    }
    Ok(())
}

fn component(core: &Path, out: &Path, stamps: Option<(&Path, &str)>) -> Result<()> {
    let module = std::fs::read(core).with_context(|| format!("read {}", core.display()))?;
    let wasm = wit_component::ComponentEncoder::default()
        .module(&module)
        .context("the module carries no component type (link the *_component_type.o file)")?
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .context("encode the component")?;
    match stamps {
        Some((manifest, sdk)) => write_packed(wasm, out, manifest, sdk),
        None => Ok(std::fs::write(out, wasm)?),
    }
}

fn write_packed(mut wasm: Vec<u8>, out: &Path, manifest: &Path, sdk: &str) -> Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("read {}", manifest.display()))?;
    for (name, data) in [
        ("tribune:manifest", text.as_bytes()),
        ("tribune:sdk", sdk.as_bytes()),
    ] {
        let mut payload = Vec::new();
        leb128(&mut payload, name.len() as u64);
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(data);
        wasm.push(0);
        leb128(&mut wasm, payload.len() as u64);
        wasm.extend_from_slice(&payload);
    }
    std::fs::write(out, wasm).with_context(|| format!("write {}", out.display()))
}

fn leb128(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
