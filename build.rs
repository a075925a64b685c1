//! Compiles the wire contract in `proto/` with protox (a pure-Rust protobuf compiler), so a
//! fresh machine needs no system `protoc`, and hands the descriptors to tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["raft.proto", "chat.proto", "admin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    // The descriptor set also serves gRPC reflection, so stock tools can call a node.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        // Command payloads and snapshot chunks are shared, not copied.
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
