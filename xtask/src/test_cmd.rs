// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Placeholder for `cargo xtask test`, `cargo xtask kunit` and `cargo xtask vm-test`.

impl crate::flags::Test {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}

impl crate::flags::Kunit {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}

impl crate::flags::VmTest {
    pub fn run(&self, _sh: &xshell::Shell) -> anyhow::Result<()> {
        anyhow::bail!("not written yet")
    }
}
