// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Placeholder for `cargo xtask run`.

impl crate::flags::Run {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}
