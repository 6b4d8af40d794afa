// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Our QEMU: Debian's 10.0 source, restored for a Rust build, patched, with the vagx device.
//!
//! Debian's `+ds` repack strips the meson wheel and the meson packagefiles of the Rust crate
//! subprojects. We restore the wheel from PyPI, provide our own packagefiles
//! (`qemu/subprojects/packagefiles`) and pre-seed the crates from crates.io, checked against the
//! wraps' SHA-256 sums, because the download host the wraps name does not resolve here.
//!
//! The tree (`cache/qemu/src`) is extracted from Debian's `.dsc` (kept by `apt-get source` in
//! `cache/src`), again only when our patches or packagefiles change. Its path must not contain
//! regex metacharacters such as the `+` of `qemu-10.0.13+ds`: QEMU hands the source path to
//! bindgen's `--allowlist-file` as a regex, and a `+` there silently empties the bindings; the project's device sources are copied in on every build
//! (rsync keeps unchanged files untouched, so ninja rebuilds only what changed).

use std::{
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::{
    paths::{ensure_dir, remove_dir, sorted_files, Paths},
    process::{apply_patches, Job},
    setup,
    stamp::{Fingerprint, Stamp},
};

/// The meson QEMU 10.0 pins in `pythondeps.toml` (and looks for in `python/wheels`).
const MESON_WHEEL: &str = "meson==1.5.0";

/// Arguments of QEMU's `configure`.
const CONFIGURE_ARGS: &[&str] = &[
    "--target-list=x86_64-softmmu",
    "--enable-rust",
    "--without-default-features",
    "--disable-docs",
    "--disable-install-blobs",
    "--disable-werror",
];

/// Directories with the firmware blobs (`seabios`, `qemu-system-data`) `--disable-install-blobs`
/// leaves out; pass each with `-L`.
pub const BIOS_DIRS: &[&str] = &["/usr/share/seabios", "/usr/share/qemu"];

/// Brings QEMU's tree and build up to date and returns the `qemu-system-x86_64` binary.
pub fn build(paths: &Paths) -> Result<PathBuf> {
    // The `apt-get source` tree is only checked; the build uses its own extraction.
    let debian_src = setup::qemu_source_dir()?;
    let src = paths.qemu_src.clone();
    prepare_tree(paths, &debian_src, &src)?;
    copy_project_sources(paths, &src)?;

    let build = ensure_dir(&paths.qemu_build)?.to_path_buf();
    let env = build_env();
    let fp = Fingerprint::new()
        .text(&src.display().to_string())
        .text(&CONFIGURE_ARGS.join(" "));
    let stamp = Stamp::new(paths.cache.join("qemu/configure.stamp"));
    let log = paths.log("qemu-build")?;
    if !stamp.is_current(&fp) || !build.join("build.ninja").is_file() {
        eprintln!("qemu: configuring (log: {})", log.display());
        fs::remove_dir_all(&build).ok();
        ensure_dir(&build)?;
        let mut configure = Command::new(src.join("configure"));
        configure
            .current_dir(&build)
            .args(CONFIGURE_ARGS)
            .envs(env.clone());
        Job::new(configure, "QEMU configure", &log)
            .heartbeat()
            .run()?;
        stamp.write(&fp)?;
    }

    eprintln!("qemu: building qemu-system-x86_64 (log: {})", log.display());
    let mut ninja = Command::new("ninja");
    ninja
        .current_dir(&build)
        .arg("qemu-system-x86_64")
        .envs(env);
    Job::new(ninja, "QEMU build", &log)
        .echo(|l| l.contains("error") || l.contains("Linking target qemu-system"))
        .heartbeat()
        .run()?;
    let binary = build.join("qemu-system-x86_64");
    if !binary.is_file() {
        bail!("QEMU build finished without {}", binary.display());
    }
    Ok(binary)
}

/// `PATH` with ccache's compiler wrappers first (QEMU's configure takes `cc` from `PATH`).
fn build_env() -> Vec<(String, String)> {
    setup::tool_env()
        .into_iter()
        .map(|(k, v)| {
            if k == "PATH" {
                (k, format!("/usr/lib/ccache:{v}"))
            } else {
                (k, v)
            }
        })
        .collect()
}

/// Re-extracts the tree and applies patches, wheel, crates and packagefiles if any changed.
fn prepare_tree(paths: &Paths, debian_src: &Path, src: &Path) -> Result<()> {
    let qemu_dir = paths.root.join("qemu");
    let patches = sorted_files(&qemu_dir.join("patches"), "patch")?;
    let fp = Fingerprint::new()
        .text(&debian_src.display().to_string())
        .text(MESON_WHEEL)
        .paths(&patches)?
        .path(&qemu_dir.join("subprojects"))?;
    let stamp = Stamp::new(paths.cache.join("qemu/tree.stamp"));
    if stamp.is_current(&fp) {
        return Ok(());
    }
    let log = paths.log("qemu-prepare")?;
    eprintln!("qemu: preparing the source tree (log: {})", log.display());

    // Start from Debian's source as `apt-get source` unpacked it.
    let dsc = dsc_file(&paths.src)?;
    remove_dir(src)?;
    if let Some(parent) = src.parent() {
        ensure_dir(parent)?;
    }
    let mut extract = Command::new("dpkg-source");
    extract.current_dir(&paths.src).arg("-x").arg(&dsc).arg(src);
    Job::new(extract, "dpkg-source -x", &log).run()?;

    apply_patches(src, &patches, &log)?;

    let downloads = ensure_dir(&paths.cache.join("downloads"))?.to_path_buf();
    let wheels = ensure_dir(&src.join("python/wheels"))?.to_path_buf();
    if sorted_files(&downloads, "whl")?.is_empty() {
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
        ])
        .arg(&downloads)
        .arg(MESON_WHEEL);
        Job::new(pip, "downloading the meson wheel from PyPI", &log)
            .hint("is the network up?")
            .run()?;
    }
    for wheel in sorted_files(&downloads, "whl")? {
        fs::copy(&wheel, wheels.join(file_name(&wheel)?))?;
    }

    let packagefiles = qemu_dir.join("subprojects/packagefiles");
    let cache = ensure_dir(&src.join("subprojects/packagecache"))?.to_path_buf();
    for entry in fs::read_dir(&packagefiles)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let wrap = Wrap::read(&src.join(format!("subprojects/{name}.wrap")))?;
        let crate_file = fetch_crate(&wrap, &downloads, &log)?;
        fs::copy(&crate_file, cache.join(&wrap.source_filename))?;
    }
    rsync(&packagefiles, &src.join("subprojects/packagefiles"), &log)?;
    stamp.write(&fp)
}

/// Copies the device, the firmware model, the ABI and the qemu-api additions into the tree.
fn copy_project_sources(paths: &Paths, src: &Path) -> Result<()> {
    let log = paths.log("qemu-prepare")?;
    let root = &paths.root;
    let misc = src.join("rust/hw/misc");
    rsync(&root.join("qemu/hw"), &misc, &log)?;
    rsync(
        &root.join("qemu/vagx-fw/src"),
        &misc.join("vagx/vagx-fw/src"),
        &log,
    )?;
    rsync(
        &root.join("drivers/gpu/drm/vagx/abi"),
        &misc.join("vagx/abi"),
        &log,
    )?;
    let files = [
        ("qemu/qemu-api/pci.rs", "rust/qemu-api/src/pci.rs"),
        ("qemu/qemu-api/log.rs", "rust/qemu-api/src/log.rs"),
        ("qemu/trace/vagx-trace.c", "hw/misc/vagx-trace.c"),
        ("qemu/trace/vagx-trace.h", "include/hw/misc/vagx-trace.h"),
    ];
    for (from, to) in files {
        let (from, to) = (root.join(from), src.join(to));
        // Compare contents so an unchanged file keeps its timestamp.
        if fs::read(&from)? != fs::read(&to).unwrap_or_default() {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// Mirrors directory `from` into `to` (deleting what `from` lacks), keeping unchanged files.
///
/// Files are compared by content and copied ones get the current time, not the source's: a
/// source older than the last build (another checkout, a reverted edit) must still rebuild.
fn rsync(from: &Path, to: &Path, log: &Path) -> Result<()> {
    ensure_dir(to)?;
    let mut cmd = Command::new("rsync");
    cmd.args([
        "--recursive",
        "--links",
        "--perms",
        "--delete",
        "--checksum",
    ])
    .arg(format!("{}/", from.display()))
    .arg(format!("{}/", to.display()));
    Job::new(cmd, &format!("copying {}", from.display()), log).run()
}

/// The parts of a meson `.wrap` file that locate and check a crate.
#[derive(Debug, PartialEq, Eq)]
struct Wrap {
    /// Crate name, from the download URL.
    krate: String,
    version: String,
    source_filename: String,
    source_hash: String,
}

impl Wrap {
    fn read(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("no {key}"))
        };
        let url = get("source_url")?;
        // https://crates.io/api/v1/crates/<name>/<version>/download
        let parts: Vec<&str> = url
            .trim_end_matches("/download")
            .rsplit('/')
            .take(2)
            .collect();
        let [version, krate] = parts[..] else {
            bail!("unexpected source_url {url}");
        };
        Ok(Self {
            krate: krate.to_owned(),
            version: version.to_owned(),
            source_filename: get("source_filename")?,
            source_hash: get("source_hash")?,
        })
    }

    /// Where crates.io serves the `.crate` file itself.
    fn download_url(&self) -> String {
        format!(
            "https://static.crates.io/crates/{0}/{0}-{1}.crate",
            self.krate, self.version
        )
    }
}

/// Downloads a wrap's crate into `downloads` unless a copy with the right hash is there.
fn fetch_crate(wrap: &Wrap, downloads: &Path, log: &Path) -> Result<PathBuf> {
    let file = downloads.join(format!("{}-{}.crate", wrap.krate, wrap.version));
    if !file.is_file() || sha256_file(&file)? != wrap.source_hash {
        let mut curl = Command::new("curl");
        curl.args(["-fsSL", "--retry", "3", "-o"])
            .arg(&file)
            .arg(wrap.download_url());
        Job::new(curl, &format!("downloading crate {}", wrap.krate), log)
            .hint("is the network up?")
            .run()?;
    }
    let got = sha256_file(&file)?;
    if got != wrap.source_hash {
        fs::remove_file(&file).ok();
        bail!(
            "crate {} {} has SHA-256 {got}, but its wrap expects {}",
            wrap.krate,
            wrap.version,
            wrap.source_hash
        );
    }
    Ok(file)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut file = fs::File::open(path)?;
    let mut buf = [0u8; 65536];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn dsc_file(dir: &Path) -> Result<PathBuf> {
    sorted_files(dir, "dsc")?
        .into_iter()
        .rfind(|p| file_name(p).is_ok_and(|n| n.starts_with("qemu_")))
        .with_context(|| {
            format!(
                "no qemu_*.dsc in {}; run `cargo xtask setup`",
                dir.display()
            )
        })
}

fn file_name(path: &Path) -> Result<String> {
    Ok(path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_parses_crates_io_wraps() {
        let text = "[wrap-file]\ndirectory = syn-2.0.66\n\
            source_url = https://crates.io/api/v1/crates/syn/2.0.66/download\n\
            source_filename = syn-2.0.66.0.tar.gz\nsource_hash = abc123\n";
        let wrap = Wrap::parse(text).unwrap();
        assert_eq!(
            wrap,
            Wrap {
                krate: "syn".into(),
                version: "2.0.66".into(),
                source_filename: "syn-2.0.66.0.tar.gz".into(),
                source_hash: "abc123".into(),
            }
        );
        assert_eq!(
            wrap.download_url(),
            "https://static.crates.io/crates/syn/syn-2.0.66.crate"
        );
        assert!(Wrap::parse("source_url = x\n").is_err());
    }
}
