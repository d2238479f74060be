//! Load benchmark of `/validate` (run with `cargo bench -p cstor-server --bench webhook_load`):
//! a 3-pool CSPC UPDATE over TLS on loopback, driven by wrk at 1, 16 and 64 connections,
//! against three servers in one run:
//! - ceiling: the same TLS + HTTP stack (`Bound::serve`) answering a fixed AdmissionReview;
//! - memory: our full handler with cluster facts in memory (the decision path);
//! - cached: our full handler with facts from watch caches of a real kube-apiserver (the
//!   deployed path, `cstor webhook`);
//! - live: our full handler listing facts from that apiserver on every request (docs/decisions/008).
//!
//! Prints a Markdown table for BENCHMARKS.md. Needs `wrk` (Debian) and `curl`.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::post;
use cstor_policy::{CspcFacts, NodeFact};
use cstor_server::tls::CertStore;
use cstor_server::{AppState, Bound, Limits, router};
use cstor_webhooks::facts::{CachedFacts, KubeFacts, MemoryFacts};
use serde_json::{Value, json};

const NODES: [&str; 3] = ["cstor-node-1", "cstor-node-2", "cstor-node-3"];

fn block_device(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
        "metadata": {"name": name, "namespace": "openebs", "labels": {"kubernetes.io/hostname": node}},
        "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": node},
                 "path": format!("/dev/{name}"), "partitioned": "No", "details": {}, "devlinks": []},
        "status": {"claimState": "Unclaimed", "state": "Active"},
    })
}

fn block_devices() -> Vec<Value> {
    let mut out = Vec::new();
    for (i, node) in NODES.iter().enumerate() {
        for d in 1..=4 {
            out.push(block_device(&format!("bd-{}-{d}", i + 1), node));
        }
    }
    out
}

/// Three mirror pools; the update adds a second mirror group to the first (pool expansion).
fn review_body() -> String {
    let pool = |n: usize, groups: &[&[&str]]| {
        json!({"nodeSelector": {"kubernetes.io/hostname": NODES[n - 1]},
               "dataRaidGroups": groups.iter().map(|g| json!({"blockDevices": g.iter().map(|b| json!({"blockDeviceName": b})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
               "poolConfig": {"dataRaidGroupType": "mirror"}})
    };
    let cspc = |pools: Value| {
        json!({"apiVersion": "cstor.openebs.io/v1", "kind": "CStorPoolCluster",
               "metadata": {"name": "bench", "namespace": "openebs", "uid": "u-1"},
               "spec": {"pools": pools}})
    };
    let old = cspc(json!([
        pool(1, &[&["bd-1-1", "bd-1-2"]]),
        pool(2, &[&["bd-2-1", "bd-2-2"]]),
        pool(3, &[&["bd-3-1", "bd-3-2"]]),
    ]));
    let new = cspc(json!([
        pool(1, &[&["bd-1-1", "bd-1-2"], &["bd-1-3", "bd-1-4"]]),
        pool(2, &[&["bd-2-1", "bd-2-2"]]),
        pool(3, &[&["bd-3-1", "bd-3-2"]]),
    ]));
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "bench-uid",
            "kind": {"group": "cstor.openebs.io", "version": "v1", "kind": "CStorPoolCluster"},
            "resource": {"group": "cstor.openebs.io", "version": "v1", "resource": "cstorpoolclusters"},
            "name": "bench", "namespace": "openebs", "operation": "UPDATE",
            "userInfo": {"username": "admin"},
            "object": new, "oldObject": old, "dryRun": false,
        }
    })
    .to_string()
}

fn memory_facts() -> MemoryFacts {
    let mut cspc = CspcFacts::default();
    for n in NODES {
        cspc.nodes.push(NodeFact {
            name: n.into(),
            labels: [("kubernetes.io/hostname".to_string(), n.to_string())].into(),
        });
    }
    for bd in block_devices() {
        let name = bd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        cspc.block_devices
            .insert(name, serde_json::from_value(bd).expect("block device"));
    }
    MemoryFacts {
        cspc: std::sync::Arc::new(cspc),
        ..MemoryFacts::default()
    }
}

struct Row {
    endpoint: &'static str,
    server: &'static str,
    connections: u32,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn millis(s: &str) -> f64 {
    let s = s.trim();
    let (num, factor) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().map(|v| v * factor).unwrap_or(f64::NAN)
}

fn wrk(url: &str, script: &std::path::Path, connections: u32, seconds: u32) -> (f64, f64, f64) {
    let threads = connections.min(2);
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk is needed: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "non-2xx answers under load:\n{text}"
    );
    let mut rps = f64::NAN;
    let (mut p50, mut p99) = (f64::NAN, f64::NAN);
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().unwrap_or(f64::NAN),
            ["50%", v] => p50 = millis(v),
            ["99%", v] => p99 = millis(v),
            _ => {}
        }
    }
    (rps, p50, p99)
}

/// A ConversionReview of one 16-pool v1alpha1 CSPC (mirror pools, 2 disks each) to v1.
fn conversion_body() -> String {
    let pools: Vec<Value> = (1..=16)
        .map(|i| {
            json!({"nodeSelector": {"kubernetes.io/hostname": format!("node-{i}")},
                   "raidGroups": [{"type": "mirror", "isWriteCache": false, "isSpare": false, "isReadCache": false,
                                   "blockDevices": [{"blockDeviceName": format!("bd-{i}-1")}, {"blockDeviceName": format!("bd-{i}-2")}]}],
                   "poolConfig": {"cacheFile": "", "defaultRaidGroupType": "mirror", "overProvisioning": false, "compression": "lz4"}})
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
        "request": {"uid": "bench-uid", "desiredAPIVersion": "cstor.openebs.io/v1", "objects": [{
            "apiVersion": "cstor.openebs.io/v1alpha1", "kind": "CStorPoolCluster",
            "metadata": {"name": "big", "namespace": "openebs", "uid": "u-2"},
            "spec": {"pools": pools},
        }]},
    })
    .to_string()
}

/// POSTs `body_file` to `url` with curl (TLS unverified: loopback, our own certificate).
fn curl_post(url: &str, body_file: &std::path::Path) -> String {
    let out = Command::new("curl")
        .args([
            "-sk",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", body_file.display()))
        .arg(url)
        .output()
        .expect("curl");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check_converted(url: &str, body_file: &std::path::Path) {
    let text = curl_post(url, body_file);
    assert!(
        text.contains("\"Success\"")
            && text.contains("bench-uid")
            && text.contains("dataRaidGroups"),
        "{url} did not convert the benchmark review: {text}"
    );
}

fn check_allowed(url: &str, body_file: &std::path::Path) {
    let text = curl_post(url, body_file);
    assert!(
        text.contains("\"allowed\":true") && text.contains("bench-uid"),
        "{url} did not admit the benchmark review: {text}"
    );
}

fn main() {
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let body = review_body();
    let body_file = dir.path().join("review.json");
    std::fs::write(&body_file, &body).expect("write body");
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]\n"
        ),
    )
    .expect("write script");

    let conversion = conversion_body();
    let conversion_file = dir.path().join("conversion.json");
    std::fs::write(&conversion_file, &conversion).expect("write conversion body");
    let conversion_script = dir.path().join("convert.lua");
    std::fs::write(
        &conversion_script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{conversion}]==]\n"
        ),
    )
    .expect("write script");
    let fixed_conversion = serde_json::to_vec(&cstor_webhooks::convert::review(
        serde_json::from_str(&conversion).expect("conversion review"),
    ))
    .expect("fixed conversion");

    // The live path's facts: a real apiserver with the nodes and disks as objects.
    let cp = cstor_local::testing::control_plane();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ports = rt.block_on(async {
        let admin = cp.client().await.expect("admin client");
        cstor_local::cluster::create_nodes(&admin, 3)
            .await
            .expect("nodes");
        cstor_local::components::ensure_namespace(&admin, "openebs")
            .await
            .expect("namespace");
        cstor_local::components::apply(&admin, &block_devices())
            .await
            .expect("block devices");

        let now = SystemTime::now();
        let ca = cstor_certs::new_ca(now).expect("ca");
        let serving = cstor_certs::issue_serving(
            &ca,
            &["localhost".into()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            now,
            Duration::from_secs(3600),
        )
        .expect("serving");
        let certs = Arc::new(CertStore::default());
        certs
            .load(&serving.cert_pem, &serving.key_pem, serving.not_after)
            .expect("load");
        let config = cstor_webhooks::Config {
            openebs_namespace: "openebs".into(),
            operator_accounts: cstor_policy::owned::OperatorAccounts(Vec::new()),
        };
        let mut ports = Vec::new();

        let fixed = cstor_webhooks::validate::respond(
            &serde_json::from_str::<
                kube::core::admission::AdmissionReview<kube::core::DynamicObject>,
            >(&body)
            .expect("review")
            .try_into()
            .expect("request"),
            cstor_policy::Verdict::allow(),
        )
        .into_review();
        let fixed = serde_json::to_vec(&fixed).expect("fixed answer");
        let ceiling = Router::new()
            .route(
                "/validate",
                // The body is received (as every review is) and ignored.
                post(move |_body: axum::body::Bytes| {
                    let fixed = fixed.clone();
                    async move { ([("content-type", "application/json")], fixed) }
                }),
            )
            .route(
                "/convert",
                post(move |_body: axum::body::Bytes| {
                    let fixed = fixed_conversion.clone();
                    async move { ([("content-type", "application/json")], fixed) }
                }),
            );
        let memory = {
            let state = Arc::new(AppState::new(
                memory_facts(),
                config.clone(),
                certs.clone(),
                Limits::default(),
            ));
            state.facts_ready.store(true, Ordering::Relaxed);
            router(state)
        };
        let cached = {
            let (facts, fill) = CachedFacts::new(admin.clone(), "openebs", Duration::from_secs(3));
            tokio::spawn(fill);
            while !facts.is_ready() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let state = Arc::new(AppState::new(
                facts,
                config.clone(),
                certs.clone(),
                Limits::default(),
            ));
            state.facts_ready.store(true, Ordering::Relaxed);
            router(state)
        };
        let live = {
            let facts = KubeFacts::new(admin.clone(), Duration::from_secs(3));
            let state = Arc::new(AppState::new(
                facts,
                config.clone(),
                certs.clone(),
                Limits::default(),
            ));
            state.facts_ready.store(true, Ordering::Relaxed);
            router(state)
        };
        for app in [ceiling, memory, cached, live] {
            let bound = Bound::bind("127.0.0.1:0".parse().expect("addr"), certs.clone())
                .await
                .expect("bind");
            ports.push(bound.local_addr().expect("addr").port());
            tokio::spawn(bound.serve(app, std::future::pending(), Duration::from_secs(1)));
        }
        ports
    });

    let names = ["ceiling", "memory", "cached", "live"];
    for (name, port) in names.iter().zip(&ports) {
        check_allowed(&format!("https://127.0.0.1:{port}/validate"), &body_file);
        eprintln!("{name} server on port {port} admits the review");
    }
    let mut rows = Vec::new();
    for connections in [1u32, 16, 64] {
        for (name, port) in names.iter().zip(&ports) {
            let url = format!("https://127.0.0.1:{port}/validate");
            // A short warm-up so connection setup and caches are not measured.
            let _ = wrk(&url, &script, connections, 1);
            let (rps, p50_ms, p99_ms) = wrk(&url, &script, connections, seconds);
            eprintln!(
                "{name:>8} c={connections:<3} {rps:>9.0} req/s  p50 {p50_ms:.2} ms  p99 {p99_ms:.2} ms"
            );
            rows.push(Row {
                endpoint: "/validate",
                server: name,
                connections,
                rps,
                p50_ms,
                p99_ms,
            });
        }
    }
    // Conversion: a 16-pool CSPC through /convert, ours (facts unused) beside the ceiling.
    for port in ports.iter().take(2) {
        check_converted(
            &format!("https://127.0.0.1:{port}/convert"),
            &conversion_file,
        );
    }
    for connections in [1u32, 16, 64] {
        for (name, port) in names.iter().zip(&ports).take(2) {
            let url = format!("https://127.0.0.1:{port}/convert");
            let _ = wrk(&url, &conversion_script, connections, 1);
            let (rps, p50_ms, p99_ms) = wrk(&url, &conversion_script, connections, seconds);
            eprintln!(
                "convert {name:>8} c={connections:<3} {rps:>9.0} req/s  p50 {p50_ms:.2} ms  p99 {p99_ms:.2} ms"
            );
            rows.push(Row {
                endpoint: "/convert",
                server: if *name == "memory" { "ours" } else { name },
                connections,
                rps,
                p50_ms,
                p99_ms,
            });
        }
    }
    println!("| endpoint | connections | server | requests/s | p50 ms | p99 ms | vs ceiling |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    for row in &rows {
        let ceiling = rows
            .iter()
            .find(|r| {
                r.server == "ceiling"
                    && r.connections == row.connections
                    && r.endpoint == row.endpoint
            })
            .map(|r| r.rps)
            .unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} % |",
            row.endpoint,
            row.connections,
            row.server,
            row.rps,
            row.p50_ms,
            row.p99_ms,
            100.0 * row.rps / ceiling
        );
    }
    rt.shutdown_timeout(Duration::from_secs(2));
}
