//! With the `torch` feature, the tests and benches of this crate find libtorch's shared
//! libraries at run time through an rpath to `$LIBTORCH/lib` (torch-sys links them but leaves
//! finding them to the loader). The worker's build script does the same for its binary.
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Some(libtorch) = std::env::var_os("LIBTORCH") {
        let lib = std::path::Path::new(&libtorch).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
