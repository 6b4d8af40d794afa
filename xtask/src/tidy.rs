// SPDX-License-Identifier: GPL-2.0 OR MIT

//! House-style checks over the project's Rust sources, run by `cargo test`.
//!
//! Each failure names the file and line, the rule, and how to fix it.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::paths::project_root;

/// Directories whose `.rs` files are checked.
const CHECKED: &[&str] = &["drivers", "rust", "qemu", "tools", "xtask"];

/// Where `unsafe` may appear: the kernel abstractions, the firmware-ABI layer (`Pod`), the QEMU
/// glue and the tool's syscall layer.
const UNSAFE_ALLOWED: &[&str] = &[
    "rust/",
    "drivers/gpu/drm/vagx/abi/",
    // The driver's side of the firmware ABI: memory shared with the firmware.
    "drivers/gpu/drm/vagx/fwmem.rs",
    "qemu/qemu-api/",
    "qemu/hw/",
    // The tool's system-call layers: module loading, the DRM ioctls and mappings, and the
    // dma-buf ioctls (udmabuf, sync), sw_sync's CPU-signalled fences, and the thread's
    // capabilities.
    "tools/vagx/src/caps.rs",
    "tools/vagx/src/module.rs",
    "tools/vagx/src/gpu.rs",
    "tools/vagx/src/dmabuf.rs",
    "tools/vagx/src/sw_sync.rs",
];

fn rust_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = project_root();
    let mut files = Vec::new();
    for dir in CHECKED {
        walk(&root.join(dir), &mut files);
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(project_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_file_has_spdx_and_module_docs() {
    let mut bad = Vec::new();
    for file in rust_files() {
        let text = fs::read_to_string(&file).unwrap();
        let mut lines = text.lines().filter(|l| !l.starts_with("// Copyright"));
        let spdx = lines.next().unwrap_or_default();
        let doc = lines.next().unwrap_or_default();
        if !spdx.starts_with("// SPDX-License-Identifier: ") {
            bad.push(format!(
                "{}: first line must be an SPDX identifier",
                relative(&file)
            ));
        }
        if !(doc.is_empty() || doc.starts_with("//!")) || !text.contains("//! ") {
            bad.push(format!(
                "{}: needs `//!` module docs after the SPDX line",
                relative(&file)
            ));
        }
    }
    assert!(bad.is_empty(), "tidy:\n{}", bad.join("\n"));
}

#[test]
fn unsafe_blocks_have_safety_comments_and_stay_in_their_layers() {
    let mut bad = Vec::new();
    for file in rust_files() {
        let rel = relative(&file);
        // This file names the patterns it looks for.
        if rel == "xtask/src/tidy.rs" {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let is_block = code.contains("unsafe {");
            let is_impl = code.trim_start().starts_with("unsafe impl");
            if !(is_block || is_impl) {
                continue;
            }
            if !UNSAFE_ALLOWED.iter().any(|p| rel.starts_with(p)) {
                bad.push(format!(
                    "{rel}:{}: `unsafe` outside the abstraction layers; move it behind a safe API",
                    i + 1
                ));
            }
            // The SAFETY comment is on one of the lines just above (possibly a multi-line one).
            let above = lines[..i].iter().rev().take_while(|l| {
                let t = l.trim_start();
                t.starts_with("//") || t.starts_with("#[") || t.is_empty()
            });
            let has_safety =
                code.contains("SAFETY") || above.clone().any(|l| l.contains("// SAFETY:"));
            // An `unsafe` inside an expression continuing a statement may cite the comment above
            // the statement; look back a few lines for it.
            let nearby = lines[i.saturating_sub(6)..i]
                .iter()
                .any(|l| l.contains("// SAFETY:"));
            if !(has_safety || nearby) {
                bad.push(format!(
                    "{rel}:{}: `unsafe` without a `// SAFETY:` comment above it",
                    i + 1
                ));
            }
        }
    }
    assert!(bad.is_empty(), "tidy:\n{}", bad.join("\n"));
}

#[test]
fn no_panicking_shortcuts_in_kernel_or_device_code() {
    let mut bad = Vec::new();
    for file in rust_files() {
        let rel = relative(&file);
        if !(rel.starts_with("drivers/") || rel.starts_with("qemu/hw/") || rel.starts_with("rust/"))
        {
            continue;
        }
        // Tests may assert and unwrap: a `tests.rs` is a `#[cfg(test)] mod tests;` of its
        // directory's module (host tests of kernel code), otherwise `mod tests {` ends the code.
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let code = text.split("mod tests {").next().unwrap_or_default();
        for (i, line) in code.lines().enumerate() {
            for word in [
                ".unwrap()",
                ".expect(",
                "panic!(",
                "todo!(",
                "unimplemented!(",
            ] {
                if line.contains(word) && !line.trim_start().starts_with("//") {
                    bad.push(format!(
                        "{rel}:{}: `{word}` in kernel/device code; return an error",
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "tidy:\n{}", bad.join("\n"));
}
