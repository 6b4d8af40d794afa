// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Generates the tool's UAPI types from `include/uapi/drm/vagx_drm.h` with bindgen, so that
//! the kernel header is the one definition.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../..");
    let header = root.join("include/uapi/drm/vagx_drm.h");
    let shim = manifest.join("uapi");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("vagx_drm.rs");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed={}", shim.join("drm.h").display());
    println!("cargo:rerun-if-env-changed=BINDGEN");

    // The bindgen that `cargo xtask setup` installs for the kernel build.
    let bindgen = env::var_os("BINDGEN")
        .map(PathBuf::from)
        .or_else(|| {
            let home = PathBuf::from(env::var_os("HOME")?);
            let p = home.join(".cargo/bin/bindgen");
            p.exists().then_some(p)
        })
        .unwrap_or_else(|| PathBuf::from("bindgen"));
    let status = Command::new(&bindgen)
        .arg(&header)
        .args(["--output"])
        .arg(&out)
        .args([
            "--allowlist-item",
            "(drm_vagx|DRM_VAGX|DRM_IOCTL_VAGX).*",
            "--with-derive-default",
            "--use-core",
            "--",
            "-I",
        ])
        .arg(&shim)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{} failed ({s}) on {}", bindgen.display(), header.display()),
        Err(e) => panic!(
            "cannot run {} ({e}); `cargo xtask setup` (or `make setup`) installs it",
            bindgen.display()
        ),
    }
}
