//! Compiles the wire contract in `proto/` with protox (a pure-Rust protobuf compiler), so a
//! fresh machine needs no system `protoc`, and hands the descriptors to tonic-prost-build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["raft.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed=proto/{proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
