//! The istgt control client against every exchange captured from a real istgt, served from a
//! unix socket exactly as recorded (banner first, each line's text and its CRLF in separate
//! writes, the connection left open after the reply), plus a closed connection, a reply that
//! never ends, and the REPLICA JSON in every captured state mapped to CStorVolume status.

use std::path::Path;
use std::time::Duration;

use cstor_agents::volume_manager::istgt::reply::{self, ReplyError};
use cstor_agents::volume_manager::istgt::{Istgt, IstgtError};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

fn exchanges() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/istgt/control.json"),
    )
    .expect("fixture");
    let all: Vec<Value> = serde_json::from_str(&text).expect("json");
    all.iter()
        .map(|e| {
            (
                e["send"].as_str().expect("send").to_string(),
                e["recv"].as_str().expect("recv").to_string(),
            )
        })
        .collect()
}

/// Serves one connection: expects `request`, answers `recv` line by line in split writes,
/// then holds the connection open (istgt waits for the next command).
fn serve_once(path: &Path, request: String, recv: String, close_after: bool) {
    let listener = UnixListener::bind(path).expect("bind");
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut lines = recv.split_inclusive("\r\n");
        // The banner comes first, before the request is read.
        if let Some(banner) = lines.next() {
            let text = banner.trim_end_matches("\r\n");
            s.write_all(text.as_bytes()).await.expect("banner");
            tokio::time::sleep(Duration::from_millis(2)).await;
            s.write_all(b"\r\n").await.expect("crlf");
        }
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n") {
            if s.read(&mut b).await.unwrap_or(0) == 0 {
                return;
            }
            got.push(b[0]);
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            request,
            "the request as istgt receives it"
        );
        for line in lines {
            let text = line.trim_end_matches("\r\n");
            s.write_all(text.as_bytes()).await.expect("line");
            tokio::time::sleep(Duration::from_millis(2)).await;
            s.write_all(b"\r\n").await.expect("crlf");
        }
        if !close_after {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
}

#[tokio::test]
async fn every_captured_exchange_reads_back_as_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let all = exchanges();
    assert_eq!(all.len(), 83);
    for (i, (send, recv)) in all.iter().enumerate() {
        let path = dir.path().join(format!("ctl-{i}"));
        serve_once(&path, send.clone(), recv.clone(), false);
        let client = Istgt::new(&path, Duration::from_secs(5));
        let request = send.trim_end_matches("\r\n");
        let got = client.command(request).await;
        // What the recording says: the last line decides, the lines between banner and it are data.
        let lines: Vec<&str> = recv.split("\r\n").filter(|l| !l.is_empty()).collect();
        let last = lines.last().expect("a final line");
        let word = request
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_uppercase();
        if let Some(message) = last.strip_prefix("ERR ") {
            match got {
                Err(IstgtError::Reply(ReplyError::Refused {
                    command,
                    message: m,
                })) => {
                    assert_eq!(
                        (command.as_str(), m.as_str()),
                        (word.as_str(), message),
                        "{request}"
                    );
                }
                other => panic!("{request}: expected refusal {message:?}, got {other:?}"),
            }
        } else {
            assert_eq!(*last, format!("OK {word}"), "{request}");
            let reply = got.unwrap_or_else(|e| panic!("{request}: {e}"));
            assert_eq!(
                reply.data.len(),
                lines.len() - 2,
                "{request}: {:?}",
                reply.data
            );
            for d in &reply.data {
                assert!(
                    !d.starts_with(&word),
                    "{request}: command word stripped: {d:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn replica_reports_in_every_captured_state_map_to_volume_status() {
    let all = exchanges();
    let replica_data = |recv: &str| -> Vec<String> {
        recv.split("\r\n")
            .filter(|l| l.starts_with("REPLICA "))
            .map(|l| l["REPLICA".len()..].trim_start().to_string())
            .collect()
    };
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (send, recv) in &all {
        if !send.starts_with("REPLICA") {
            continue;
        }
        let data = replica_data(recv);
        match reply::parse_replicas(&data) {
            Err(ReplyError::Malformed { what, .. }) => {
                assert_eq!(what, "empty volume status from istgt");
                *seen.entry("no volume".into()).or_default() += 1;
            }
            Err(e) => panic!("{e}"),
            Ok(volumes) => {
                let v = &volumes[0];
                let healthy = v.replicas.iter().filter(|r| r.mode == "Healthy").count();
                let key = format!("{} {} of {} healthy", v.phase(), healthy, v.replicas.len());
                *seen.entry(key).or_default() += 1;
                for r in &v.replicas {
                    assert!(
                        r.id.chars().all(|c| c.is_ascii_digit()),
                        "zvol GUID as id: {}",
                        r.id
                    );
                    assert!(matches!(r.mode.as_str(), "Healthy" | "Degraded"));
                    assert!(r.inflight_read.parse::<u64>().is_ok());
                    assert!(r.quorum == "1" || r.quorum == "0");
                }
            }
        }
    }
    // Every state the captures hold: no LU, no replica (Init), 1 of 3 (Offline), 2 of 3
    // not rebuilt (Degraded), healthy, RF=4 after losing two (Offline with 2 healthy).
    for want in [
        "no volume",
        "Init 0 of 0 healthy",
        "Offline 0 of 1 healthy",
        "Healthy 3 of 3 healthy",
        "Offline 2 of 2 healthy",
    ] {
        assert!(
            seen.contains_key(want),
            "state {want} not seen; seen {seen:?}"
        );
    }
    // The exact mapping of one report, as the Go sidecar stores it.
    let one = r#"{"volumeStatus":[{"name":"pvc-0a1b2c3d","status":"Degraded","replicaStatus":[{"replicaId":"6161","Address":"127.0.0.1","Mode":"Degraded","checkpointedIOSeq":"1000","inflightRead":"0","inflightWrite":"0","inflightSync":"0","quorum":"1","upTime":4}]}]}"#;
    let v = reply::parse_replicas(&[one.to_string()]).expect("parse");
    assert_eq!(
        serde_json::to_value(&v[0].replicas).expect("json"),
        serde_json::json!([{"replicaId":"6161","mode":"Degraded","checkpointedIOSeq":"1000","inflightRead":"0","inflightWrite":"0","inflightSync":"0","upTime":4,"quorum":"1"}])
    );
    assert_eq!(v[0].phase(), "Degraded");
}

#[tokio::test]
async fn an_uninitialised_istgt_a_closed_socket_and_a_reply_that_never_ends_are_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let banner =
        "iSCSI Target Controller version istgt:0.5.20121028:20:45:43:Dec  4 2026 on  from \r\n";
    // Before replication is up istgt refuses every command and closes.
    let p = dir.path().join("uninit");
    serve_once(
        &p,
        "REPLICA\r\n".into(),
        format!("{banner}ERR replication module not initialized\r\n"),
        true,
    );
    match Istgt::new(&p, Duration::from_secs(5)).replicas().await {
        Err(IstgtError::Reply(ReplyError::Refused { message, .. })) => {
            assert_eq!(message, "replication module not initialized")
        }
        other => panic!("{other:?}"),
    }
    // Closed after the banner.
    let p = dir.path().join("closed");
    serve_once(&p, "STATUS\r\n".into(), banner.into(), true);
    assert!(matches!(
        Istgt::new(&p, Duration::from_secs(5)).status().await,
        Err(IstgtError::Closed { .. })
    ));
    // A data line but no final line: the deadline ends the call, naming what was read.
    let p = dir.path().join("hung");
    serve_once(
        &p,
        "REPLICA\r\n".into(),
        format!("{banner}REPLICA  {{\"volumeStatus\":[]}}\r\n"),
        false,
    );
    let started = std::time::Instant::now();
    match Istgt::new(&p, Duration::from_millis(300)).replicas().await {
        Err(IstgtError::Deadline { partial, .. }) => assert_eq!(partial.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    // REFRESH while another runs: a failure that does not say ERR.
    let p = dir.path().join("busy");
    serve_once(
        &p,
        "REFRESH\r\n".into(),
        format!("{banner}{}\r\n", reply::REFRESH_BUSY),
        false,
    );
    assert!(matches!(
        Istgt::new(&p, Duration::from_secs(5))
            .command("REFRESH")
            .await,
        Err(IstgtError::Reply(ReplyError::Refused { .. }))
    ));
    // No socket at all.
    assert!(matches!(
        Istgt::new(dir.path().join("absent"), Duration::from_secs(1))
            .status()
            .await,
        Err(IstgtError::Io { .. })
    ));
}
