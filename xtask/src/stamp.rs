// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Input fingerprints and stamp files that let a build step be skipped.
//!
//! A [`Fingerprint`] hashes files and directory trees (relative path, content
//! and executable bit, in sorted order) plus extra strings such as tool
//! versions. A [`Stamp`] stores the fingerprint of the last successful run.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// A SHA-256 digest over a build step's inputs.
#[derive(Clone)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    /// Starts an empty fingerprint.
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
        }
    }

    /// Adds a file, or a directory and everything under it, to the fingerprint.
    ///
    /// A missing path is recorded as missing rather than being an error, so
    /// that creating it later changes the fingerprint.
    pub fn path(mut self, path: &Path) -> Result<Self> {
        self.add_path(path)?;
        Ok(self)
    }

    /// Adds several paths; see [`Fingerprint::path`].
    pub fn paths<P: AsRef<Path>>(mut self, paths: impl IntoIterator<Item = P>) -> Result<Self> {
        for path in paths {
            self.add_path(path.as_ref())?;
        }
        Ok(self)
    }

    /// Adds an extra string, such as a tool version or a configuration value.
    pub fn text(mut self, text: &str) -> Self {
        self.field(b"text", text.as_bytes());
        self
    }

    /// Adds a file or directory tree in place; see [`Fingerprint::path`].
    pub fn add_path(&mut self, path: &Path) -> Result<()> {
        self.field(b"root", path.as_os_str().as_encoded_bytes());
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.field(b"missing", b"");
                return Ok(());
            }
            Err(e) => return Err(e).with_context(|| format!("cannot stat {}", path.display())),
        };
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, Path::new(""), &mut files)?;
            files.sort();
            for rel in files {
                self.add_entry(&path.join(&rel), &rel)?;
            }
        } else {
            self.add_entry(path, Path::new(""))?;
        }
        Ok(())
    }

    /// Adds an extra string in place; see [`Fingerprint::text`].
    pub fn add_text(&mut self, text: &str) {
        self.field(b"text", text.as_bytes());
    }

    /// Returns the digest as 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Hashes one file or symlink, named by its path relative to the root given.
    fn add_entry(&mut self, full: &Path, rel: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(full)
            .with_context(|| format!("cannot stat {}", full.display()))?;
        self.field(b"entry", rel.as_os_str().as_encoded_bytes());
        if meta.file_type().is_symlink() {
            let target = fs::read_link(full)
                .with_context(|| format!("cannot read link {}", full.display()))?;
            self.field(b"symlink", target.as_os_str().as_encoded_bytes());
            return Ok(());
        }
        let exec = meta.permissions().mode() & 0o111 != 0;
        self.field(b"exec", if exec { b"1" } else { b"0" });
        let mut file =
            fs::File::open(full).with_context(|| format!("cannot read {}", full.display()))?;
        self.hasher.update(b"content\0");
        self.hasher.update(meta.len().to_le_bytes());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", full.display()))?;
            if n == 0 {
                break;
            }
            self.hasher.update(&buf[..n]);
        }
        Ok(())
    }

    /// Hashes a tagged, length-prefixed field so that fields cannot run together.
    fn field(&mut self, tag: &[u8], value: &[u8]) {
        self.hasher.update(tag);
        self.hasher.update([0]);
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value);
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({})", self.hex())
    }
}

/// Collects the non-directory entries under `dir` as paths relative to the walk's root.
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let rel = rel.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", root.join(&rel).display()))?;
        if kind.is_dir() {
            walk(root, &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// A file recording the fingerprint of a build step's last successful run.
#[derive(Debug, Clone)]
pub struct Stamp {
    path: PathBuf,
}

impl Stamp {
    /// Names a stamp file; nothing is read or written yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Returns the stamp file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns true if the stamp exists and records `fp`.
    pub fn is_current(&self, fp: &Fingerprint) -> bool {
        fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == fp.hex())
    }

    /// Records `fp` as the last successful run (atomically, through a rename).
    pub fn write(&self, fp: &Fingerprint) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            crate::paths::ensure_dir(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, format!("{}\n", fp.hex()))
            .with_context(|| format!("cannot write stamp {}", tmp.display()))?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write stamp {}", self.path.display()))
    }

    /// Deletes the stamp so that the next run redoes the step.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("cannot remove stamp {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A unique temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "vagx-stamp-test-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("src/sub")).unwrap();
            fs::write(dir.join("src/a.rs"), "fn a() {}").unwrap();
            fs::write(dir.join("src/sub/b.rs"), "fn b() {}").unwrap();
            fs::write(dir.join("Kconfig"), "config X").unwrap();
            TempDir(dir)
        }

        fn fp(&self) -> Fingerprint {
            Fingerprint::new()
                .paths([self.0.join("src"), self.0.join("Kconfig")])
                .unwrap()
                .text("rustc 1.95")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn same_inputs_same_digest() {
        let t = TempDir::new();
        let a = t.fp().hex();
        assert_eq!(a.len(), 64);
        assert_eq!(a, t.fp().hex());
    }

    #[test]
    fn content_change_changes_digest() {
        let t = TempDir::new();
        let before = t.fp().hex();
        fs::write(t.0.join("src/sub/b.rs"), "fn b() { }").unwrap();
        assert_ne!(before, t.fp().hex());
    }

    #[test]
    fn rename_and_new_file_change_digest() {
        let t = TempDir::new();
        let before = t.fp().hex();
        fs::rename(t.0.join("src/a.rs"), t.0.join("src/c.rs")).unwrap();
        let renamed = t.fp().hex();
        assert_ne!(before, renamed);
        fs::write(t.0.join("src/sub/new.rs"), "").unwrap();
        assert_ne!(renamed, t.fp().hex());
    }

    #[test]
    fn exec_bit_and_text_change_digest() {
        let t = TempDir::new();
        let before = t.fp().hex();
        let file = t.0.join("src/a.rs");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        let exec = t.fp().hex();
        assert_ne!(before, exec);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(before, t.fp().hex());
        assert_ne!(before, t.fp().text("clang 19").hex());
    }

    #[test]
    fn missing_path_is_not_an_error() {
        let t = TempDir::new();
        let fp = Fingerprint::new().path(&t.0.join("absent")).unwrap();
        fs::write(t.0.join("absent"), "").unwrap();
        assert_ne!(
            fp.hex(),
            Fingerprint::new().path(&t.0.join("absent")).unwrap().hex()
        );
    }

    #[test]
    fn stamp_round_trip() {
        let t = TempDir::new();
        let stamp = Stamp::new(t.0.join("stamps/kernel.stamp"));
        let fp = t.fp();
        assert!(!stamp.is_current(&fp));
        stamp.write(&fp).unwrap();
        assert!(stamp.is_current(&fp));
        fs::write(t.0.join("Kconfig"), "config Y").unwrap();
        assert!(!stamp.is_current(&t.fp()));
        stamp.remove().unwrap();
        stamp.remove().unwrap();
        assert!(!stamp.is_current(&fp));
    }
}
