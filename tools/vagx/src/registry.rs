// SPDX-License-Identifier: GPL-2.0 OR MIT

//! A registered test: a name and a function, as the runner (`tests.rs`) prints and runs it.

use anyhow::Result;

/// A test function.
pub type TestFn = Box<dyn Fn() -> Result<()>>;

/// A named test.
pub type Test = (String, TestFn);

/// A test that needs no parameters.
pub type PlainTest = (&'static str, fn() -> Result<()>);

/// Named tests of plain functions.
pub fn boxed(plain: Vec<PlainTest>) -> Vec<Test> {
    plain
        .into_iter()
        .map(|(name, f)| (name.to_string(), Box::new(f) as TestFn))
        .collect()
}
