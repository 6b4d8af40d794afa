// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Parses KTAP (KUnit) results out of a serial console log and counts them.
//!
//! The log may carry printk timestamps (`[    1.234567] `), kernel messages
//! between the test lines, and several top-level KTAP blocks: one for the
//! built-in suites and one per module whose suites run at `insmod` time. All
//! blocks are collected. Nesting follows indentation (four spaces a level).
//!
//! Counting is by leaf: a test case with parameterised sub-tests counts as its
//! sub-tests. A subtest whose result line never came (the log ends, or a new
//! block starts, after a crash) counts as one failure named `... (crashed: no
//! result line)`.

use std::fmt;
use std::ops::AddAssign;

/// The result of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `ok N name`.
    Pass,
    /// `not ok N name`, or a test that crashed.
    Fail,
    /// `ok N name # SKIP reason` (or `not ok ... # SKIP`).
    Skip,
}

/// One counted (leaf) test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The case name, with parameterised sub-tests as `case/param`.
    pub name: String,
    /// Its result.
    pub status: Status,
    /// True if this entry stands for a subtest whose result line never came.
    pub crashed: bool,
}

/// A top-level KTAP subtest (a KUnit suite) and its leaf cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// The suite name.
    pub name: String,
    /// The suite's own result line, or `None` if it never came (a crash).
    pub status: Option<Status>,
    /// The leaf cases; a suite without cases is counted as one case named after itself.
    pub cases: Vec<Case>,
}

impl Suite {
    /// Returns true if the suite's result line never came.
    pub fn crashed(&self) -> bool {
        self.status.is_none()
    }

    /// Counts the suite's cases.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for case in &self.cases {
            tally.add(case.status);
        }
        tally
    }
}

/// Every suite found in a log, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The suites of all KTAP blocks.
    pub suites: Vec<Suite>,
    /// How many top-level KTAP blocks the log held.
    pub blocks: usize,
}

impl Report {
    /// Parses all KTAP blocks in `log`.
    pub fn parse(log: &str) -> Self {
        let mut parser = Parser::default();
        for line in log.lines() {
            parser.line(line);
        }
        parser.finish()
    }

    /// Returns `(passed, failed, skipped)` over all leaf cases.
    pub fn summary(&self) -> (usize, usize, usize) {
        let t = self.tally();
        (t.passed, t.failed, t.skipped)
    }

    /// Returns the counts over all leaf cases.
    pub fn tally(&self) -> Tally {
        let mut tally = Tally::default();
        for suite in &self.suites {
            tally += suite.tally();
        }
        tally
    }

    /// Returns `suite.case` for every failed case, for the final report.
    pub fn failures(&self) -> Vec<String> {
        self.suites
            .iter()
            .flat_map(|s| {
                s.cases
                    .iter()
                    .filter(|c| c.status == Status::Fail)
                    .map(move |c| {
                        if c.name == s.name || c.name.starts_with(&format!("{} (", s.name)) {
                            c.name.clone()
                        } else {
                            format!("{}.{}", s.name, c.name)
                        }
                    })
            })
            .collect()
    }

    /// Returns true if the log held no KTAP result at all.
    pub fn is_empty(&self) -> bool {
        self.suites.is_empty()
    }
}

/// Test counts, with the closing line that the project's CI reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed (or crashed).
    pub failed: usize,
    /// Tests that were skipped.
    pub skipped: usize,
}

impl Tally {
    /// Counts one result.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => self.skipped += 1,
        }
    }

    /// Returns `N passed, N failed`, with `, N skipped` only when something was skipped.
    pub fn closing_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        line
    }

    /// Returns the number of tests counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }
}

impl AddAssign for Tally {
    fn add_assign(&mut self, rhs: Self) {
        self.passed += rhs.passed;
        self.failed += rhs.failed;
        self.skipped += rhs.skipped;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.closing_line())
    }
}

/// Parses a whole log; shorthand for [`Report::parse`].
pub fn parse(log: &str) -> Report {
    Report::parse(log)
}

/// The result of a subtest as the tree is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeStatus {
    Done(Status),
    Crashed,
}

/// A finished subtest or test case.
#[derive(Debug)]
struct Node {
    name: String,
    status: NodeStatus,
    children: Vec<Node>,
}

/// An open subtest: its body is indented by `indent` spaces.
#[derive(Debug)]
struct Frame {
    indent: usize,
    name: Option<String>,
    children: Vec<Node>,
}

impl Frame {
    fn into_crashed(self) -> Node {
        Node {
            name: self.name.unwrap_or_else(|| "(unnamed)".into()),
            status: NodeStatus::Crashed,
            children: self.children,
        }
    }
}

/// A line-by-line KTAP parser; `stack[0]` is the open block's top level.
#[derive(Debug, Default)]
struct Parser {
    report: Report,
    stack: Vec<Frame>,
    /// Noise that stood before `KTAP version` on the block's first line.
    prefix: String,
}

impl Parser {
    fn line(&mut self, raw: &str) {
        let line = strip_timestamp(raw.trim_end_matches(['\r', '\n', '\0']).trim_end());
        let in_block = !self.stack.is_empty();
        let rest = match line.strip_prefix(self.prefix.as_str()) {
            Some(rest) if in_block => rest,
            _ => line,
        };

        if let Some(pos) = find_version(rest) {
            let before = &rest[..pos];
            let nested = in_block && !before.is_empty() && before.bytes().all(|b| b == b' ');
            if !nested {
                // A new top-level block; whatever stood before the marker is noise.
                self.finish_block();
                let pos = find_version(line).unwrap_or(0);
                self.prefix = line[..pos].to_owned();
                self.stack.push(Frame {
                    indent: 0,
                    name: None,
                    children: Vec::new(),
                });
                self.report.blocks += 1;
                return;
            }
        }
        if !in_block {
            return;
        }

        let content = rest.trim_start_matches(' ');
        let indent = rest.len() - content.len();
        if let Some(name) = content.strip_prefix("# Subtest:") {
            self.subtest(indent, Some(name.trim().to_owned()));
        } else if find_version(content) == Some(0) {
            self.subtest(indent, None);
        } else if let Some((status, name)) = parse_result(content) {
            self.result(indent, status, name);
        }
        // Plans, `# module:` and summary lines and kernel messages carry nothing we count.
    }

    /// Opens (or names) a subtest whose body is at `indent`.
    fn subtest(&mut self, indent: usize, name: Option<String>) {
        let is_root = self.stack.len() == 1;
        let Some(top) = self.stack.last_mut() else {
            return;
        };
        if !is_root && top.indent == indent && top.name.is_none() && top.children.is_empty() {
            // `KTAP version 1` followed by `# Subtest: name` at the same indentation.
            top.name = name;
            return;
        }
        if indent <= top.indent {
            if name.is_none() {
                return;
            }
            // A new subtest at a level whose previous subtest never ended: that one crashed.
            self.close_above(indent.saturating_sub(1), None);
        }
        self.stack.push(Frame {
            indent,
            name,
            children: Vec::new(),
        });
    }

    /// Records `ok`/`not ok` at `indent`, closing the subtest whose body was deeper.
    fn result(&mut self, indent: usize, status: Status, name: String) {
        let Some(top) = self.stack.last() else {
            return;
        };
        if indent > top.indent {
            // Results without a subtest header still belong to a subtest of their own.
            self.stack.push(Frame {
                indent,
                name: None,
                children: Vec::new(),
            });
        }
        let node = match self.close_above(indent, Some(name.clone())) {
            Some(frame) => Node {
                name,
                status: NodeStatus::Done(status),
                children: frame.children,
            },
            None => Node {
                name,
                status: NodeStatus::Done(status),
                children: Vec::new(),
            },
        };
        if let Some(top) = self.stack.last_mut() {
            top.children.push(node);
        }
    }

    /// Pops every non-root frame whose body is deeper than `indent`.
    ///
    /// Frames inside the shallowest popped one crashed and become its children.
    /// The shallowest is returned when a result line closes it (`closing` is
    /// its name); otherwise it crashed too and goes to its parent.
    fn close_above(&mut self, indent: usize, closing: Option<String>) -> Option<Frame> {
        let mut popped: Option<Frame> = None;
        while self.stack.len() > 1 && self.stack.last().is_some_and(|f| f.indent > indent) {
            let Some(mut frame) = self.stack.pop() else {
                break;
            };
            if let Some(inner) = popped.take() {
                frame.children.push(inner.into_crashed());
            }
            popped = Some(frame);
        }
        match (popped, closing) {
            (Some(frame), Some(_)) => Some(frame),
            (Some(frame), None) => {
                if let Some(parent) = self.stack.last_mut() {
                    parent.children.push(frame.into_crashed());
                }
                None
            }
            (None, _) => None,
        }
    }

    /// Ends the open block: subtests without a result line crashed.
    fn finish_block(&mut self) {
        if self.stack.is_empty() {
            return;
        }
        self.close_above(0, None);
        let Some(root) = self.stack.pop() else {
            return;
        };
        self.stack.clear();
        for node in root.children {
            self.report.suites.push(suite_from(node));
        }
    }

    fn finish(mut self) -> Report {
        self.finish_block();
        self.report
    }
}

/// Flattens a top-level node into a suite of leaf cases.
fn suite_from(node: Node) -> Suite {
    let mut cases = Vec::new();
    if node.children.is_empty() {
        cases.push(leaf_case(&node, &node.name));
    } else {
        for child in &node.children {
            leaves(child, &child.name, &mut cases);
        }
        settle(&node, &node.name, 0, &mut cases);
    }
    Suite {
        name: node.name,
        status: match node.status {
            NodeStatus::Done(s) => Some(s),
            NodeStatus::Crashed => None,
        },
        cases,
    }
}

/// Appends the leaf cases under `node`, named by `path`.
fn leaves(node: &Node, path: &str, out: &mut Vec<Case>) {
    if node.children.is_empty() {
        out.push(leaf_case(node, path));
        return;
    }
    let start = out.len();
    for child in &node.children {
        leaves(child, &format!("{path}/{}", child.name), out);
    }
    settle(node, path, start, out);
}

/// Makes sure a failed or crashed node with children is counted as a failure at least once.
fn settle(node: &Node, path: &str, start: usize, out: &mut Vec<Case>) {
    let below = &out[start..];
    let extra = match node.status {
        NodeStatus::Crashed if !below.iter().any(|c| c.crashed) => Some(Case {
            name: format!(
                "{path} (crashed: no result line after {} results)",
                below.len()
            ),
            status: Status::Fail,
            crashed: true,
        }),
        NodeStatus::Done(Status::Fail) if !below.iter().any(|c| c.status == Status::Fail) => {
            Some(Case {
                name: path.to_owned(),
                status: Status::Fail,
                crashed: false,
            })
        }
        _ => None,
    };
    out.extend(extra);
}

fn leaf_case(node: &Node, path: &str) -> Case {
    match node.status {
        NodeStatus::Done(status) => Case {
            name: path.to_owned(),
            status,
            crashed: false,
        },
        NodeStatus::Crashed => Case {
            name: format!("{path} (crashed: no result line)"),
            status: Status::Fail,
            crashed: true,
        },
    }
}

/// Removes printk prefixes such as `[    1.234567] ` or `[    1.234567][    T1] `.
fn strip_timestamp(line: &str) -> &str {
    let mut rest = line;
    let mut stripped = false;
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            break;
        };
        let stamp = &inner[..end];
        let looks_like_stamp = !stamp.trim().is_empty()
            && stamp
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | ' ' | 'T' | 'C'))
            && stamp.chars().any(|c| c.is_ascii_digit());
        if !looks_like_stamp {
            break;
        }
        rest = &inner[end + 1..];
        stripped = true;
    }
    if stripped {
        rest.strip_prefix(' ').unwrap_or(rest)
    } else {
        line
    }
}

/// Finds `KTAP version N` or `TAP version N` in `s`, returning where it starts.
fn find_version(s: &str) -> Option<usize> {
    for marker in ["KTAP version ", "TAP version "] {
        let mut from = 0;
        while let Some(pos) = s[from..].find(marker).map(|p| p + from) {
            let after = &s[pos + marker.len()..];
            let is_ktap_tail = marker.starts_with('T') && s[..pos].ends_with('K');
            if !is_ktap_tail && after.starts_with(|c: char| c.is_ascii_digit()) {
                return Some(pos);
            }
            from = pos + marker.len();
        }
    }
    None
}

/// Parses `ok N name`, `not ok N name` and `... # SKIP reason`.
fn parse_result(content: &str) -> Option<(Status, String)> {
    let (failed, rest) = if let Some(rest) = content.strip_prefix("not ok ") {
        (true, rest)
    } else {
        (false, content.strip_prefix("ok ")?)
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].trim_start();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.find(" #") {
        Some(pos) => (&rest[..pos], Some(rest[pos + 2..].trim_start())),
        None if rest.starts_with('#') => ("", Some(rest[1..].trim_start())),
        None => (rest, None),
    };
    let skipped =
        directive.is_some_and(|d| d.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("skip")));
    let status = match (skipped, failed) {
        (true, _) => Status::Skip,
        (false, true) => Status::Fail,
        (false, false) => Status::Pass,
    };
    Some((status, name.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSING: &str = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: vagx_ring
    # module: vagx
    1..3
    ok 1 ring_empty_on_init
    ok 2 ring_wraps
    ok 3 ring_full_rejects
# vagx_ring: pass:3 fail:0 skip:0 total:3
# Totals: pass:3 fail:0 skip:0 total:3
ok 1 vagx_ring
";

    #[test]
    fn passing_sample() {
        let r = Report::parse(PASSING);
        assert_eq!(r.blocks, 1);
        assert_eq!(r.suites.len(), 1);
        assert_eq!(r.suites[0].name, "vagx_ring");
        assert_eq!(r.suites[0].status, Some(Status::Pass));
        let names: Vec<&str> = r.suites[0].cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["ring_empty_on_init", "ring_wraps", "ring_full_rejects"]
        );
        assert_eq!(r.summary(), (3, 0, 0));
        assert_eq!(r.tally().closing_line(), "3 passed, 0 failed");
        assert!(r.failures().is_empty());
    }

    #[test]
    fn one_failing_case() {
        let log = "\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: vagx_sched
    1..3
    ok 1 submit_one
    # timeout_fires: EXPECTATION FAILED at drivers/gpu/drm/vagx/sched.rs:120
    Expected fired == true, but
        fired == false
    not ok 2 timeout_fires
    ok 3 drain
# vagx_sched: pass:2 fail:1 skip:0 total:3
not ok 1 vagx_sched
    KTAP version 1
    # Subtest: vagx_mmu
    1..1
    ok 1 map_unmap
ok 2 vagx_mmu
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (3, 1, 0));
        assert_eq!(r.failures(), ["vagx_sched.timeout_fires"]);
        assert_eq!(r.suites[0].status, Some(Status::Fail));
        assert_eq!(r.suites[1].status, Some(Status::Pass));
        assert_eq!(r.tally().closing_line(), "3 passed, 1 failed");
    }

    #[test]
    fn skipped_cases() {
        let log = "\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: vagx_fence
    1..2
    ok 1 signal_once
    ok 2 needs_hw # SKIP no GPU present
ok 1 vagx_fence
    KTAP version 1
    # Subtest: vagx_whole_suite_skipped
    1..0
ok 2 vagx_whole_suite_skipped # SKIP not applicable
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (1, 0, 2));
        assert_eq!(r.suites[0].cases[1].status, Status::Skip);
        assert_eq!(r.suites[0].cases[1].name, "needs_hw");
        assert_eq!(r.tally().closing_line(), "1 passed, 0 failed, 2 skipped");
    }

    #[test]
    fn parameterised_case_counts_its_params() {
        let log = "\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: vagx_regs
    1..2
    ok 1 plain
        KTAP version 1
        # Subtest: field_roundtrip
        ok 1 width 1
        not ok 2 width 7
        ok 3 width 32 # SKIP unsupported
    # field_roundtrip: pass:1 fail:1 skip:1 total:3
    not ok 2 field_roundtrip
# vagx_regs: pass:1 fail:1 skip:0 total:2
not ok 1 vagx_regs
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (2, 1, 1));
        let names: Vec<&str> = r.suites[0].cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "plain",
                "field_roundtrip/width 1",
                "field_roundtrip/width 7",
                "field_roundtrip/width 32"
            ]
        );
        assert_eq!(r.failures(), ["vagx_regs.field_roundtrip/width 7"]);
    }

    #[test]
    fn failed_parent_without_failed_children_still_fails() {
        let log = "\
KTAP version 1
1..1
    # Subtest: vagx_init
    1..1
        # Subtest: p
        ok 1 a
    not ok 1 p
not ok 1 vagx_init
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (1, 1, 0));
        assert_eq!(r.failures(), ["vagx_init.p"]);
    }

    #[test]
    fn timestamps_and_noise() {
        let log = "\
SeaBIOS (version 1.16.3-debian)
Booting from ROM...
[    0.000000] Linux version 7.2.1 (root@host) #1 SMP
[    0.812345] Run /init as init process
[    1.100000] KTAP version 1
[    1.100001] 1..1
[    1.100002]     KTAP version 1
[    1.100003]     # Subtest: vagx_ring
[    1.100004]     # module: vagx
[    1.100005]     1..2
[    1.100100] vagx 0000:00:03.0: enabling device (0000 -> 0002)
[    1.100200]     ok 1 ring_empty_on_init\r
[    1.100300][    T1]     not ok 2 ring_wraps
[    1.100400] # vagx_ring: pass:1 fail:1 skip:0 total:2
[    1.100500] not ok 1 vagx_ring
[    1.200000] reboot: Power down
";
        let r = Report::parse(log);
        assert_eq!(r.blocks, 1);
        assert_eq!(r.summary(), (1, 1, 0));
        assert_eq!(r.failures(), ["vagx_ring.ring_wraps"]);
    }

    #[test]
    fn noise_before_the_marker_is_stripped_from_the_block() {
        let log = "\
ttyS0: KTAP version 1
ttyS0: 1..1
ttyS0:     # Subtest: s
ttyS0:     ok 1 a
ttyS0: ok 1 s
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (1, 0, 0));
        assert_eq!(r.suites[0].name, "s");
    }

    #[test]
    fn built_in_and_module_blocks() {
        let log = "\
[    0.500000] KTAP version 1
[    0.500001] 1..1
[    0.500002]     KTAP version 1
[    0.500003]     # Subtest: vagx_builtin
[    0.500004]     1..1
[    0.500005]     ok 1 alpha
[    0.500006] ok 1 vagx_builtin
[    2.000000] vagx: loading out-of-tree module taints kernel.
[    2.000100] KTAP version 1
[    2.000101] 1..1
[    2.000102]     KTAP version 1
[    2.000103]     # Subtest: vagx_module
[    2.000104]     # module: vagx
[    2.000105]     1..2
[    2.000106]     ok 1 beta
[    2.000107]     not ok 2 gamma
[    2.000108] # vagx_module: pass:1 fail:1 skip:0 total:2
[    2.000109] not ok 1 vagx_module
";
        let r = Report::parse(log);
        assert_eq!(r.blocks, 2);
        let names: Vec<&str> = r.suites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["vagx_builtin", "vagx_module"]);
        assert_eq!(r.summary(), (2, 1, 0));
    }

    #[test]
    fn truncated_log_counts_a_crash() {
        let log = "\
[    1.000000] KTAP version 1
[    1.000001] 1..2
[    1.000002]     KTAP version 1
[    1.000003]     # Subtest: vagx_ok
[    1.000004]     1..1
[    1.000005]     ok 1 fine
[    1.000006] ok 1 vagx_ok
[    1.000007]     KTAP version 1
[    1.000008]     # Subtest: vagx_job
[    1.000009]     1..3
[    1.000010]     ok 1 submit
[    1.000011] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    1.000012] Kernel panic - not syncing: Fatal exception
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (2, 1, 0));
        let crashed = &r.suites[1];
        assert!(crashed.crashed());
        assert_eq!(crashed.name, "vagx_job");
        assert_eq!(
            r.failures(),
            ["vagx_job (crashed: no result line after 1 results)"]
        );
        assert!(crashed.cases.iter().any(|c| c.crashed));
        assert_eq!(r.tally().closing_line(), "2 passed, 1 failed");
    }

    #[test]
    fn crash_inside_a_parameterised_case_counts_once() {
        let log = "\
KTAP version 1
1..1
    # Subtest: vagx_regs
    1..1
        # Subtest: params
        ok 1 p0
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (1, 1, 0));
        assert_eq!(
            r.failures(),
            ["vagx_regs.params (crashed: no result line after 1 results)"]
        );
    }

    #[test]
    fn crash_then_module_block() {
        // The insmod of one module died mid-suite; the next module still reports.
        let log = "\
KTAP version 1
1..1
    # Subtest: first
    1..2
    ok 1 a
KTAP version 1
1..1
    # Subtest: second
    1..1
    ok 1 b
ok 1 second
";
        let r = Report::parse(log);
        assert_eq!(r.blocks, 2);
        assert_eq!(r.summary(), (2, 1, 0));
        assert!(r.suites[0].crashed());
        assert!(!r.suites[1].crashed());
    }

    #[test]
    fn old_tap_format_with_dashes() {
        let log = "\
TAP version 14
1..1
    # Subtest: legacy
    1..2
    ok 1 - one
    not ok 2 - two
not ok 1 - legacy
";
        let r = Report::parse(log);
        assert_eq!(r.summary(), (1, 1, 0));
        assert_eq!(r.failures(), ["legacy.two"]);
    }

    #[test]
    fn no_ktap_is_empty() {
        let r = Report::parse("[    0.1] Linux version 7.2\nok 1 not a test\n");
        assert!(r.is_empty());
        assert_eq!(r.summary(), (0, 0, 0));
    }

    #[test]
    fn result_lines() {
        assert_eq!(parse_result("ok 1 a"), Some((Status::Pass, "a".into())));
        assert_eq!(
            parse_result("not ok 12 b c"),
            Some((Status::Fail, "b c".into()))
        );
        assert_eq!(
            parse_result("not ok 3 d # SKIP reason"),
            Some((Status::Skip, "d".into()))
        );
        assert_eq!(
            parse_result("ok 4 e # skip"),
            Some((Status::Skip, "e".into()))
        );
        assert_eq!(parse_result("ok then"), None);
        assert_eq!(parse_result("okay 1 x"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(strip_timestamp("[    1.234567]     ok 1 a"), "    ok 1 a");
        assert_eq!(strip_timestamp("[12345.000001][ T42] x"), "x");
        assert_eq!(strip_timestamp("[drm] x"), "[drm] x");
    }

    #[test]
    fn tally_closing_line() {
        let mut t = Tally {
            passed: 5,
            failed: 0,
            skipped: 0,
        };
        assert_eq!(t.closing_line(), "5 passed, 0 failed");
        t += Tally {
            passed: 1,
            failed: 2,
            skipped: 3,
        };
        assert_eq!(t.closing_line(), "6 passed, 2 failed, 3 skipped");
        assert_eq!(t.total(), 11);
    }
}
