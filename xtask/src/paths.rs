// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Where things live: the project root and the build cache.
//!
//! The cache is `$VAGX_CACHE` if set, else `$HOME/.cache/vagx`. Directories
//! are created only when a caller asks for them with [`ensure_dir`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Returns the root of the vagx repository (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Returns the cache directory: `$VAGX_CACHE`, else `$HOME/.cache/vagx`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VAGX_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    home_dir().join(".cache").join("vagx")
}

/// Returns `$HOME`, falling back to `/root` (setup runs as root).
pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Returns the cargo home: `$CARGO_HOME`, else `$HOME/.cargo`.
pub fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home_dir().join(".cargo"))
}

/// Creates `dir` and its parents if needed, and returns it.
pub fn ensure_dir(dir: &Path) -> Result<&Path> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))?;
    Ok(dir)
}

/// Returns the files in `dir` whose extension is `ext`, sorted; none if `dir` does not exist.
pub fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    Ok(files)
}

/// Removes `dir` and everything in it; a missing `dir` is not an error.
pub fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The project's well-known directories. None of them is created by [`Paths::new`].
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository root.
    pub root: PathBuf,
    /// The build cache (`$VAGX_CACHE` or `~/.cache/vagx`).
    pub cache: PathBuf,
    /// Logs of external commands: `cache/logs`.
    pub logs: PathBuf,
    /// Downloaded sources (such as `apt-get source qemu`): `cache/src`.
    pub src: PathBuf,
    /// The unpacked kernel source: `cache/linux/src`.
    pub linux_src: PathBuf,
    /// The kernel build tree (`O=`): `cache/linux/build`.
    pub linux_build: PathBuf,
    /// The prepared QEMU source: `cache/qemu/src`.
    pub qemu_src: PathBuf,
    /// The QEMU build tree: `cache/qemu/build`.
    pub qemu_build: PathBuf,
    /// The initramfs staging area and image: `cache/initramfs`.
    pub initramfs: PathBuf,
    /// Tools built or installed for the project: `cache/tools`.
    pub tools: PathBuf,
}

impl Paths {
    /// Computes the paths from the project root and [`cache_dir`].
    pub fn new() -> Self {
        Self::with_cache(project_root(), cache_dir())
    }

    /// Computes the paths for an explicit root and cache.
    pub fn with_cache(root: PathBuf, cache: PathBuf) -> Self {
        Self {
            logs: cache.join("logs"),
            src: cache.join("src"),
            linux_src: cache.join("linux").join("src"),
            linux_build: cache.join("linux").join("build"),
            qemu_src: cache.join("qemu").join("src"),
            qemu_build: cache.join("qemu").join("build"),
            initramfs: cache.join("initramfs"),
            tools: cache.join("tools"),
            root,
            cache,
        }
    }

    /// Returns the log file path for `name` (`cache/logs/<name>.log`), creating the log directory.
    pub fn log(&self, name: &str) -> Result<PathBuf> {
        ensure_dir(&self.logs)?;
        Ok(self.logs.join(format!("{name}.log")))
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_root_holds_the_workspace() {
        assert!(project_root().join("xtask").join("Cargo.toml").is_file());
    }

    #[test]
    fn layout_is_under_the_cache() {
        let p = Paths::with_cache(PathBuf::from("/r"), PathBuf::from("/c"));
        assert_eq!(p.logs, Path::new("/c/logs"));
        assert_eq!(p.linux_build, Path::new("/c/linux/build"));
        assert_eq!(p.qemu_src, Path::new("/c/qemu/src"));
        assert_eq!(p.root, Path::new("/r"));
    }
}
