//! Load on `rollgate serve`'s `POST /v1/rollouts`: N concurrent clients,
//! each submitting M plans one after another; prints the latency
//! distribution of the submissions (p50, p99, max) and the rate.
//!
//! ```sh
//! mkdir -p /tmp/load && echo 0123456789abcdef0123 > /tmp/load/token
//! rollgate serve --state /tmp/load/state.db --listen 127.0.0.1:8480 \
//!   --token-file /tmp/load/token --workdir /tmp/load &
//! cargo run -p rollgate-cli --example api_load -- http://127.0.0.1:8480 /tmp/load/token 200 5
//! ```
//!
//! Each plan is a one-target all-at-once rollout of its own service, with a
//! command deployer writing under the server's `--workdir`: the server
//! validates it, reads what the target runs (one process), records it, and
//! drives it while the other submissions arrive.

use std::time::{Duration, Instant};

const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn plan(client: usize, i: usize) -> String {
    format!(
        r#"service = "load-{client}-{i}"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["t{client}-{i}"]

[deployer]
kind = "command"
deploy = "mkdir -p srv/{{target}} && echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current 2>/dev/null || echo v1"
ready = "true"
timeout = "60s"

[strategy]
kind = "all-at-once"
"#
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token_file, clients, each] = args.as_slice() else {
        return Err("usage: api_load URL TOKEN_FILE CLIENTS REQUESTS_PER_CLIENT".into());
    };
    let token = std::fs::read_to_string(token_file)?.trim().to_owned();
    let clients: usize = clients.parse()?;
    let each: usize = each.parse()?;
    let url = format!("{}/v1/rollouts", url.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut latencies, errors, wall) = rt.block_on(async move {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(clients)
            .build()?;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (http, url, token) = (http.clone(), url.clone(), token.clone());
            tasks.spawn(async move {
                let mut out = Vec::with_capacity(each);
                let mut errors = Vec::new();
                for i in 0..each {
                    let t = Instant::now();
                    let res = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("Content-Type", "application/toml")
                        .body(plan(c, i))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().as_u16() == 201 => out.push(t.elapsed()),
                        Ok(r) => errors.push(format!(
                            "{}: {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (out, errors)
            });
        }
        let mut all = Vec::new();
        let mut errors = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (l, e) = done?;
            all.extend(l);
            errors.extend(e);
        }
        Ok::<_, Box<dyn std::error::Error>>((all, errors, start.elapsed()))
    })?;
    latencies.sort_unstable();
    let q = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} clients x {each}: {} created, {} errors, {:.0}/s; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        clients,
        latencies.len(),
        errors.len(),
        latencies.len() as f64 / wall.as_secs_f64(),
        q(0.50),
        q(0.90),
        q(0.99),
        q(1.0)
    );
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err("some submissions failed".into())
    }
}
