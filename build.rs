//! Compiles the public API in `proto/quarry/v1` with protox (a pure-Rust
//! protobuf compiler, so a fresh machine needs no `protoc`) and hands the
//! descriptors to tonic's code generator. The encoded descriptor set is also
//! written to OUT_DIR for the reflection service, and pbjson generates the
//! proto3 JSON mapping (serde impls) of every message for the HTTP API.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos: Vec<PathBuf> = std::fs::read_dir("proto/quarry/v1")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile(&protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = fds.encode_to_vec();
    std::fs::write(out_dir.join("quarry_descriptor.bin"), &descriptors)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;

    // Writes OUT_DIR/quarry.v1.serde.rs. Unknown fields are refused (as
    // a typo must not pass silently); fields keep their JSON defaults.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".quarry.v1"])?;
    Ok(())
}
