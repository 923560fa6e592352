//! Link the `preload` binary (and only it: other binaries are ordinary std programs) as a self-contained static-pie with our own `_start`.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static-pie",
        "-Wl,-z,norelro",
        "-Wl,--no-eh-frame-hdr",
        "-Wl,--fatal-warnings",
        "-Wl,--build-id=none",
        "-Wl,-e,_start",
    ] {
        println!("cargo:rustc-link-arg-bin=preload={arg}");
    }
    // `--cfg preload_cpu_detect` (see .cargo/config.toml): a layout with initialised writable
    // data, for the cipher crates' run-time CPU detection.
    let script = match std::env::var_os("CARGO_CFG_PRELOAD_CPU_DETECT") {
        Some(_) => "linker-data.ld",
        None => "linker.ld",
    };
    println!("cargo:rustc-link-arg-bin=preload=-Wl,-T,{manifest}/{script}");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=linker-data.ld");
    println!("cargo::rustc-check-cfg=cfg(preload_cpu_detect)");
}
