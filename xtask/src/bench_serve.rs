// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask bench serve`: the serving mix (`vagx-tool bench-serve`) under every scheduler
//! the guest's init script loads, in one boot: a table, the goals, and the JSON.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{bench::json_number, build, vm};

/// The console prefix of a run's JSON object.
const PREFIX: &str = "vagx-bench-serve: ";
/// Runs the guest's init script makes: seven on GPU 0, two on every GPU.
const RUNS: usize = 9;

/// One run: a scheduler (mode, policy, controls) and what it measured.
#[derive(Clone, Debug, Default, PartialEq)]
struct ServeResult {
    /// GPUs the mix ran on at once.
    gpus: u32,
    /// `kernel` or `firmware`, the policy (kernel mode's) and the controls.
    mode: String,
    policy: String,
    weights: bool,
    deadlines: bool,
    /// Interactive latency alone and beside batch work, in µs: p50, p99.
    idle: [f64; 2],
    mix: [f64; 2],
    /// The mix's latency from each SUBMIT to its signal (without the guest's lag before the
    /// SUBMIT): p50, p99; zeros from an older tool.
    mix_gpu: [f64; 2],
    /// Fractions of requests within the SLO, alone and in the mix.
    idle_slo: f64,
    mix_slo: f64,
    /// Batch jobs per second, alone and in the mix, and utilisation in each.
    alone_rate: f64,
    mix_rate: f64,
    alone_util: f64,
    mix_util: f64,
    /// Configured and measured share ratio, with weights.
    shares: Option<(f64, f64)>,
}

impl ServeResult {
    /// The scheduler's name in the table.
    fn name(&self) -> String {
        let controls = match (self.weights, self.deadlines) {
            (false, false) => "",
            (true, false) => "+weights",
            (false, true) => "+deadlines",
            (true, true) => "+weights+deadlines",
        };
        let on = if self.gpus > 1 {
            format!(", {} GPUs", self.gpus)
        } else {
            String::new()
        };
        match self.mode.as_str() {
            "kernel" => format!("kernel {}{controls}{on}", self.policy),
            _ => format!("firmware{controls}{on}"),
        }
    }
}

/// A string field of a flat JSON object.
fn json_string<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let at = s.find(&format!("\"{key}\": \""))? + key.len() + 5;
    let rest = &s[at..];
    Some(&rest[..rest.find('"')?])
}

/// A boolean field of a flat JSON object.
fn json_bool(s: &str, key: &str) -> Option<bool> {
    let at = s.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &s[at..];
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

/// The runs on a console; a line missing a field is skipped.
fn parse(console: &str) -> Vec<ServeResult> {
    console
        .lines()
        .filter_map(|l| l.split(PREFIX).nth(1))
        .filter_map(|j| {
            let n = |k| json_number(j, k);
            Some(ServeResult {
                // CAST: a small count.
                gpus: n("gpus").unwrap_or(1.0) as u32,
                mode: json_string(j, "mode")?.to_owned(),
                policy: json_string(j, "policy")?.to_owned(),
                weights: json_bool(j, "weights")?,
                deadlines: json_bool(j, "deadlines")?,
                idle: [n("idle_p50_us")?, n("idle_p99_us")?],
                mix: [n("mix_p50_us")?, n("mix_p99_us")?],
                mix_gpu: [
                    n("mix_from_submit_p50_us").unwrap_or(0.0),
                    n("mix_from_submit_p99_us").unwrap_or(0.0),
                ],
                idle_slo: n("idle_slo")?,
                mix_slo: n("mix_slo")?,
                alone_rate: n("alone_jobs_per_s")?,
                mix_rate: n("mix_jobs_per_s")?,
                alone_util: n("alone_utilisation")?,
                mix_util: n("mix_utilisation")?,
                shares: n("shares_configured").zip(n("shares_measured")),
            })
        })
        .collect()
}

fn table(results: &[ServeResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<38} {:>15} {:>15} {:>17} {:>11} {:>15} {:>11} {:>13}",
        "scheduler",
        "idle p50/p99",
        "mix p50/p99",
        "from SUBMIT",
        "SLO idle/mix",
        "batch alone/mix",
        "util",
        "shares"
    );
    for r in results {
        let shares = r
            .shares
            .map_or_else(|| "-".to_owned(), |(w, m)| format!("{m:.2} of {w:.0}"));
        let _ = writeln!(
            s,
            "{:<38} {:>15} {:>15} {:>17} {:>11} {:>15} {:>11} {:>13}",
            r.name(),
            format!("{:.0}/{:.0} us", r.idle[0], r.idle[1]),
            format!("{:.0}/{:.0} us", r.mix[0], r.mix[1]),
            format!("{:.0}/{:.0} us", r.mix_gpu[0], r.mix_gpu[1]),
            format!("{:.2}/{:.2}", r.idle_slo, r.mix_slo),
            format!("{:.1}/{:.1} j/s", r.alone_rate, r.mix_rate),
            format!("{:.2}/{:.2}", r.alone_util, r.mix_util),
            shares
        );
    }
    s
}

/// The goals, for each run with deadlines: interactive p99 in the mix at most twice
/// its idle p99, utilisation at least 0.90 and batch throughput at least 0.85 of batch alone;
/// for each run with weights, shares within 5 % of the configured ratio.
fn goals(results: &[ServeResult]) -> Vec<String> {
    let mut out = Vec::new();
    let mut goal = |what: String, v: f64, ok: bool| {
        out.push(format!(
            "{} {what}: {v:.2}",
            if ok { "met    " } else { "not met" }
        ));
    };
    for r in results {
        let name = r.name();
        if r.deadlines {
            let p99 = r.mix[1] / r.idle[1].max(1.0);
            goal(format!("{name}: mix p99 / idle p99 <= 2"), p99, p99 <= 2.0);
            goal(
                format!("{name}: utilisation in the mix >= 0.90"),
                r.mix_util,
                r.mix_util >= 0.90,
            );
            let batch = r.mix_rate / r.alone_rate.max(f64::MIN_POSITIVE);
            goal(
                format!("{name}: batch throughput in the mix / alone >= 0.85"),
                batch,
                batch >= 0.85,
            );
        }
        if let Some((want, got)) = r.shares {
            let off = (got / want - 1.0).abs();
            goal(
                format!("{name}: shares {got:.2} against {want:.0}, off by <= 0.05"),
                off,
                off <= 0.05,
            );
        }
    }
    out
}

/// `cargo xtask bench serve`.
pub fn run(sh: &Shell, json_out: Option<&std::path::Path>) -> Result<()> {
    let art = build::build_all(sh)?;
    eprintln!(
        "bench: the serving mix under kernel FIFO and FAIR (plain, weights, deadlines, both) \
         and firmware mode (plain, both) on GPU 0, then both controls on every GPU, one boot"
    );
    let boot = vm::boot(
        &art,
        vm::Mode::BenchServe,
        crate::bench::BENCH_TIMEOUT,
        false,
    )?;
    let warnings = vm::kernel_warnings(&boot.console);
    for w in &warnings {
        eprintln!("bench: kernel warning: {w}");
    }
    let results = parse(&boot.console);
    print!("{}", table(&results));
    println!("goals (device clock for the busy time, CLOCK_MONOTONIC for latency):");
    for g in goals(&results) {
        println!("  {g}");
    }
    if let Some(path) = json_out {
        let lines: Vec<&str> = boot
            .console
            .lines()
            .filter_map(|l| l.split(PREFIX).nth(1))
            .collect();
        std::fs::write(path, format!("[\n  {}\n]\n", lines.join(",\n  ")))?;
    }
    eprintln!("bench: console log {}", boot.log.display());
    if vm::guest_status(&boot.console) != Some(0) || !warnings.is_empty() || results.len() != RUNS {
        bail!(
            "the benchmark guest failed ({} runs reported of {RUNS}); log: {}",
            results.len(),
            boot.log.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "vagx-bench-serve: {\"mode\": \"kernel\", \"policy\": \"fair\", \
        \"weights\": true, \"deadlines\": true, \"gpus\": 2, \"units\": 4, \"slo_us\": 5000, \
        \"idle_requests\": 370, \"idle_p50_us\": 1500, \"idle_p99_us\": 2000, \
        \"idle_slo\": 1.000, \"alone_jobs_per_s\": 60.0, \"alone_utilisation\": 0.950, \
        \"mix_requests\": 380, \"mix_p50_us\": 2100, \"mix_p99_us\": 3900, \"mix_slo\": 0.990, \
        \"mix_jobs_per_s\": 50.0, \"mix_utilisation\": 0.960, \"shares_configured\": 3.000, \
        \"shares_measured\": 2.900, \"mix_from_submit_p50_us\": 1800, \
        \"mix_from_submit_p99_us\": 3000, \"seconds\": 14.1}";

    #[test]
    fn a_run_is_parsed_and_judged() {
        let console = format!("noise\n{LINE}\nvagx-bench-serve: {{\"mode\": \"kernel\"}}\n");
        let r = parse(&console);
        assert_eq!(r.len(), 1, "the line without fields is skipped");
        assert_eq!(r[0].name(), "kernel fair+weights+deadlines, 2 GPUs");
        assert_eq!((r[0].idle, r[0].mix), ([1500.0, 2000.0], [2100.0, 3900.0]));
        assert_eq!(r[0].shares, Some((3.0, 2.9)));
        assert_eq!(r[0].mix_gpu, [1800.0, 3000.0]);
        let g = goals(&r);
        let line = |what: &str| g.iter().find(|l| l.contains(what)).unwrap().clone();
        assert!(
            line("p99").starts_with("met") && line("p99").ends_with("1.95"),
            "{g:?}"
        );
        assert!(line("utilisation").starts_with("met"), "{g:?}");
        // 50 of 60 jobs per second.
        assert!(line("batch").starts_with("not met"), "{g:?}");
        // 2.9 against 3 is 3.3 % off.
        assert!(line("shares").starts_with("met"), "{g:?}");
        assert!(table(&r).contains("2.90 of 3"));
    }

    #[test]
    fn a_run_without_controls_has_no_goals() {
        let plain = LINE
            .replace("\"weights\": true", "\"weights\": false")
            .replace("\"deadlines\": true", "\"deadlines\": false")
            .replace(
                ", \"shares_configured\": 3.000, \"shares_measured\": 2.900",
                "",
            );
        let r = parse(&plain);
        assert_eq!(r[0].name(), "kernel fair, 2 GPUs");
        assert!(goals(&r).is_empty());
    }
}
