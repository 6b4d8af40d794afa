// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The guest kernel: unpack Linux 7.2, apply the patch set, overlay the project, configure, build.
//!
//! The tree in `cache/linux/src` is the pristine tarball plus `linux/patches/*.patch`, re-made
//! only when the kernel version or a patch changes; tar keeps the archive's mtimes, so a re-made
//! tree does not rebuild what did not change. The project's own files (`drivers/`, `rust/`,
//! `include/`) are symlinked into it, so an edit is seen by the next incremental `make`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::{
    paths::{ensure_dir, remove_dir, sorted_files, Paths},
    process::{apply_patches, Job},
    setup,
    stamp::{Fingerprint, Stamp},
};

/// The directories of the project that overlay the kernel tree.
const OVERLAY_ROOTS: &[&str] = &["drivers", "rust", "include"];

/// The config fragment merged on top of `tinyconfig`.
const CONFIG_FRAGMENT: &str = "linux/configs/vagx.config";

/// Merged after [`CONFIG_FRAGMENT`] for [`Flavour::Production`]: the debugging options off.
const PRODUCTION_FRAGMENT: &str = "linux/configs/production.config";

/// Which kernel: the one every test boots, or the one benches also measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Lockdep and atomic-sleep checks on: `run`, the tests, the benches.
    Test,
    /// The same tree without the debugging options, as people would run it; its own build
    /// directory, built only when a bench asks for it.
    Production,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// The build tree (`O=`).
    fn build_dir(self, paths: &Paths) -> PathBuf {
        match self {
            Self::Test => paths.linux_build.clone(),
            Self::Production => paths.cache.join("linux").join("build-production"),
        }
    }

    fn config_stamp(self, paths: &Paths) -> PathBuf {
        match self {
            Self::Test => paths.cache.join("linux/config.stamp"),
            Self::Production => paths.cache.join("linux/config-production.stamp"),
        }
    }

    fn fragments(self) -> &'static [&'static str] {
        match self {
            Self::Test => &[CONFIG_FRAGMENT],
            Self::Production => &[CONFIG_FRAGMENT, PRODUCTION_FRAGMENT],
        }
    }
}

/// What a kernel build produces.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The bootable image.
    pub bzimage: PathBuf,
    /// The vagx driver module.
    pub vagx_ko: PathBuf,
    /// The C KUnit suites built as modules, with their dependencies first, in load order.
    pub kunit_modules: Vec<PathBuf>,
    /// The Debian package version of the source.
    pub version: String,
    pub flavour: Flavour,
}

/// Brings the patched, overlaid source tree up to date; returns the kernel's version.
pub fn prepare(paths: &Paths) -> Result<String> {
    let (tarball, version) = setup::kernel_tarball()?;
    prepare_tree(paths, &tarball, &version)?;
    overlay(paths)?;
    Ok(version)
}

/// Brings the kernel tree and the test kernel's build up to date and returns the artifacts.
pub fn build(paths: &Paths) -> Result<Kernel> {
    build_flavour(paths, Flavour::Test)
}

/// [`build`] for `flavour`.
pub fn build_flavour(paths: &Paths, flavour: Flavour) -> Result<Kernel> {
    let version = prepare(paths)?;
    configure(paths, &version, flavour)?;

    let log = paths.log(match flavour {
        Flavour::Test => "kernel-build",
        Flavour::Production => "kernel-build-production",
    })?;
    eprintln!(
        "kernel: building the {} kernel's bzImage and modules (log: {})",
        flavour.name(),
        log.display()
    );
    let mut make = make_cmd(paths, &flavour.build_dir(paths));
    make.arg(format!("-j{}", jobs()))
        .args(["bzImage", "modules"]);
    Job::new(make, "kernel build", &log)
        .echo(|line| {
            line.contains("error:")
                || line.contains("warning:")
                || line.starts_with("  LD [M]")
                || line.starts_with("Kernel: ")
        })
        .heartbeat()
        .run()?;

    let build = &flavour.build_dir(paths);
    let kernel = Kernel {
        bzimage: build.join("arch/x86/boot/bzImage"),
        vagx_ko: build.join("drivers/gpu/drm/vagx/vagx.ko"),
        kunit_modules: [
            "drivers/dma-buf/dmabuf_kunit.ko",
            "drivers/gpu/drm/scheduler/gpu-sched.ko",
            "drivers/gpu/drm/scheduler/tests/drm-sched-tests.ko",
            // Leaks on purpose: the check that kmemleak reports (tests/guest/init).
            "samples/kmemleak/kmemleak-test.ko",
        ]
        .iter()
        .map(|m| build.join(m))
        .filter(|m| m.is_file())
        .collect(),
        version,
        flavour,
    };
    for artifact in [&kernel.bzimage, &kernel.vagx_ko] {
        if !artifact.is_file() {
            bail!("kernel build finished without {}", artifact.display());
        }
    }
    Ok(kernel)
}

/// The `make` invocation every kernel step shares: out-of-tree build, GCC through ccache.
fn make_cmd(paths: &Paths, build_dir: &Path) -> Command {
    let mut cmd = Command::new("make");
    cmd.current_dir(&paths.linux_src)
        .arg(format!("O={}", build_dir.display()))
        .arg("ARCH=x86_64")
        .arg("CC=ccache gcc")
        .envs(setup::tool_env());
    cmd
}

pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Unpacks the tarball and applies the patch set, unless the tree already matches them.
fn prepare_tree(paths: &Paths, tarball: &Path, version: &str) -> Result<()> {
    let patches = sorted_files(&paths.root.join("linux/patches"), "patch")?;
    let fp = Fingerprint::new().text(version).paths(&patches)?;
    let stamp = Stamp::new(paths.cache.join("linux/tree.stamp"));
    if stamp.is_current(&fp) && paths.linux_src.join("Makefile").is_file() {
        return Ok(());
    }

    eprintln!(
        "kernel: unpacking Linux {version} and applying {} patch(es)",
        patches.len()
    );
    let linux = ensure_dir(&paths.cache.join("linux"))?.to_path_buf();
    let unpack = linux.join("unpack");
    remove_dir(&unpack)?;
    ensure_dir(&unpack)?;
    let log = paths.log("kernel-unpack")?;
    let mut tar = Command::new("tar");
    tar.arg("-xf").arg(tarball).arg("-C").arg(&unpack);
    Job::new(tar, "unpacking the kernel source", &log).run()?;
    let top = only_subdir(&unpack)?;
    apply_patches(&top, &patches, &log)?;
    remove_dir(&paths.linux_src)?;
    fs::rename(&top, &paths.linux_src)
        .with_context(|| format!("moving the tree to {}", paths.linux_src.display()))?;
    remove_dir(&unpack)?;
    stamp.write(&fp)
}

/// Symlinks the project's overlay files into the tree and removes stale links.
///
/// A project directory that the kernel does not have is linked whole; inside directories the
/// kernel has, files are linked one by one. Replacing a kernel file is refused: edits to kernel
/// files belong in the patch set.
fn overlay(paths: &Paths) -> Result<()> {
    let list = paths.cache.join("linux/overlay.list");
    let old: Vec<PathBuf> = fs::read_to_string(&list)
        .unwrap_or_default()
        .lines()
        .map(PathBuf::from)
        .collect();
    let mut links = Vec::new();
    for root in OVERLAY_ROOTS {
        let dir = paths.root.join(root);
        if dir.is_dir() {
            link_tree(&dir, &paths.linux_src.join(root), &mut links)?;
        }
    }
    for stale in old.iter().filter(|p| !links.contains(p)) {
        if fs::symlink_metadata(stale).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(stale)?;
        }
    }
    let text: String = links.iter().map(|p| format!("{}\n", p.display())).collect();
    fs::write(&list, text)?;
    Ok(())
}

fn link_tree(src: &Path, dst: &Path, links: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&to);
        match meta {
            Ok(m) if m.file_type().is_symlink() => {
                if fs::read_link(&to)? != from {
                    fs::remove_file(&to)?;
                    std::os::unix::fs::symlink(&from, &to)?;
                }
                links.push(to);
            }
            Ok(m) if m.is_dir() && from.is_dir() => link_tree(&from, &to, links)?,
            Ok(_) => bail!(
                "{} would replace the kernel's {}; change kernel files with a patch in linux/patches",
                from.display(),
                to.display()
            ),
            Err(_) => {
                ensure_dir(dst)?;
                std::os::unix::fs::symlink(&from, &to)
                    .with_context(|| format!("linking {}", to.display()))?;
                links.push(to);
            }
        }
    }
    Ok(())
}

/// Writes `.config` from `tinyconfig` plus the flavour's fragments when any changed, and
/// checks that every symbol they ask for survived `olddefconfig` (a later fragment's word on a
/// symbol is the one that counts).
fn configure(paths: &Paths, version: &str, flavour: Flavour) -> Result<()> {
    let fragments: Vec<PathBuf> = flavour
        .fragments()
        .iter()
        .map(|f| paths.root.join(f))
        .collect();
    let mut fp = Fingerprint::new().text(version);
    for f in &fragments {
        fp = fp.path(f)?;
    }
    let stamp = Stamp::new(flavour.config_stamp(paths));
    let build_dir = flavour.build_dir(paths);
    let config = build_dir.join(".config");
    if stamp.is_current(&fp) && config.is_file() {
        return Ok(());
    }
    eprintln!(
        "kernel: configuring the {} kernel from tinyconfig + {}",
        flavour.name(),
        flavour.fragments().join(" + ")
    );
    ensure_dir(&build_dir)?;
    let log = paths.log(match flavour {
        Flavour::Test => "kernel-config",
        Flavour::Production => "kernel-config-production",
    })?;
    let mut tiny = make_cmd(paths, &build_dir);
    tiny.arg("tinyconfig");
    Job::new(tiny, "make tinyconfig", &log).run()?;
    let mut merge = Command::new(paths.linux_src.join("scripts/kconfig/merge_config.sh"));
    merge
        .current_dir(&paths.linux_src)
        .args(["-m", "-O"])
        .arg(&build_dir)
        .arg(&config)
        .args(&fragments);
    Job::new(merge, "merging the config fragments", &log).run()?;
    let mut old = make_cmd(paths, &build_dir);
    old.arg("olddefconfig");
    Job::new(old, "make olddefconfig", &log).run()?;

    let have = fs::read_to_string(&config)?;
    let mut want = String::new();
    for f in &fragments {
        want += &fs::read_to_string(f)?;
        want.push('\n');
    }
    let missing = missing_symbols(&want, &have);
    if !missing.is_empty() {
        bail!(
            "the kernel config lost {} (unmet dependencies?); see {}",
            missing.join(", "),
            log.display()
        );
    }
    stamp.write(&fp)
}

/// The `CONFIG_X=value` lines of `fragment` that `config` does not contain verbatim.
/// A symbol set twice (a later fragment overriding an earlier one) counts with its last value.
fn missing_symbols(fragment: &str, config: &str) -> Vec<String> {
    let lines: Vec<&str> = fragment
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("CONFIG_"))
        .collect();
    let symbol = |l: &str| l.split('=').next().unwrap_or(l).to_owned();
    lines
        .iter()
        .enumerate()
        .filter(|(i, l)| {
            !lines[i + 1..]
                .iter()
                .any(|later| symbol(later) == symbol(l))
        })
        .map(|(_, l)| *l)
        .filter(|l| {
            // "=n" is written as "# CONFIG_X is not set", or not at all when the symbol's
            // dependencies are off (the production kernel's kmemleak options): off unless set.
            match l.strip_suffix("=n") {
                Some(sym) => !config.lines().any(|c| c.starts_with(&format!("{sym}="))),
                None => config.lines().any(|c| c == *l),
            }
            .then_some(())
            .is_none()
        })
        .map(str::to_owned)
        .collect()
}

fn only_subdir(dir: &Path) -> Result<PathBuf> {
    let mut dirs = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path()));
    match (dirs.next(), dirs.next()) {
        (Some(d), None) if d.is_dir() => Ok(d),
        _ => bail!("expected one directory in {}", dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_symbols_finds_lost_and_unset_options() {
        let fragment = "# comment\nCONFIG_A=y\nCONFIG_B=m\nCONFIG_C=n\nCONFIG_D=\"x\"\n";
        let config = "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=\"x\"\n";
        assert_eq!(missing_symbols(fragment, config), ["CONFIG_B=m"]);
        assert_eq!(
            missing_symbols("CONFIG_C=n\n", "CONFIG_C=y\n"),
            ["CONFIG_C=n"]
        );
        // A symbol whose dependencies are off is not in the config at all: off.
        assert!(missing_symbols("CONFIG_E=n\n", "CONFIG_A=y\n").is_empty());
        // A later fragment's value wins: the production kernel turns lockdep off.
        let both = "CONFIG_PROVE_LOCKING=y\nCONFIG_A=y\nCONFIG_PROVE_LOCKING=n\n";
        assert!(
            missing_symbols(both, "CONFIG_A=y\n# CONFIG_PROVE_LOCKING is not set\n").is_empty()
        );
        assert_eq!(
            missing_symbols(both, "CONFIG_A=y\nCONFIG_PROVE_LOCKING=y\n"),
            ["CONFIG_PROVE_LOCKING=n"]
        );
    }

    #[test]
    fn link_tree_links_new_dirs_whole_and_refuses_to_replace_files() -> Result<()> {
        let base = std::env::temp_dir().join(format!("vagx-overlay-{}", std::process::id()));
        let (proj, tree) = (base.join("proj"), base.join("tree"));
        fs::create_dir_all(proj.join("drivers/new"))?;
        fs::create_dir_all(tree.join("drivers"))?;
        fs::write(proj.join("drivers/new/a.rs"), "a")?;
        let mut links = Vec::new();
        link_tree(&proj, &tree, &mut links)?;
        assert_eq!(links, [tree.join("drivers/new")]);
        assert_eq!(fs::read_to_string(tree.join("drivers/new/a.rs"))?, "a");

        fs::write(proj.join("drivers/Makefile"), "x")?;
        fs::write(tree.join("drivers/Makefile"), "kernel")?;
        assert!(link_tree(&proj, &tree, &mut Vec::new()).is_err());
        fs::remove_dir_all(&base)?;
        Ok(())
    }
}
