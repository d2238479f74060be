//! The registration socket istgt calls: who may join (known replicas, new ones while there is
//! room, never a lowered factor), and the answer on the wire (`Ok` / `Err` + CRLF) within the
//! budget istgt allows, for the line captured from a real istgt.

use std::time::Duration;

use cstor_agents::volume_manager::istgt::register::{self, Registration};
use cstor_api::cstor_v1::CStorVolume;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The line a real istgt sent (docs: captured with its mock replicas).
const CAPTURED: &str = "{\"replicaId\":\"8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B\",\"replicaZvolGuid\":\"6161\",\"volumeName\":\"pvc-0a1b2c3d\",\"replicationFactor\":3,\"consistencyFactor\":2}\r\n";

fn cv(known: Value) -> CStorVolume {
    serde_json::from_value(json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
        "metadata": {"name": "pvc-0a1b2c3d", "namespace": "openebs", "uid": "u"},
        "spec": {"capacity": "1Gi", "targetIP": "10.0.0.1", "replicationFactor": 3,
                 "consistencyFactor": 2, "desiredReplicationFactor": 3,
                 "replicaDetails": {"knownReplicas": known}},
    }))
    .expect("cv")
}

fn reg(id: &str, guid: &str, rf: i64, cf: i64) -> Registration {
    Registration {
        replica_id: id.into(),
        replica_zvol_guid: guid.into(),
        volume_name: "pvc-0a1b2c3d".into(),
        replication_factor: rf,
        consistency_factor: cf,
    }
}

#[test]
fn who_may_register() {
    let captured = register::parse(CAPTURED).expect("the captured line parses");
    assert_eq!(
        captured,
        reg("8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B", "6161", 3, 2)
    );
    // Fresh volume: the first replica joins.
    let ok = register::decide(&cv(json!({})), &captured).expect("fresh volume");
    assert_eq!(
        ok.known_replicas
            .get("8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B")
            .map(String::as_str),
        Some("6161")
    );
    assert_eq!((ok.replication_factor, ok.consistency_factor), (3, 2));
    // A known replica with a new GUID (rebuilt or replaced) is taken.
    let full = cv(json!({"A": "1", "B": "2", "8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B": "5"}));
    let ok = register::decide(&full, &captured).expect("known replica");
    assert_eq!(
        ok.known_replicas
            .get("8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B")
            .map(String::as_str),
        Some("6161")
    );
    assert_eq!(ok.known_replicas.len(), 3);
    // Scale-up: istgt sends RF+1 and (RF+1)/2+1 once the desired factor allows it.
    let cases: Vec<(CStorVolume, Registration, &str)> = vec![
        (
            cv(json!({"A": "1", "B": "2", "C": "3"})),
            reg("D", "4", 3, 2),
            "replica D is not known and volume pvc-0a1b2c3d already has its 3 desired replicas",
        ),
        (
            cv(json!({"A": "1"})),
            reg("A", "1", 2, 2),
            "registration lowers the factors of pvc-0a1b2c3d (rf 3 → 2, cf 2 → 2)",
        ),
        (
            cv(json!({})),
            Registration {
                volume_name: "other".into(),
                ..reg("A", "1", 3, 2)
            },
            "registration for volume other reached the target of pvc-0a1b2c3d",
        ),
    ];
    for (v, r, want) in cases {
        assert_eq!(register::decide(&v, &r).expect_err(want), want);
    }
    let empty = register::decide(&cv(json!({})), &reg("A", "", 3, 2)).expect_err("empty guid");
    assert!(
        empty.starts_with("registration with empty fields"),
        "{empty}"
    );
    assert!(register::parse("not json\r\n").is_err());
}

async fn ask(path: &std::path::Path, line: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.expect("connect");
    s.write_all(line).await.expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("answer");
    out
}

#[tokio::test]
async fn istgt_gets_ok_or_err_within_its_budget() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("volume_mgmt_sock");
    let listener = register::bind(&path).expect("bind");
    let volume = cv(json!({"A": "1", "B": "2", "C": "3"}));
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rec = recorded.clone();
    let server = tokio::spawn(register::serve(
        listener,
        Duration::from_millis(500),
        move |r: Registration| {
            let volume = volume.clone();
            let rec = rec.clone();
            async move {
                if r.replica_id == "SLOW" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let accepted = register::decide(&volume, &r)?;
                rec.lock().map_err(|e| e.to_string())?.push(accepted);
                Ok(())
            }
        },
    ));
    // A known replica (the line split across two writes, as a slow peer might send it).
    let mut s = UnixStream::connect(&path).await.expect("connect");
    s.write_all(br#"{"replicaId":"A","replicaZvolGuid":"9","volumeName":"pvc-0a1b2c3d","#)
        .await
        .expect("1");
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.write_all(b"\"replicationFactor\":3,\"consistencyFactor\":2}\r\n")
        .await
        .expect("2");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("answer");
    assert_eq!(out, "Ok\r\n");
    assert_eq!(
        recorded.lock().expect("lock")[0]
            .known_replicas
            .get("A")
            .map(String::as_str),
        Some("9")
    );
    // The captured line, not in the trust record of a full volume: Err, nothing recorded.
    assert_eq!(ask(&path, CAPTURED.as_bytes()).await, "Err\r\n");
    assert_eq!(recorded.lock().expect("lock").len(), 1);
    // Not decided within the budget: Err, well inside istgt's 20 s.
    let started = std::time::Instant::now();
    let slow = br#"{"replicaId":"SLOW","replicaZvolGuid":"7","volumeName":"pvc-0a1b2c3d","replicationFactor":3,"consistencyFactor":2}"#;
    let mut line = slow.to_vec();
    line.extend_from_slice(b"\r\n");
    assert_eq!(ask(&path, &line).await, "Err\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Garbage: Err.
    assert_eq!(ask(&path, b"hello\r\n").await, "Err\r\n");
    server.abort();
}
