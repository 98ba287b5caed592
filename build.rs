//! Builds native/memcopy.c on x86_64: goaround_memcpy and goaround_memmove, and with musl
//! also memcpy and memmove themselves, in place of musl's (see the file for why). Other
//! architectures build nothing here and keep their libc's copies.

fn main() {
    println!("cargo:rerun-if-changed=native/memcopy.c");
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let target_arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if target_arch != "x86_64" {
        return;
    }
    let mut build = cc::Build::new();
    build
        .file("native/memcopy.c")
        .opt_level(2)
        .flag("-ffreestanding")
        .flag("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns");
    if target_env == "musl" {
        build.define("GOAROUND_REPLACE_LIBC", None);
    }
    build.compile("goaround_memcopy");
}
