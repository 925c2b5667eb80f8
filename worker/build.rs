//! With the `torch` feature the worker links libtorch (through the pipeline's tch engine):
//! its binary and tests find the shared libraries through an rpath to `$LIBTORCH/lib`, and a
//! CUDA build keeps `libtorch_cuda` linked although no symbol of it is referenced (the linker's
//! `--as-needed` would drop it, and libtorch would then see no CUDA device).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if std::env::var_os("CARGO_FEATURE_CUDA").is_some() && lib.join("libtorch_cuda.so").exists()
        {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        }
    }
}
