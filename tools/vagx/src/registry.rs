// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The tests' registry: a [`Test`] is a name and what it runs, and [`tests!`] lists tests by
//! their functions, so that the name the runner (`tests.rs`) prints is the function's name.

use anyhow::Result;

/// A registered test: the name the runner prints (`ok N - name`) and what it runs.
pub struct Test<'a> {
    pub name: String,
    pub run: Box<dyn Fn() -> Result<()> + 'a>,
}

impl<'a> Test<'a> {
    /// A test named `name` that runs `run`; [`tests!`] makes these from functions, the
    /// dependency matrix from its parameters.
    pub fn new(name: impl Into<String>, run: impl Fn() -> Result<()> + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
        }
    }

    /// The same test with `prefix` in front of its name (the driver tests run once per
    /// scheduling mode).
    pub fn prefixed(self, prefix: &str) -> Self {
        Self {
            name: format!("{prefix}{}", self.name),
            run: self.run,
        }
    }
}

/// `tests![f, g(arg, ...), ...]`: the tests `f` (which runs `f()`) and `g` (which runs
/// `g(arg, ...)`), in order, each named after its function.
///
/// The arguments are moved into the test and evaluated when it runs; pass references.
macro_rules! tests {
    ($($test:ident $(($($arg:expr),* $(,)?))?),* $(,)?) => {
        vec![$(
            $crate::registry::Test::new(stringify!($test), move || $test($($($arg),*)?))
        ),*]
    };
}

pub(crate) use tests;
