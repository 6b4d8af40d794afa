// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `cargo xtask bench`: the vagx scheduler and C `drm_sched` on the same workloads, same boot.
//!
//! The guest boots with only the scheduler-workload KUnit suites enabled: vagx's built-in
//! `vagx_sched_scheduler_*` suites run at boot (RR, FIFO and FAIR), then the guest loads
//! `gpu-sched.ko` + `drm-sched-tests.ko` with `sched_policy=0` (RR), 1 (FIFO) and 2 (FAIR). Both print the same metric lines; this module reads them back into one table and,
//! with `--json`, a JSON file. Timing is what the suites measured on this machine under TCG:
//! compare columns of one run, not runs of different machines.

use std::{fmt::Write as _, time::Duration};

use anyhow::{bail, Result};
use xshell::Shell;

use crate::{build, flags, vm};

/// How long the benchmark boot may take (vagx once, C drm_sched three times, under TCG).
pub(crate) const BENCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Which scheduler printed a metric.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    /// `vagx` or `drm_sched`.
    sched: &'static str,
    /// `fifo` or `fair` (or `rr`).
    policy: String,
}

impl Source {
    fn column(&self) -> String {
        format!("{}-{}", self.sched, self.policy)
    }
}

/// One metric the suites printed.
#[derive(Clone, Debug, PartialEq)]
enum Metric {
    /// queue_overhead / ping_pong: ideal and measured time of 1000 one-millisecond jobs.
    Overhead {
        test: String,
        expected_us: u64,
        actual_us: u64,
    },
    /// One client of a two-client workload.
    Client {
        case: String,
        credits: u32,
        client: u32,
        prio: String,
        elapsed_ms: u64,
        ideal_ms: u64,
        cycle_us: [u64; 3],
        latency_us: [u64; 3],
    },
    /// The progress spread of N clients (avg_max_min_delta x100: lower is fairer).
    Spread { clients: u32, delta_x100: u64 },
    /// Wall time per job of many 1 us jobs with unlimited credits: the CPU cost of a job.
    Cost { jobs: u64, ns_per_job: u64 },
}

#[derive(Clone, Debug, PartialEq)]
struct Record {
    source: Source,
    metric: Metric,
}

fn strip(line: &str) -> &str {
    let line = line.trim_end();
    let line = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, l)| l),
        None => line,
    };
    line.strip_prefix("rust_kernel: ").unwrap_or(line)
}

fn number(s: &str) -> Option<u64> {
    s.trim()
        .trim_end_matches("us")
        .trim_end_matches("ms")
        .parse()
        .ok()
}

/// `a,b,c us` after `key=`.
fn triple(line: &str, key: &str) -> Option<[u64; 3]> {
    let rest = line.split_once(key)?.1;
    let nums = rest.split_whitespace().next()?;
    let mut it = nums.split(',').map(number);
    Some([it.next()??, it.next()??, it.next()??])
}

fn field(line: &str, key: &str) -> Option<u64> {
    let rest = line.split_once(key)?.1;
    number(rest.split_whitespace().next()?.trim_start_matches('('))
}

/// `Expected <e>us, actual <a>us`.
fn expected_actual(line: &str) -> Option<(u64, u64)> {
    let rest = line.split_once("Expected ")?.1;
    let (e, a) = rest.split_once(", actual ")?;
    Some((number(e)?, number(a)?))
}

/// `<n> jobs in <t>us, <c> ns/job`.
fn cost(line: &str) -> Option<Metric> {
    let rest = line.split_once(": ")?.1;
    let (jobs, rest) = rest.split_once(" jobs in ")?;
    let per_job = rest.split_once(", ")?.1.strip_suffix(" ns/job")?;
    Some(Metric::Cost {
        jobs: number(jobs)?,
        ns_per_job: number(per_job)?,
    })
}

/// Reads the metric lines of a benchmark console.
fn parse(console: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut c_policy = String::new();
    let mut suite = String::new();
    let mut c_overhead_seen = 0;
    // The current case: its source, description and credits.
    let mut case: Option<(Source, String, u32)> = None;
    let mut clients: Option<(Source, u32)> = None;
    for raw in console.lines() {
        let line = strip(raw);
        let t = line.trim();
        if let Some(p) = t.strip_prefix("vagx-bench: drm_sched policy ") {
            c_policy = match p {
                "0" => "rr",
                "1" => "fifo",
                _ => "fair",
            }
            .to_owned();
            c_overhead_seen = 0;
            continue;
        }
        if let Some(name) = t.strip_prefix("# Subtest: ") {
            // Suites are at the first level; deeper ones are a parameterised case's name.
            let depth = line.len() - line.trim_start().len();
            if depth <= 4 {
                suite = name.to_owned();
            }
            continue;
        }
        let c_source = || Source {
            sched: "drm_sched",
            policy: c_policy.clone(),
        };
        // "drm_sched cost: ..." / "vagx_sched cost (<policy>): ..."
        if t.starts_with("drm_sched cost: ") {
            if let Some(metric) = cost(t) {
                out.push(Record {
                    source: c_source(),
                    metric,
                });
            }
            continue;
        }
        if let Some(rest) = t.strip_prefix("vagx_sched cost (") {
            if let (Some((policy, _)), Some(metric)) = (rest.split_once(')'), cost(t)) {
                out.push(Record {
                    source: Source {
                        sched: "vagx",
                        policy: policy.to_owned(),
                    },
                    metric,
                });
            }
            continue;
        }
        // vagx: "vagx_sched <test> (<policy>): Expected ..."
        if let Some(rest) = t.strip_prefix("vagx_sched ") {
            if let (Some((test, rest)), Some((e, a))) = (rest.split_once(" ("), expected_actual(t))
            {
                let policy = rest.split_once(')').map_or("", |(p, _)| p).to_owned();
                out.push(Record {
                    source: Source {
                        sched: "vagx",
                        policy,
                    },
                    metric: Metric::Overhead {
                        test: test.to_owned(),
                        expected_us: e,
                        actual_us: a,
                    },
                });
            }
            continue;
        }
        if suite.starts_with("drm_sched_scheduler_overhead") && t.starts_with("Expected ") {
            if let Some((e, a)) = expected_actual(t) {
                let test = if c_overhead_seen == 0 {
                    "queue_overhead"
                } else {
                    "ping_pong"
                };
                c_overhead_seen += 1;
                out.push(Record {
                    source: c_source(),
                    metric: Metric::Overhead {
                        test: test.to_owned(),
                        expected_us: e,
                        actual_us: a,
                    },
                });
            }
            continue;
        }
        // A client line of a two-client case.
        if let Some((id, rest)) = t.split_once(": prio=") {
            if let (Some((src, desc, credits)), Ok(client)) = (&case, id.parse::<u32>()) {
                let (Some(cycle), Some(lat)) = (
                    triple(rest, "cycle_time(min,avg,max)="),
                    triple(rest, "latency_time(min,avg,max)="),
                ) else {
                    continue;
                };
                out.push(Record {
                    source: src.clone(),
                    metric: Metric::Client {
                        case: desc.clone(),
                        credits: *credits,
                        client,
                        prio: rest.split_whitespace().next().unwrap_or("").to_owned(),
                        elapsed_ms: field(rest, "elapsed_ms=").unwrap_or(0),
                        ideal_ms: field(rest, "ideal_ms=").unwrap_or(0),
                        cycle_us: cycle,
                        latency_us: lat,
                    },
                });
            }
            continue;
        }
        if let Some(v) = t.strip_prefix("avg_max_min_delta(x100)=") {
            if let (Some((src, n)), Some(v)) = (&clients, number(v)) {
                out.push(Record {
                    source: src.clone(),
                    metric: Metric::Spread {
                        clients: *n,
                        delta_x100: v,
                    },
                });
            }
            continue;
        }
        // Case headers. vagx: "<desc> (<policy>, <n> credit(s)):", "<n> clients (<policy>):".
        // drm_sched: "<desc>:" and "<n> clients:" inside its suites.
        let Some(head) = t.strip_suffix(':') else {
            continue;
        };
        if let Some((n, rest)) = head.split_once(" clients") {
            if let Ok(n) = n.parse::<u32>() {
                let src = match rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                {
                    Some(policy) => Source {
                        sched: "vagx",
                        policy: policy.to_owned(),
                    },
                    None => c_source(),
                };
                clients = Some((src, n));
                continue;
            }
        }
        if let Some((desc, rest)) = head.rsplit_once(" (") {
            if let Some((policy, credits)) = rest.trim_end_matches(')').split_once(", ") {
                if let Some(n) = credits
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                {
                    let src = Source {
                        sched: "vagx",
                        policy: policy.to_owned(),
                    };
                    case = Some((src, desc.to_owned(), n));
                    continue;
                }
            }
        }
        if suite.starts_with("drm_sched_scheduler_two_clients") && !head.contains('[') {
            let credits = if suite.contains("two_credits") { 2 } else { 1 };
            case = Some((c_source(), head.to_owned(), credits));
        }
    }
    out
}

fn columns(records: &[Record]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in records {
        let c = r.source.column();
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    cols.sort();
    cols
}

/// The comparison tables.
fn table(records: &[Record]) -> String {
    let cols = columns(records);
    let mut s = String::new();
    let header = |s: &mut String, first: &str, width: usize| {
        let _ = write!(s, "{first:<width$}");
        for c in &cols {
            let _ = write!(s, " {c:>16}");
        }
        s.push('\n');
    };
    let _ = writeln!(
        s,
        "Overhead: 1000 jobs of 1 ms, 1 credit; actual / ideal time (lower is better)"
    );
    header(&mut s, "test", 16);
    for test in ["queue_overhead", "ping_pong"] {
        let _ = write!(s, "{test:<16}");
        for c in &cols {
            let v = records.iter().find_map(|r| match &r.metric {
                Metric::Overhead {
                    test: t,
                    expected_us,
                    actual_us,
                } if t == test && r.source.column() == *c => {
                    Some(*actual_us as f64 / (*expected_us).max(1) as f64)
                }
                _ => None,
            });
            match v {
                Some(v) => {
                    let _ = write!(s, " {:>16}", format!("{v:.3}"));
                }
                None => {
                    let _ = write!(s, " {:>16}", "-");
                }
            }
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nPer-job cost: 100000 jobs of 1 us, unlimited credits; wall ns per job (lower is better)"
    );
    header(&mut s, "ns/job", 16);
    let _ = write!(s, "{:<16}", "cost");
    for c in &cols {
        let v = records.iter().find_map(|r| match r.metric {
            Metric::Cost { ns_per_job, .. } if r.source.column() == *c => Some(ns_per_job),
            _ => None,
        });
        let _ = write!(
            s,
            " {:>16}",
            v.map_or_else(|| "-".to_owned(), |v| v.to_string())
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "\nTwo clients: per-cycle latency avg/max in us (sync clients) or cycle time (async)"
    );
    header(&mut s, "case [credits] client prio", 56);
    let mut cases: Vec<(String, u32, u32, String)> = Vec::new();
    for r in records {
        if let Metric::Client {
            case,
            credits,
            client,
            prio,
            ..
        } = &r.metric
        {
            let k = (case.clone(), *credits, *client, prio.clone());
            if !cases.contains(&k) {
                cases.push(k);
            }
        }
    }
    for (case, credits, client, prio) in &cases {
        let label = format!("{case} [{credits}] {client} {prio}");
        let _ = write!(s, "{label:<56}");
        for c in &cols {
            let v = records.iter().find_map(|r| match &r.metric {
                Metric::Client {
                    case: cs,
                    credits: cr,
                    client: cl,
                    cycle_us,
                    latency_us,
                    ..
                } if cs == case && cr == credits && cl == client && r.source.column() == *c => {
                    // A sync client's latency is what it waits beyond its own GPU time;
                    // an async client never waits, so show its cycle time instead.
                    Some(if latency_us[2] > 0 {
                        format!("{}/{}", latency_us[1], latency_us[2])
                    } else {
                        format!("c{}/{}", cycle_us[1], cycle_us[2])
                    })
                }
                _ => None,
            });
            let _ = write!(s, " {:>16}", v.unwrap_or_else(|| "-".to_owned()));
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nMany clients: progress spread avg_max_min_delta(x100) (lower is fairer)"
    );
    header(&mut s, "clients", 16);
    let mut ns: Vec<u32> = records
        .iter()
        .filter_map(|r| match r.metric {
            Metric::Spread { clients, .. } => Some(clients),
            _ => None,
        })
        .collect();
    ns.sort_unstable();
    ns.dedup();
    for n in ns {
        let _ = write!(s, "{n:<16}");
        for c in &cols {
            let v = records.iter().find_map(|r| match r.metric {
                Metric::Spread {
                    clients,
                    delta_x100,
                } if clients == n && r.source.column() == *c => Some(delta_x100),
                _ => None,
            });
            let _ = write!(
                s,
                " {:>16}",
                v.map_or_else(|| "-".to_owned(), |v| v.to_string())
            );
        }
        s.push('\n');
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The records as a JSON array (one object per metric).
fn json(records: &[Record]) -> String {
    let mut s = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let src = format!(
            "\"scheduler\": {}, \"policy\": {}",
            json_str(r.source.sched),
            json_str(&r.source.policy)
        );
        let body = match &r.metric {
            Metric::Overhead {
                test,
                expected_us,
                actual_us,
            } => format!(
                "\"kind\": \"overhead\", \"test\": {}, \"expected_us\": {expected_us}, \"actual_us\": {actual_us}",
                json_str(test)
            ),
            Metric::Client {
                case,
                credits,
                client,
                prio,
                elapsed_ms,
                ideal_ms,
                cycle_us,
                latency_us,
            } => format!(
                "\"kind\": \"two_clients\", \"case\": {}, \"credits\": {credits}, \"client\": {client}, \"prio\": {}, \"elapsed_ms\": {elapsed_ms}, \"ideal_ms\": {ideal_ms}, \"cycle_us\": [{}, {}, {}], \"latency_us\": [{}, {}, {}]",
                json_str(case),
                json_str(prio),
                cycle_us[0],
                cycle_us[1],
                cycle_us[2],
                latency_us[0],
                latency_us[1],
                latency_us[2]
            ),
            Metric::Spread {
                clients,
                delta_x100,
            } => format!(
                "\"kind\": \"many_clients\", \"clients\": {clients}, \"avg_max_min_delta_x100\": {delta_x100}"
            ),
            Metric::Cost { jobs, ns_per_job } => format!(
                "\"kind\": \"per_job_cost\", \"jobs\": {jobs}, \"ns_per_job\": {ns_per_job}"
            ),
        };
        let comma = if i + 1 < records.len() { "," } else { "" };
        let _ = writeln!(s, "  {{{src}, {body}}}{comma}");
    }
    s.push_str("]\n");
    s
}

/// One mode's result of `vagx-tool bench` (its JSON line on the console).
#[derive(Debug, Default, PartialEq)]
struct DriverResult {
    mode: u64,
    /// p50, p90, p99, max of submit-to-signal latency on an idle device, µs.
    idle: [u64; 4],
    /// The same at high priority under low-priority load.
    contended: [u64; 4],
    /// A two-queue chain: submit of the first job to the signal of the second, which waits
    /// for it (absent from older tools' output: zeros); the wait resolved by the firmware.
    chain: [u64; 4],
    /// The same chain with the wait resolved by the CPU.
    chain_cpu: [u64; 4],
    jobs_per_s: f64,
}

/// The number after `"key": ` in `s`.
pub(crate) fn json_number(s: &str, key: &str) -> Option<f64> {
    let at = s.find(&format!("\"{key}\": "))? + key.len() + 4;
    let rest = &s[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The `vagx-bench-driver: {...}` lines of a console.
fn parse_driver(console: &str) -> Vec<DriverResult> {
    let mut out = Vec::new();
    for line in console.lines() {
        let Some(json) = line.split("vagx-bench-driver: ").nth(1) else {
            continue;
        };
        let section = |name: &str| -> Option<[u64; 4]> {
            let s = &json[json.find(&format!("\"{name}\""))?..];
            let v = |k| json_number(s, k).map(|x| x as u64);
            Some([v("p50")?, v("p90")?, v("p99")?, v("max")?])
        };
        let (Some(mode), Some(idle), Some(contended), Some(rate)) = (
            json_number(json, "mode"),
            section("latency_us"),
            section("contended_high_latency_us"),
            json_number(json, "throughput_jobs_per_s"),
        ) else {
            continue;
        };
        out.push(DriverResult {
            mode: mode as u64,
            idle,
            contended,
            chain: section("chain_latency_us").unwrap_or_default(),
            chain_cpu: section("chain_cpu_latency_us").unwrap_or_default(),
            jobs_per_s: rate,
        });
    }
    out
}

fn driver_table(results: &[DriverResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<9} {:>27} {:>31} {:>31} {:>31} {:>10}",
        "mode",
        "idle p50/p90/p99/max us",
        "high under load p50/p90/p99/max",
        "chain, firmware wait",
        "chain, CPU wait",
        "jobs/s"
    );
    for r in results {
        let name = if r.mode == 0 { "kernel" } else { "firmware" };
        let q = |v: &[u64; 4]| format!("{}/{}/{}/{}", v[0], v[1], v[2], v[3]);
        let _ = writeln!(
            s,
            "{:<9} {:>27} {:>31} {:>31} {:>31} {:>10.0}",
            name,
            q(&r.idle),
            q(&r.contended),
            q(&r.chain),
            q(&r.chain_cpu),
            r.jobs_per_s
        );
    }
    s
}

/// `cargo xtask bench driver`.
fn bench_driver(sh: &Shell, json_out: Option<&std::path::Path>) -> Result<()> {
    let art = build::build_all(sh)?;
    eprintln!("bench: the driver in kernel then firmware scheduling mode (vagx-tool bench)");
    let boot = vm::boot(&art, vm::Mode::BenchDriver, BENCH_TIMEOUT, false)?;
    let results = parse_driver(&boot.console);
    let warnings = vm::kernel_warnings(&boot.console);
    for w in &warnings {
        eprintln!("bench: kernel warning: {w}");
    }
    if results.len() != 2 {
        bail!(
            "expected a result per scheduling mode, got {}; log: {}",
            results.len(),
            boot.log.display()
        );
    }
    print!("{}", driver_table(&results));
    if let Some(path) = json_out {
        let lines: Vec<&str> = boot
            .console
            .lines()
            .filter_map(|l| l.split("vagx-bench-driver: ").nth(1))
            .collect();
        std::fs::write(path, format!("[\n  {}\n]\n", lines.join(",\n  ")))?;
    }
    eprintln!("bench: console log {}", boot.log.display());
    if vm::guest_status(&boot.console) != Some(0) || !warnings.is_empty() {
        bail!("the benchmark guest failed; log: {}", boot.log.display());
    }
    Ok(())
}

/// The JSON objects of `vagx-tool bench-ml` on a console.
fn ml_results(console: &str) -> Vec<&str> {
    console
        .lines()
        .filter_map(|l| l.split("vagx-bench-ml-json: ").nth(1))
        .map(str::trim)
        .collect()
}

/// The string after `"key": "` in `s`.
fn json_str_field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let at = s.find(&format!("\"{key}\": \""))? + key.len() + 5;
    s[at..].split('"').next()
}

/// The goals against the results: one line each, met or not, with the figure.
fn ml_goals(results: &[&str]) -> Vec<String> {
    let find = |kind: &str, pred: &dyn Fn(&str) -> bool| -> Option<&str> {
        results
            .iter()
            .copied()
            .find(|r| json_str_field(r, "kind") == Some(kind) && pred(r))
    };
    // The goals are in device time: the largest batch's runs queued ahead, whose time is
    // the GPUs' (a streamed run's also has the CPU's rate of submission in it).
    let batch = results
        .iter()
        .filter(|r| json_str_field(r, "kind") == Some("model"))
        .filter_map(|r| json_number(r, "batch"))
        .fold(None, |m: Option<f64>, b| Some(m.map_or(b, |m| m.max(b))));
    let model = |strategy: &str, gpus: f64| {
        find("model", &|r| {
            json_str_field(r, "strategy") == Some(strategy)
                && json_number(r, "gpus") == Some(gpus)
                && json_str_field(r, "launch") == Some("ahead")
                && json_number(r, "batch") == batch
        })
        .and_then(|r| json_number(r, "speedup"))
    };
    let mut goals = Vec::new();
    let mut goal = |what: &str, value: Option<f64>, ok: &dyn Fn(f64) -> bool| {
        goals.push(match value {
            Some(v) => format!(
                "{} {what}: {v:.2}",
                if ok(v) { "met    " } else { "not met" }
            ),
            None => format!("n/a     {what}: not measured"),
        });
    };
    goal(
        "data parallel on 4 GPUs >= 3.6x one GPU (largest batch, queued ahead)",
        model("data parallel", 4.0),
        &|v| v >= 3.6,
    );
    goal(
        "tensor parallel on 4 GPUs >= 3.0x (largest batch, queued ahead)",
        model("tensor parallel", 4.0),
        &|v| v >= 3.0,
    );
    goal(
        "pipeline parallel on 4 GPUs >= 3.0x (largest batch, queued ahead)",
        model("pipeline parallel", 4.0),
        &|v| v >= 3.0,
    );
    // The better algorithm at 16 MiB.
    let share = results
        .iter()
        .filter(|r| {
            json_str_field(r, "kind") == Some("collective")
                && json_number(r, "bytes") == Some(16.0 * 1048576.0)
        })
        .filter_map(|r| Some(json_number(r, "busbw_gbs")? / json_number(r, "copy_gbs")?))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    goal("all-reduce busbw at 16 MiB >= 0.80 of COPY", share, &|v| {
        v >= 0.8
    });
    let p99 = |policy: &str| {
        find("dispatcher", &|r| {
            json_str_field(r, "policy") == Some(policy)
        })
        .and_then(|r| json_number(r, "p99_ms"))
    };
    let ratio = p99("least-loaded")
        .zip(p99("round-robin"))
        .map(|(a, b)| a / b.max(1e-9));
    goal("least-loaded p99 <= 0.70 of round-robin's", ratio, &|v| {
        v <= 0.7
    });
    let imbalance = find("dispatcher", &|r| {
        json_str_field(r, "policy") == Some("least-loaded")
    })
    .and_then(|r| json_number(r, "imbalance"));
    goal(
        "least-loaded utilisation imbalance <= 0.10",
        imbalance,
        &|v| v <= 0.1,
    );
    let fid: Vec<f64> = results
        .iter()
        .filter(|r| json_str_field(r, "kind") == Some("fidelity"))
        .filter_map(|r| json_number(r, "on_time"))
        .collect();
    let worst = fid.iter().copied().reduce(f64::min);
    goal("commands on time >= 0.95 (worst GPU)", worst, &|v| {
        v >= 0.95
    });
    goals
}

/// `cargo xtask bench ml`: a boot per kernel of `kernels`, each with its tables and goals.
fn bench_ml(sh: &Shell, json_out: Option<&std::path::Path>, kernels: flags::Kernels) -> Result<()> {
    let test = build::build_all(sh)?;
    let mut boots = Vec::new();
    if kernels != flags::Kernels::Production {
        boots.push(test.clone());
    }
    if kernels != flags::Kernels::Test {
        boots.push(build::production(&test)?);
    }
    let mut all = Vec::new();
    let mut failed = None;
    for art in &boots {
        let flavour = art.kernel.flavour.name();
        eprintln!(
            "bench: ML on {} vGPUs modelled {}x slower than the default device (collectives, \
             inference in each parallelism, the dispatcher), {flavour} kernel",
            vm::MULTI_GPU_DEVICES,
            vm::BENCH_ML_RATE_DIVISOR
        );
        let boot = vm::boot(art, vm::Mode::BenchMl, BENCH_TIMEOUT, false)?;
        let warnings = vm::kernel_warnings(&boot.console);
        for w in &warnings {
            eprintln!("bench: kernel warning: {w}");
        }
        println!("== {flavour} kernel ==");
        for line in boot.console.lines() {
            if let Some(row) = line.split("vagx-bench-ml| ").nth(1) {
                println!("{}", row.trim_end());
            }
        }
        let results = ml_results(&boot.console);
        println!(
            "goals, {flavour} kernel (device time; see Documentation/gpu/vagx-ml.rst for wall time):"
        );
        for g in ml_goals(&results) {
            println!("  {g}");
        }
        all.extend(
            results
                .iter()
                .map(|r| r.replacen('{', &format!("{{\"kernel\": \"{flavour}\", "), 1)),
        );
        eprintln!("bench: console log {}", boot.log.display());
        if vm::guest_status(&boot.console) != Some(0) || !warnings.is_empty() || results.is_empty()
        {
            failed.get_or_insert(boot.log.clone());
        }
        if boots.len() > 1 {
            // The next boot writes the same log.
            let kept = boot
                .log
                .with_file_name(format!("vm-bench-ml-{flavour}.log"));
            std::fs::copy(&boot.log, &kept)?;
        }
    }
    if let Some(path) = json_out {
        std::fs::write(path, format!("[\n  {}\n]\n", all.join(",\n  ")))?;
    }
    if let Some(log) = failed {
        bail!("the benchmark guest failed; log: {}", log.display());
    }
    Ok(())
}

impl flags::Bench {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        match self.what {
            flags::BenchWhat::Driver => return bench_driver(sh, self.json.as_deref()),
            flags::BenchWhat::Ml => return bench_ml(sh, self.json.as_deref(), self.kernel),
            flags::BenchWhat::Serve => return crate::bench_serve::run(sh, self.json.as_deref()),
            flags::BenchWhat::Sched => {}
        }
        let art = build::build_all(sh)?;
        eprintln!("bench: booting the scheduler workloads (vagx, then C drm_sched under RR, FIFO and FAIR)");
        let boot = vm::boot_with(&art, vm::Mode::Bench, BENCH_TIMEOUT, false, &self.filter)?;
        let records = parse(&boot.console);
        let warnings = vm::kernel_warnings(&boot.console);
        for w in &warnings {
            eprintln!("bench: kernel warning: {w}");
        }
        if records.is_empty() {
            bail!(
                "no benchmark results on the console; log: {}",
                boot.log.display()
            );
        }
        print!("{}", table(&records));
        if let Some(path) = &self.json {
            std::fs::write(path, json(&records))?;
            eprintln!(
                "bench: {} results written to {}",
                records.len(),
                path.display()
            );
        }
        eprintln!("bench: console log {}", boot.log.display());
        if vm::guest_status(&boot.console) != Some(0) || !warnings.is_empty() {
            bail!("the benchmark guest failed; log: {}", boot.log.display());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ml_goals_are_read_from_the_json_lines() {
        // Only the largest batch queued ahead counts: the other rows would turn both goals.
        let console = "x\nvagx-bench-ml-json: {\"kind\": \"model\", \"strategy\": \"data parallel\", \"launch\": \"ahead\", \"batch\": 256, \"gpus\": 4, \"speedup\": 3.7000}\n\
            vagx-bench-ml-json: {\"kind\": \"model\", \"strategy\": \"data parallel\", \"launch\": \"stream\", \"batch\": 256, \"gpus\": 4, \"speedup\": 1.2000}\n\
            vagx-bench-ml-json: {\"kind\": \"model\", \"strategy\": \"tensor parallel\", \"launch\": \"ahead\", \"batch\": 64, \"gpus\": 4, \"speedup\": 3.5000}\n\
            vagx-bench-ml-json: {\"kind\": \"model\", \"strategy\": \"tensor parallel\", \"launch\": \"ahead\", \"batch\": 256, \"gpus\": 4, \"speedup\": 1.5000}\n\
            vagx-bench-ml-json: {\"kind\": \"collective\", \"algorithm\": \"ring\", \"bytes\": 16777216, \"busbw_gbs\": 0.0300, \"copy_gbs\": 0.1000}\n\
            vagx-bench-ml-json: {\"kind\": \"collective\", \"algorithm\": \"one-shot\", \"bytes\": 16777216, \"busbw_gbs\": 0.0500, \"copy_gbs\": 0.1000}\n\
            vagx-bench-ml-json: {\"kind\": \"dispatcher\", \"policy\": \"least-loaded\", \"p99_ms\": 6.0000, \"imbalance\": 0.0500}\n\
            vagx-bench-ml-json: {\"kind\": \"dispatcher\", \"policy\": \"round-robin\", \"p99_ms\": 10.0000, \"imbalance\": 0.3000}\n\
            vagx-bench-ml-json: {\"kind\": \"fidelity\", \"gpu\": 0, \"on_time\": 0.9900}\n\
            vagx-bench-ml-json: {\"kind\": \"fidelity\", \"gpu\": 1, \"on_time\": 0.9000}\n";
        let results = ml_results(console);
        assert_eq!(results.len(), 10);
        let goals = ml_goals(&results);
        let line = |what: &str| goals.iter().find(|g| g.contains(what)).unwrap().clone();
        assert!(line("data parallel").starts_with("met"), "{goals:?}");
        assert!(line("tensor parallel").starts_with("not met"), "{goals:?}");
        assert!(line("pipeline parallel").starts_with("n/a"), "{goals:?}");
        // The better all-reduce algorithm at 16 MiB counts.
        assert!(line("busbw").ends_with("0.50"), "{goals:?}");
        assert!(
            line("p99").starts_with("met") && line("p99").ends_with("0.60"),
            "{goals:?}"
        );
        assert!(line("imbalance").starts_with("met"), "{goals:?}");
        // The worst GPU counts.
        assert!(line("on time").starts_with("not met") && line("on time").ends_with("0.90"));
    }

    #[test]
    fn driver_results_are_read_from_the_json_lines() {
        let console = "noise\nvagx-bench-driver: {\"mode\": 1, \"samples\": 400, \"latency_us\": {\"p50\": 310, \"p90\": 400, \"p99\": 900, \"max\": 1200}, \"contended_high_latency_us\": {\"p50\": 700, \"p90\": 1500, \"p99\": 2100, \"max\": 2500}, \"chain_latency_us\": {\"p50\": 900, \"p90\": 1000, \"p99\": 1300, \"max\": 1400}, \"chain_cpu_latency_us\": {\"p50\": 1100, \"p90\": 1200, \"p99\": 1500, \"max\": 1600}, \"throughput_jobs_per_s\": 3050.5}\n";
        let r = parse_driver(console);
        assert_eq!(
            r,
            [DriverResult {
                mode: 1,
                idle: [310, 400, 900, 1200],
                contended: [700, 1500, 2100, 2500],
                chain: [900, 1000, 1300, 1400],
                chain_cpu: [1100, 1200, 1500, 1600],
                jobs_per_s: 3050.5,
            }]
        );
        assert!(driver_table(&r).contains("firmware"));
        assert!(parse_driver("vagx-bench-driver: {\"mode\": 0}").is_empty());
    }

    const SAMPLE: &str = "\
[    1.0] rust_kernel: vagx_sched queue_overhead (fifo): Expected 1000000us, actual 1400000us
[    1.1]     # Subtest: vagx_sched_scheduler_two_clients
[    1.2] rust_kernel: 50% and 50% (fair, 2 credit(s)):
[    1.3] rust_kernel:     1: prio=normal sync=1 elapsed_ms=1500ms (ideal_ms=1000ms) cycle_time(min,avg,max)=3000,4000,9000 us latency_time(min,avg,max)=500,1500,6000 us
[    1.4] rust_kernel: 7 clients (fifo):
[    1.5] rust_kernel:     avg_max_min_delta(x100)=250
[    1.6] rust_kernel: vagx_sched cost (fifo): 100000 jobs in 4000000us, 40000 ns/job
[    2.0] vagx-bench: drm_sched policy 1
[    2.1]     # Subtest: drm_sched_scheduler_overhead_tests
[    2.2] Expected 1000000us, actual 1450000us
[    2.3] Expected 1000000us, actual 1500000us
[    2.4]     # Subtest: drm_sched_scheduler_two_clients_two_credits_tests
[    2.4]         # Subtest: drm_sched_scheduler_two_clients_test
[    2.5] 50% and 50%:
[    2.6] \t            pct1 cps1 qd1;  pct2 cps2 qd2
[    2.7]     1: prio=normal sync=1 elapsed_ms=1600ms (ideal_ms=1000ms) cycle_time(min,avg,max)=3100,4100,9100 us latency_time(min,avg,max)=600,1600,6100 us
[    2.8] drm_sched cost: 100000 jobs in 9000000us, 90000 ns/job
";

    #[test]
    fn both_schedulers_metrics_are_read() {
        let r = parse(SAMPLE);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0].source.column(), "vagx-fifo");
        assert!(matches!(
            &r[0].metric,
            Metric::Overhead {
                actual_us: 1400000,
                ..
            }
        ));
        assert!(matches!(
            &r[1].metric,
            Metric::Client {
                credits: 2,
                client: 1,
                latency_us: [500, 1500, 6000],
                ..
            }
        ));
        assert!(matches!(
            r[2].metric,
            Metric::Spread {
                clients: 7,
                delta_x100: 250
            }
        ));
        assert_eq!(r[3].source.column(), "vagx-fifo");
        assert_eq!(
            r[3].metric,
            Metric::Cost {
                jobs: 100000,
                ns_per_job: 40000
            }
        );
        assert_eq!(r[4].source.column(), "drm_sched-fifo");
        assert!(matches!(&r[5].metric, Metric::Overhead { test, .. } if test == "ping_pong"));
        assert_eq!(r[7].source.column(), "drm_sched-fifo");
        assert!(matches!(
            r[7].metric,
            Metric::Cost {
                ns_per_job: 90000,
                ..
            }
        ));
        match &r[6].metric {
            Metric::Client { case, credits, .. } => {
                assert_eq!(case, "50% and 50%");
                assert_eq!(*credits, 2);
            }
            m => panic!("{m:?}"),
        }
        let t = table(&r);
        assert!(t.contains("queue_overhead"));
        assert!(t.contains("1.400"));
        assert!(t.contains("40000") && t.contains("90000"));
        assert!(json(&r).contains("\"scheduler\": \"drm_sched\""));
    }
}
