// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Placeholder for `cargo xtask build` and `cargo xtask clean`.

impl crate::flags::Build {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}

impl crate::flags::Clean {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}
