//! Generates two large configuration documents and times end-to-end drift
//! detection (read + parse + diff + report) for rollgate-drift and for the
//! `json-patch` crate, side by side.
//!
//! ```text
//! rollgate-drift-bench gen DIR [MB] [CHANGES] [SEED]
//! rollgate-drift-bench rollgate DIR [RULES.toml]
//! rollgate-drift-bench owned DIR [RULES.toml]
//! rollgate-drift-bench parse DIR
//! rollgate-drift-bench json-patch DIR
//! ```
//!
//! `rollgate` does what `rollgate drift` does: both files read and parsed at
//! once into compact trees (ADR 0004), `Differ::diff_trees`, the JSON report
//! and patch rendered, the differences checked. `owned` is the same on the
//! owned `Node` model (`load_file`, `Differ::diff`), for comparison. `parse`
//! only reads and parses, and prints the trees' size.
//!
//! `gen` writes `desired.json`, `live.json` (every keyed list shuffled, plus
//! CHANGES real changes) and `expected.txt` (the JSON Pointers, in DESIRED,
//! of the real changes). The runners print one line of `key=value` pairs.

mod peer;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, seeded.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[derive(Clone)]
struct Env {
    name: String,
    value: String,
}

#[derive(Clone)]
struct Container {
    name: String,
    image: String,
    cpu: String,
    memory: String,
    env: Vec<Env>,
    ports: Vec<(String, u32)>,
}

#[derive(Clone)]
struct Service {
    name: String,
    replicas: u32,
    labels: Vec<(String, String)>,
    containers: Vec<Container>,
}

fn service(rng: &mut Rng, i: usize) -> Service {
    let containers = (0..2)
        .map(|c| Container {
            name: if c == 0 {
                "app".into()
            } else {
                "sidecar".into()
            },
            image: format!(
                "registry.example.com/team-{}/svc-{i}:{}.{}.{}",
                i % 97,
                rng.below(5),
                rng.below(20),
                rng.below(50)
            ),
            cpu: format!("{}m", 100 * (1 + rng.below(8))),
            memory: format!("{}Mi", 128 * (1 + rng.below(8))),
            env: (0..12)
                .map(|e| Env {
                    name: format!("VAR_{e:02}_{}", ["HOST", "PORT", "MODE", "LEVEL"][e % 4]),
                    value: format!("value-{}-{}", i, rng.next() % 100_000),
                })
                .collect(),
            ports: (0..3)
                .map(|p| (format!("port-{p}"), 8000 + p as u32))
                .collect(),
        })
        .collect();
    Service {
        name: format!("svc-{i:07}"),
        replicas: 1 + rng.below(9) as u32,
        labels: vec![
            ("team".into(), format!("team-{}", i % 97)),
            ("tier".into(), ["web", "api", "worker"][i % 3].into()),
        ],
        containers,
    }
}

fn esc(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn write_services(services: &[Service], out: &mut String) {
    out.push_str("{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n");
    for (k, s) in services.iter().enumerate() {
        if k > 0 {
            out.push_str(",\n");
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"replicas\":{},\"labels\":{{",
            esc(&s.name),
            s.replicas
        );
        for (i, (lk, lv)) in s.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}:{}", esc(lk), esc(lv));
        }
        out.push_str("},\"containers\":[");
        for (ci, c) in s.containers.iter().enumerate() {
            if ci > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"name\":{},\"image\":{},\"resources\":{{\"limits\":{{\"cpu\":{},\"memory\":{}}}}},\"env\":[",
                esc(&c.name),
                esc(&c.image),
                esc(&c.cpu),
                esc(&c.memory)
            );
            for (ei, e) in c.env.iter().enumerate() {
                if ei > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{\"name\":{},\"value\":{}}}",
                    esc(&e.name),
                    esc(&e.value)
                );
            }
            out.push_str("],\"ports\":[");
            for (pi, (pn, pp)) in c.ports.iter().enumerate() {
                if pi > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{\"name\":{},\"containerPort\":{pp}}}", esc(pn));
            }
            out.push_str("]}");
        }
        out.push_str("]}");
    }
    out.push_str("\n]}\n");
}

fn generate(dir: &Path, mb: usize, changes: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(seed.max(1));
    // One service is about 1.84 KB of JSON.
    let n = mb * 1_000_000 / 1_840;
    let desired: Vec<Service> = (0..n).map(|i| service(&mut rng, i)).collect();
    let mut live = desired.clone();
    // Real changes, each at a distinct service, recorded as DESIRED paths
    // (or LIVE-only paths for additions).
    let mut expected = BTreeSet::new();
    let mut picked = BTreeSet::new();
    while picked.len() < changes.min(n) {
        picked.insert(rng.below(n));
    }
    for (k, &i) in picked.iter().enumerate() {
        let s = &mut live[i];
        match k % 4 {
            0 => {
                s.containers[0].image.push_str("-hotfix");
                expected.insert(format!("/items/{i}/containers/0/image"));
            }
            1 => {
                let e = rng.below(12);
                s.containers[1].env[e].value = "changed-by-hand".into();
                expected.insert(format!("/items/{i}/containers/1/env/{e}/value"));
            }
            2 => {
                s.replicas += 1;
                expected.insert(format!("/items/{i}/replicas"));
            }
            _ => {
                let e = rng.below(12);
                s.containers[0].env.remove(e);
                expected.insert(format!("/items/{i}/containers/0/env/{e}"));
            }
        }
    }
    // Reorder every keyed list in LIVE: none of this is drift.
    rng.shuffle(&mut live);
    for s in &mut live {
        rng.shuffle(&mut s.containers);
        for c in &mut s.containers {
            rng.shuffle(&mut c.env);
            rng.shuffle(&mut c.ports);
        }
    }
    std::fs::create_dir_all(dir)?;
    let mut out = String::with_capacity(mb * 1_100_000);
    write_services(&desired, &mut out);
    std::fs::write(dir.join("desired.json"), &out)?;
    let desired_len = out.len();
    out.clear();
    write_services(&live, &mut out);
    std::fs::write(dir.join("live.json"), &out)?;
    let mut exp = String::new();
    for p in &expected {
        exp.push_str(p);
        exp.push('\n');
    }
    std::fs::write(dir.join("expected.txt"), exp)?;
    println!(
        "generated services={n} desired_bytes={desired_len} live_bytes={} changes={}",
        out.len(),
        expected.len()
    );
    Ok(())
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Reads and parses both files at once, as `rollgate drift` does: each
/// streamed a block of lines at a time (the text is never whole in memory),
/// on two threads. Returns the documents, the seconds taken and the bytes.
fn load_both<T: Send>(
    dir: &Path,
    load: impl Fn(&Path) -> Result<T, rollgate_drift::Error> + Sync,
) -> Result<(T, T, f64, f64), String> {
    let t0 = Instant::now();
    let (d_path, l_path) = (dir.join("desired.json"), dir.join("live.json"));
    let (desired, live) = std::thread::scope(|scope| {
        let l = scope.spawn(|| load(&l_path));
        let d = load(&d_path);
        (d, l.join().map_err(|_| "thread panicked".to_owned()))
    });
    let desired = desired.map_err(|e| e.to_string())?;
    let live = live?.map_err(|e| e.to_string())?;
    let parse = secs(t0);
    let bytes = (std::fs::metadata(&d_path).map_err(|e| e.to_string())?.len()
        + std::fs::metadata(&l_path).map_err(|e| e.to_string())?.len()) as f64;
    Ok((desired, live, parse, bytes))
}

/// End to end: read + parse, diff, JSON report and patch, then the
/// differences checked against `expected.txt`.
fn run_diff<T: Send>(
    dir: &Path,
    rules: Option<&Path>,
    tool: &str,
    load: impl Fn(&Path) -> Result<T, rollgate_drift::Error> + Sync,
    diff: impl Fn(&rollgate_drift::Differ, &T, &T) -> rollgate_drift::Report,
) -> Result<(), String> {
    use rollgate_drift::{Differ, RenderOptions, Rules, render_json};
    let rules = match rules {
        Some(path) => Rules::from_file(path).map_err(|e| e.to_string())?,
        None => Rules::new(),
    };
    let t0 = Instant::now();
    let (desired, live, parse, bytes) = load_both(dir, load)?;
    let t2 = Instant::now();
    let report = diff(&Differ::new(rules), &desired, &live);
    let diff = secs(t2);
    let t3 = Instant::now();
    let json = render_json(&report, &RenderOptions::new("desired.json", "live.json"));
    let patch = report.patch().to_json();
    let render = secs(t3);
    let total = secs(t0);
    let expected: BTreeSet<String> = std::fs::read_to_string(dir.join("expected.txt"))
        .map_err(|e| e.to_string())?
        .lines()
        .map(str::to_owned)
        .collect();
    let found: BTreeSet<String> = report
        .differences()
        .iter()
        .map(|d| d.path.clone())
        .collect();
    let false_drifts = found.difference(&expected).count();
    let missed = expected.difference(&found).count();
    println!(
        "tool={tool} total_s={total:.3} read_parse_s={parse:.3} read_parse_mb_s={:.0} diff_s={diff:.3} render_s={render:.3} differences={} false_drifts={false_drifts} missed={missed} report_bytes={} patch_bytes={}",
        bytes / 1e6 / parse,
        report.differences().len(),
        json.len(),
        patch.len()
    );
    drop((desired, live));
    Ok(())
}

/// Read + parse only, into the trees `rollgate drift` compares, with their
/// size.
fn run_parse(dir: &Path) -> Result<(), String> {
    let limits = rollgate_drift::Limits::default();
    let (desired, live, parse, bytes) =
        load_both(dir, |p| rollgate_drift::load_tree_file(p, &limits))?;
    let slots = desired.slot_count() + live.slot_count();
    let text = desired.text_bytes() + live.text_bytes();
    let lines = desired.line_count() + live.line_count();
    let used = desired.used_bytes() + live.used_bytes();
    println!(
        "tool=parse read_parse_s={parse:.3} read_parse_mb_s={:.0} slots={slots} text_bytes={text} lines={lines} tree_bytes={used} tree_bytes_per_input_byte={:.3}",
        bytes / 1e6 / parse,
        used as f64 / bytes
    );
    drop((desired, live));
    Ok(())
}

// The allocator `rollgate drift` uses, so the harness measures what the CLI does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As `rollgate` does (see its `no_huge_pages`), for every tool measured
    // here alike: mimalloc's transparent huge pages are slow to fault in on
    // this VM. `DRIFT_BENCH_THP=on` keeps them, to measure that case.
    let thp_off = std::env::var("DRIFT_BENCH_THP").map_or(true, |v| v != "on");
    if thp_off {
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(2).map_or("target/drift-bench", String::as_str));
    let result = match args.get(1).map(String::as_str) {
        Some("gen") => {
            let mb = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
            let changes = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(300);
            let seed = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(42);
            generate(dir, mb, changes, seed).map_err(|e| e.to_string())
        }
        Some("rollgate") => {
            let limits = rollgate_drift::Limits::default();
            run_diff(
                dir,
                args.get(3).map(Path::new),
                if thp_off {
                    "rollgate-drift config=mimalloc,thp-off"
                } else {
                    "rollgate-drift config=mimalloc,thp-on"
                },
                |p| rollgate_drift::load_tree_file(p, &limits),
                |differ, d, l| differ.diff_trees(d, l),
            )
        }
        Some("owned") => {
            let limits = rollgate_drift::Limits::default();
            run_diff(
                dir,
                args.get(3).map(Path::new),
                "rollgate-drift-owned",
                |p| rollgate_drift::load_file(p, &limits),
                |differ, d, l| differ.diff(d, l),
            )
        }
        Some("json-patch") => peer::run(
            dir,
            if thp_off {
                "mimalloc,thp-off"
            } else {
                "mimalloc,thp-on"
            },
        ),
        Some("parse") => run_parse(dir),
        _ => Err(
            "usage: rollgate-drift-bench gen|rollgate|owned|parse|json-patch DIR [MB] [CHANGES] [SEED]"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("rollgate-drift-bench: {e}");
        std::process::exit(2);
    }
}
