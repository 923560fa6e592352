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
        "-Wl,--icf=all",
    ] {
        println!("cargo:rustc-link-arg-bin=preload={arg}");
    }
    println!("cargo:rustc-link-arg-bin=preload=-Wl,-T,{manifest}/linker.ld");
    println!("cargo:rerun-if-changed=linker.ld");
}
