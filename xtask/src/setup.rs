// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask setup`: installs everything the project needs, idempotently.
//!
//! It writes the apt sources and the sid pin, installs the Debian packages
//! (seabios and qemu-system-data from bookworm-backports, `linux-source-7.2`
//! from sid), adds `rust-src`, installs `bindgen-cli` when needed and fetches
//! the QEMU 10.0 source from trixie into the cache. It never prompts.
//! `setup --check` only reports. Other subcommands call [`ensure`] first.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::paths::{self, Paths};
use crate::process::Job;
use crate::stamp::{Fingerprint, Stamp};

/// Bump this when setup learns a new step, so that [`ensure`] reruns it once.
const SETUP_VERSION: &str = "1";

/// The apt sources for backports, sid (pinned) and trixie's source packages.
const SOURCES_PATH: &str = "/etc/apt/sources.list.d/vagx.sources";
const SOURCES: &str = "\
# Added by vagx setup (cargo xtask setup).
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// The pin that keeps sid out of every install that does not name a sid package.
const PIN_PATH: &str = "/etc/apt/preferences.d/vagx-sid";
const PIN: &str = "\
# Added by vagx setup: take nothing from sid unless asked for by name.
Package: *
Pin: release n=sid
Pin-Priority: 1
";

/// The apt list files that the suites above produce after `apt-get update`.
const LIST_MARKERS: [&str; 3] = [
    "_dists_bookworm-backports_main_binary-",
    "_dists_sid_main_binary-",
    "_dists_trixie_main_source_Sources",
];
const APT_LISTS: &str = "/var/lib/apt/lists";

/// Debian packages from bookworm.
const PACKAGES: &[&str] = &[
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "ccache",
    "busybox-static",
    "kmod",
    "rsync",
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    "ninja-build",
    "libglib2.0-dev",
    "libpixman-1-dev",
    "libfdt-dev",
    "python3-venv",
    "python3-pip",
    "pkg-config",
    "dpkg-dev",
    "git",
    "zlib1g-dev",
    "xz-utils",
    "patch",
    "curl",
];

/// Packages taken from bookworm-backports, with the oldest acceptable version.
const BACKPORTS: &[(&str, &str)] = &[("seabios", "1.16.3"), ("qemu-system-data", "1:10")];

/// The kernel source package (from sid, named explicitly) and its tarball.
const KERNEL_PACKAGE: &str = "linux-source-7.2";
const KERNEL_TARBALL: &str = "/usr/src/linux-source-7.2.tar.xz";
const KERNEL_SERIES: &str = "7.2.";

/// The oldest bindgen the kernel build accepts here.
const BINDGEN_MIN: (u64, u64, u64) = (0, 71, 1);

/// The QEMU series the device is written against, fetched with `apt-get source`.
const QEMU_SERIES: &str = "10.0";
const QEMU_SOURCE: &str = "qemu/trixie";

/// The LLVM whose libclang bindgen loads.
const LIBCLANG_PATH: &str = "/usr/lib/llvm-19/lib";

/// The hint for failures that are most likely a network problem.
const NETWORK: &str = "is the network up?";

impl crate::flags::Setup {
    /// Installs what is missing, or with `--check` only reports it.
    pub fn run(&self, sh: &Shell) -> Result<()> {
        if self.check {
            return check(sh);
        }
        install(sh)
    }
}

/// Makes sure everything is installed; quick (well under a second) when it is.
///
/// Other subcommands call this first. It checks the cheap things (files and a
/// stamp) and runs the full setup only when one of them is missing.
pub fn ensure(sh: &Shell) -> Result<()> {
    let paths = Paths::new();
    let stamp = Stamp::new(paths.cache.join("setup.stamp"));
    if stamp.is_current(&setup_fingerprint()) && cheap_checks_pass(sh) {
        return Ok(());
    }
    eprintln!("setup: something is missing; running `cargo xtask setup`");
    install(sh)
}

/// Returns the kernel tarball and the Debian version of `linux-source-7.2` (such as `7.2.3-1`).
pub fn kernel_tarball() -> Result<(PathBuf, String)> {
    let sh = Shell::new()?;
    let version = package_versions(&sh, &[KERNEL_PACKAGE])
        .remove(KERNEL_PACKAGE)
        .with_context(|| format!("{KERNEL_PACKAGE} is not installed; run `cargo xtask setup`"))?;
    check_kernel_version(&version)?;
    let tarball = PathBuf::from(KERNEL_TARBALL);
    if !tarball.is_file() {
        bail!(
            "{KERNEL_PACKAGE} {version} is installed but {KERNEL_TARBALL} is missing; \
             reinstall it with `apt-get install --reinstall {KERNEL_PACKAGE}`"
        );
    }
    Ok((tarball, version))
}

/// Returns the unpacked QEMU 10.0 source (`cache/src/qemu-10.0.*+ds`).
pub fn qemu_source_dir() -> Result<PathBuf> {
    let src = Paths::new().src;
    find_qemu_source(&src)?.with_context(|| {
        format!(
            "no QEMU {QEMU_SERIES} source in {}; run `cargo xtask setup`",
            src.display()
        )
    })
}

/// Returns the environment the kernel build needs (`PATH`, libclang and ccache settings).
pub fn tool_env() -> Vec<(String, String)> {
    let cache = paths::cache_dir();
    let cargo_bin = paths::cargo_home().join("bin");
    let path = match std::env::var("PATH") {
        Ok(path) if !path.is_empty() => format!("{}:{path}", cargo_bin.display()),
        _ => format!("{}:/usr/local/bin:/usr/bin:/bin", cargo_bin.display()),
    };
    vec![
        ("PATH".into(), path),
        ("LIBCLANG_PATH".into(), LIBCLANG_PATH.into()),
        (
            "CCACHE_DIR".into(),
            cache.join("ccache").display().to_string(),
        ),
        ("CCACHE_BASEDIR".into(), cache.display().to_string()),
        ("CCACHE_NOHASHDIR".into(), "1".into()),
    ]
}

/// One thing setup provides, and whether it is there.
struct Item {
    name: String,
    ok: bool,
}

impl Item {
    fn new(name: impl Into<String>, ok: bool) -> Self {
        Self {
            name: name.into(),
            ok,
        }
    }
}

/// `setup --check`: prints `ok` or `MISSING` per item and fails if anything is missing.
fn check(sh: &Shell) -> Result<()> {
    let items = survey(sh);
    let missing = items.iter().filter(|i| !i.ok).count();
    for item in &items {
        println!(
            "{} {}",
            if item.ok { "ok     " } else { "MISSING" },
            item.name
        );
    }
    if missing > 0 {
        bail!(
            "{missing} of {} setup items are missing; run `cargo xtask setup`",
            items.len()
        );
    }
    Ok(())
}

/// Looks at everything setup provides without changing anything.
fn survey(sh: &Shell) -> Vec<Item> {
    let mut items = vec![
        Item::new(
            format!("apt sources {SOURCES_PATH}"),
            file_is(SOURCES_PATH, SOURCES),
        ),
        Item::new(format!("apt pin {PIN_PATH}"), file_is(PIN_PATH, PIN)),
    ];

    let all: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .chain(BACKPORTS.iter().map(|(p, _)| *p))
        .chain([KERNEL_PACKAGE])
        .collect();
    let versions = package_versions(sh, &all);
    for pkg in PACKAGES {
        items.push(Item::new(
            format!("package {pkg}"),
            versions.contains_key(*pkg),
        ));
    }
    for (pkg, min) in BACKPORTS {
        let (ok, have) = match versions.get(*pkg) {
            Some(v) => (version_ge(sh, v, min), v.as_str()),
            None => (false, "none"),
        };
        items.push(Item::new(
            format!("package {pkg} >= {min} (have {have})"),
            ok,
        ));
    }
    let kernel = match versions.get(KERNEL_PACKAGE) {
        Some(v) => Item::new(
            format!("package {KERNEL_PACKAGE} {KERNEL_SERIES}x (have {v})"),
            check_kernel_version(v).is_ok(),
        ),
        None => Item::new(format!("package {KERNEL_PACKAGE}"), false),
    };
    items.push(kernel);
    items.push(Item::new(
        format!("kernel tarball {KERNEL_TARBALL}"),
        Path::new(KERNEL_TARBALL).is_file(),
    ));

    items.push(Item::new("rust component rust-src", has_rust_src(sh)));
    let bindgen = bindgen_version(sh);
    let have = bindgen
        .map(|(a, b, c)| format!("{a}.{b}.{c}"))
        .unwrap_or_else(|| "none".into());
    let (a, b, c) = BINDGEN_MIN;
    items.push(Item::new(
        format!("bindgen >= {a}.{b}.{c} (have {have})"),
        bindgen.is_some_and(|v| v >= BINDGEN_MIN),
    ));

    let src = Paths::new().src;
    let qemu = find_qemu_source(&src).ok().flatten();
    items.push(Item::new(
        format!(
            "QEMU {QEMU_SERIES} source {}",
            qemu.as_deref()
                .unwrap_or(&src.join(format!("qemu-{QEMU_SERIES}.*+ds")))
                .display()
        ),
        qemu.is_some(),
    ));
    items
}

/// Does the full, idempotent setup.
fn install(sh: &Shell) -> Result<()> {
    let paths = Paths::new();
    let missing: Vec<String> = survey(sh)
        .into_iter()
        .filter(|i| !i.ok)
        .map(|i| i.name)
        .collect();
    if !missing.is_empty() && !is_root() {
        bail!(
            "cargo xtask setup must run as root to install: {}",
            missing.join(", ")
        );
    }

    let mut apt = Apt::new(sh, &paths);
    apt.configure_sources()?;

    // Debian packages from bookworm, in one call.
    let have = package_versions(sh, PACKAGES);
    let wanted: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !have.contains_key(*p))
        .collect();
    apt.install(&wanted, None)?;

    // Seabios and the QEMU firmware from bookworm-backports.
    let have = package_versions(sh, &BACKPORTS.iter().map(|(p, _)| *p).collect::<Vec<_>>());
    let old = |sh: &Shell, (pkg, min): &(&str, &str)| match have.get(*pkg) {
        Some(v) => !version_ge(sh, v, min),
        None => true,
    };
    if BACKPORTS.iter().any(|b| old(sh, b)) {
        let all: Vec<&str> = BACKPORTS.iter().map(|(p, _)| *p).collect();
        apt.install(&all, Some("bookworm-backports"))?;
        let have = package_versions(sh, &all);
        for (pkg, min) in BACKPORTS {
            let v = have.get(*pkg).map(String::as_str).unwrap_or("none");
            if !version_ge(sh, v, min) {
                bail!("{pkg} is {v} after installing from bookworm-backports; vagx needs >= {min}");
            }
        }
    }

    // The kernel source from sid, which the pin allows only by name.
    if !package_versions(sh, &[KERNEL_PACKAGE]).contains_key(KERNEL_PACKAGE) {
        apt.install(&[KERNEL_PACKAGE], None)?;
    }
    kernel_tarball()?;

    ensure_rust_src(sh, &paths)?;
    ensure_bindgen(sh, &paths)?;
    ensure_qemu_source(sh, &paths, &mut apt)?;

    let stamp = Stamp::new(paths.cache.join("setup.stamp"));
    stamp.write(&setup_fingerprint())?;
    println!("setup: everything is installed");
    Ok(())
}

/// The cheap part of the checks, done on every [`ensure`].
fn cheap_checks_pass(sh: &Shell) -> bool {
    file_is(SOURCES_PATH, SOURCES)
        && file_is(PIN_PATH, PIN)
        && Path::new(KERNEL_TARBALL).is_file()
        && Path::new("/usr/bin/clang-19").is_file()
        && Path::new("/usr/bin/ld.lld-19").is_file()
        && Path::new(LIBCLANG_PATH).is_dir()
        && find_bindgen().is_some()
        && rust_src_dir(sh).is_some_and(|d| d.is_dir())
        && matches!(find_qemu_source(&Paths::new().src), Ok(Some(_)))
}

/// What the setup stamp depends on: the setup logic and the lists it installs.
fn setup_fingerprint() -> Fingerprint {
    let mut fp = Fingerprint::new()
        .text(SETUP_VERSION)
        .text(SOURCES)
        .text(PIN);
    for pkg in PACKAGES {
        fp.add_text(pkg);
    }
    for (pkg, min) in BACKPORTS {
        fp.add_text(&format!("{pkg}>={min}"));
    }
    fp.text(KERNEL_PACKAGE).text(QEMU_SERIES)
}

/// Runs apt, updating the package lists at most once and only when needed.
struct Apt<'a> {
    sh: &'a Shell,
    paths: &'a Paths,
    updated: bool,
}

impl<'a> Apt<'a> {
    fn new(sh: &'a Shell, paths: &'a Paths) -> Self {
        Self {
            sh,
            paths,
            updated: false,
        }
    }

    /// Writes the pin, then the sources, and updates the lists if they changed or are absent.
    fn configure_sources(&mut self) -> Result<()> {
        // The pin goes first: sid must never be visible without it.
        let pin_changed = write_if_different(PIN_PATH, PIN)?;
        let sources_changed = write_if_different(SOURCES_PATH, SOURCES)?;
        if pin_changed || sources_changed || !lists_present() {
            self.update()?;
        }
        Ok(())
    }

    fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        println!("setup: apt-get update");
        let sh = self.sh;
        let cmd = cmd!(sh, "apt-get update").env("DEBIAN_FRONTEND", "noninteractive");
        Job::new(cmd, "apt-get update", &self.paths.log("apt-update")?)
            .hint(NETWORK)
            .heartbeat()
            .run()?;
        self.updated = true;
        Ok(())
    }

    /// Installs `pkgs` (from `release` if given), updating the lists first if one has no candidate.
    fn install(&mut self, pkgs: &[&str], release: Option<&str>) -> Result<()> {
        if pkgs.is_empty() {
            return Ok(());
        }
        if !self.updated && !all_have_candidates(self.sh, pkgs) {
            self.update()?;
        }
        let sh = self.sh;
        let target: Vec<&str> = match release {
            Some(r) => vec!["-t", r],
            None => vec![],
        };
        println!("setup: apt-get install {}", pkgs.join(" "));
        let cmd = cmd!(
            sh,
            "apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold {target...} {pkgs...}"
        )
        .env("DEBIAN_FRONTEND", "noninteractive");
        Job::new(cmd, "apt-get install", &self.paths.log("apt-install")?)
            .hint(NETWORK)
            .echo(|l| l.starts_with("Setting up "))
            .heartbeat()
            .run()
    }
}

/// Adds `rust-src` to the active toolchain if it lacks it.
fn ensure_rust_src(sh: &Shell, paths: &Paths) -> Result<()> {
    if has_rust_src(sh) {
        return Ok(());
    }
    println!("setup: rustup component add rust-src");
    Job::new(
        cmd!(sh, "rustup component add rust-src"),
        "rustup component add rust-src",
        &paths.log("rustup")?,
    )
    .hint(NETWORK)
    .run()
}

/// Installs `bindgen-cli` with cargo if bindgen is missing or too old.
fn ensure_bindgen(sh: &Shell, paths: &Paths) -> Result<()> {
    if bindgen_version(sh).is_some_and(|v| v >= BINDGEN_MIN) {
        return Ok(());
    }
    println!("setup: cargo install --locked bindgen-cli (about 2 minutes)");
    Job::new(
        cmd!(sh, "cargo install --locked bindgen-cli"),
        "cargo install bindgen-cli",
        &paths.log("bindgen-install")?,
    )
    .hint(NETWORK)
    .echo(|l| l.trim_start().starts_with("Installed "))
    .heartbeat()
    .run()?;
    match bindgen_version(sh) {
        Some(v) if v >= BINDGEN_MIN => Ok(()),
        _ => bail!(
            "bindgen is still missing or older than {}.{}.{} after cargo install; is {} in PATH?",
            BINDGEN_MIN.0,
            BINDGEN_MIN.1,
            BINDGEN_MIN.2,
            paths::cargo_home().join("bin").display()
        ),
    }
}

/// Fetches the QEMU 10.0 source from trixie into `cache/src` if it is not there.
fn ensure_qemu_source(sh: &Shell, paths: &Paths, apt: &mut Apt<'_>) -> Result<()> {
    if find_qemu_source(&paths.src)?.is_some() {
        return Ok(());
    }
    let src = paths::ensure_dir(&paths.src)?;
    // A directory left by an interrupted unpack would make `apt-get source` fail.
    for dir in qemu_dirs(src)? {
        sh.remove_path(&dir)
            .with_context(|| format!("cannot remove incomplete {}", dir.display()))?;
    }
    if !lists_present() {
        apt.update()?;
    }
    println!(
        "setup: apt-get source {QEMU_SOURCE} (into {})",
        src.display()
    );
    let _dir = sh.push_dir(src);
    Job::new(
        cmd!(sh, "apt-get source {QEMU_SOURCE}").env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get source qemu",
        &paths.log("qemu-source")?,
    )
    .hint(NETWORK)
    .heartbeat()
    .run()?;
    if find_qemu_source(src)?.is_none() {
        let found: Vec<String> = qemu_dirs(src)?
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        bail!(
            "apt-get source {QEMU_SOURCE} gave {}; vagx needs QEMU {QEMU_SERIES}.x",
            if found.is_empty() {
                "no qemu directory".to_owned()
            } else {
                found.join(", ")
            }
        );
    }
    Ok(())
}

/// Returns the newest complete `qemu-10.0.*` directory under `src`.
fn find_qemu_source(src: &Path) -> Result<Option<PathBuf>> {
    let mut dirs: Vec<PathBuf> = qemu_dirs(src)?
        .into_iter()
        .filter(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("qemu-"))
                .is_some_and(|v| v.starts_with(&format!("{QEMU_SERIES}.")))
        })
        .filter(|d| qemu_unpack_complete(d))
        .collect();
    dirs.sort();
    Ok(dirs.pop())
}

/// Lists the `qemu-<version>` directories under `src` (none if `src` does not exist).
fn qemu_dirs(src: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(src) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", src.display())),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", src.display()))?;
        let name = entry.file_name();
        let versioned = name
            .to_str()
            .and_then(|n| n.strip_prefix("qemu-"))
            .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()));
        if versioned && entry.path().is_dir() {
            dirs.push(entry.path());
        }
    }
    Ok(dirs)
}

/// Tells whether `dpkg-source -x` finished: the Debian directory is there and every patch applied.
fn qemu_unpack_complete(dir: &Path) -> bool {
    if !dir.join("debian/changelog").is_file() || !dir.join("configure").is_file() {
        return false;
    }
    let count = |path: &Path| {
        std::fs::read_to_string(path).map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .count()
        })
    };
    match count(&dir.join("debian/patches/series")) {
        Ok(0) | Err(_) => true,
        Ok(n) => count(&dir.join(".pc/applied-patches")).is_ok_and(|a| a == n),
    }
}

/// Fails unless `version` is a Debian version of Linux 7.2.x.
fn check_kernel_version(version: &str) -> Result<()> {
    if version.starts_with(KERNEL_SERIES) {
        Ok(())
    } else {
        bail!("{KERNEL_PACKAGE} version {version} is not a 7.2.x; vagx needs Linux 7.2")
    }
}

/// Returns the installed version of each of `pkgs` that is installed.
fn package_versions(sh: &Shell, pkgs: &[&str]) -> BTreeMap<String, String> {
    let format = "${Package}\t${Status}\t${Version}\n";
    // Unknown packages make dpkg-query complain and exit 1; the known ones are still listed.
    let out = cmd!(sh, "dpkg-query -W --showformat {format} {pkgs...}")
        .quiet()
        .ignore_status()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    parse_dpkg_query(&out)
}

fn parse_dpkg_query(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (pkg, status, version) = (fields.next()?, fields.next()?, fields.next()?);
            (status == "install ok installed").then(|| (pkg.to_owned(), version.to_owned()))
        })
        .collect()
}

/// Compares Debian versions: true if `have >= want`.
fn version_ge(sh: &Shell, have: &str, want: &str) -> bool {
    cmd!(sh, "dpkg --compare-versions {have} ge {want}")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
}

/// Tells whether apt knows an installable version of every one of `pkgs`.
fn all_have_candidates(sh: &Shell, pkgs: &[&str]) -> bool {
    let out = cmd!(sh, "apt-cache policy {pkgs...}")
        .quiet()
        .ignore_status()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    let with_candidate = parse_candidates(&out);
    pkgs.iter().all(|p| with_candidate.contains(*p))
}

/// Returns the packages that `apt-cache policy` output shows with a candidate.
fn parse_candidates(out: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut current: Option<&str> = None;
    for line in out.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            current = Some(line.trim_end_matches(':'));
        } else if let Some(candidate) = line.trim().strip_prefix("Candidate:") {
            if let Some(pkg) = current {
                if candidate.trim() != "(none)" {
                    found.insert(pkg.to_owned());
                }
            }
        }
    }
    found
}

/// Tells whether apt has lists for every suite in [`SOURCES`].
fn lists_present() -> bool {
    let Ok(entries) = std::fs::read_dir(APT_LISTS) else {
        return false;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    LIST_MARKERS
        .iter()
        .all(|m| names.iter().any(|n| n.contains(m)))
}

/// Tells whether `rust-src` is installed for the toolchain used in the project root.
fn has_rust_src(sh: &Shell) -> bool {
    cmd!(sh, "rustup component list --installed")
        .env("RUSTUP_AUTO_INSTALL", "0")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|out| out.lines().any(|l| l.trim().starts_with("rust-src")))
}

/// Returns the standard library source of the active toolchain, if `rustc` runs.
fn rust_src_dir(sh: &Shell) -> Option<PathBuf> {
    let sysroot = cmd!(sh, "rustc --print sysroot")
        .env("RUSTUP_AUTO_INSTALL", "0")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    Some(Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library"))
}

/// Finds a bindgen binary in `PATH` or in `$CARGO_HOME/bin`.
fn find_bindgen() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([paths::cargo_home().join("bin")])
        .map(|dir| dir.join("bindgen"))
        .find(|p| p.is_file())
}

/// Returns the version of the bindgen found by [`find_bindgen`].
fn bindgen_version(sh: &Shell) -> Option<(u64, u64, u64)> {
    let bin = find_bindgen()?;
    let out = cmd!(sh, "{bin} --version")
        .quiet()
        .ignore_stderr()
        .read()
        .ok()?;
    parse_bindgen_version(&out)
}

/// Parses `bindgen 0.73.2` into `(0, 73, 2)`.
fn parse_bindgen_version(out: &str) -> Option<(u64, u64, u64)> {
    let version = out.split_whitespace().nth(1)?;
    let mut parts = version.split(['.', '-', '+']).map(|p| p.parse::<u64>());
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ))
}

/// Tells whether `path` holds exactly `content`.
fn file_is(path: &str, content: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|c| c == content)
}

/// Writes `content` to `path` unless it is already there; returns true if it wrote.
fn write_if_different(path: &str, content: &str) -> Result<bool> {
    if file_is(path, content) {
        return Ok(false);
    }
    let tmp = format!("{path}.vagx-tmp");
    std::fs::write(&tmp, content).with_context(|| format!("cannot write {tmp}"))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {path}"))?;
    println!("setup: wrote {path}");
    Ok(true)
}

/// Tells whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_query_output() {
        let out = "flex\tinstall ok installed\t2.6.4-8.2\n\
                   bison\tdeinstall ok config-files\t2:3.8.2\n\
                   seabios\tinstall ok installed\t1.16.3-2~bpo12+1\n";
        let v = parse_dpkg_query(out);
        assert_eq!(v.get("flex").map(String::as_str), Some("2.6.4-8.2"));
        assert!(!v.contains_key("bison"));
        assert!(v.contains_key("seabios"));
    }

    #[test]
    fn apt_cache_policy_output() {
        let out = "linux-source-7.2:\n  Installed: (none)\n  Candidate: 7.2.1-1\n  Version table:\n     7.2.1-1 1\n          1 http://deb.debian.org/debian sid/main amd64 Packages\n\
                   ghost:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";
        let c = parse_candidates(out);
        assert!(c.contains("linux-source-7.2"));
        assert!(!c.contains("ghost"));
    }

    #[test]
    fn bindgen_versions() {
        assert_eq!(parse_bindgen_version("bindgen 0.73.2"), Some((0, 73, 2)));
        assert_eq!(
            parse_bindgen_version("bindgen 0.71.1-beta"),
            Some((0, 71, 1))
        );
        assert_eq!(parse_bindgen_version("garbage"), None);
        assert!((0, 70, 9) < BINDGEN_MIN && (0, 71, 1) >= BINDGEN_MIN);
    }

    #[test]
    fn kernel_version_message() {
        assert!(check_kernel_version("7.2.3-1").is_ok());
        let err = check_kernel_version("7.12.1-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux-source-7.2 version 7.12.1-1 is not a 7.2.x; vagx needs Linux 7.2"
        );
    }

    #[test]
    fn tool_env_prepends_cargo_bin() {
        let env = tool_env();
        let path = &env.iter().find(|(k, _)| k == "PATH").unwrap().1;
        assert!(path.starts_with(&paths::cargo_home().join("bin").display().to_string()));
        assert!(env
            .iter()
            .any(|(k, v)| k == "LIBCLANG_PATH" && v == LIBCLANG_PATH));
        assert!(env.iter().any(|(k, v)| k == "CCACHE_NOHASHDIR" && v == "1"));
    }

    #[test]
    fn qemu_source_completeness() {
        let dir = std::env::temp_dir().join(format!("vagx-setup-test-{}", std::process::id()));
        let q = dir.join("qemu-10.0.13+ds");
        std::fs::create_dir_all(q.join("debian/patches")).unwrap();
        std::fs::create_dir_all(dir.join("qemu-9.2.0+ds/debian")).unwrap();
        assert_eq!(find_qemu_source(&dir).unwrap(), None);
        std::fs::write(q.join("configure"), "").unwrap();
        std::fs::write(q.join("debian/changelog"), "").unwrap();
        std::fs::write(q.join("debian/patches/series"), "# c\na.patch\nb.patch\n").unwrap();
        assert_eq!(find_qemu_source(&dir).unwrap(), None);
        std::fs::create_dir_all(q.join(".pc")).unwrap();
        std::fs::write(q.join(".pc/applied-patches"), "a.patch\nb.patch\n").unwrap();
        assert_eq!(find_qemu_source(&dir).unwrap(), Some(q));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
