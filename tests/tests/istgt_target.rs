//! The volume-manager beside istgt, end to end against the real apiserver: istgt is played
//! from the exchanges captured from a real istgt (agents/tests/fixtures/istgt/control.json),
//! served on a unix socket exactly as recorded (banner first, each line's text and its CRLF
//! in separate writes), and the test plays istgt's replica registrations with the captured
//! lines. The volume goes Init → Offline (1 of 3) → Healthy, is resized, snapshotted, scaled
//! up and down, and reports Offline at a stop; a CV istgt cannot serve is Invalid, and a conf
//! istgt silently rejects (REFRESH OK, no LU) is an Error.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cstor_agents::volume_manager::istgt::serve::Paths;
use cstor_agents::volume_manager::{Config, Target, tgt};
use cstor_api::cstor_v1::CStorVolume;
use cstor_local::testing;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The volume every capture is about.
const VOLUME: &str = "pvc-0a1b2c3d";
/// Replica ids and zvol GUIDs of the captured registrations.
const R1: (&str, &str) = ("8D1E9A0C3B2F4E5D6A7B8C9D0E1F2A3B", "6161");
const R2: (&str, &str) = ("1F2E3D4C5B6A79880716253443526170", "6162");
const R3: (&str, &str) = ("C0FFEE00112233445566778899AABBCC", "6163");
const R4: (&str, &str) = ("0123456789ABCDEF0123456789ABCDEF", "6164");

fn captures() -> Vec<(String, String)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/tests/fixtures/istgt/control.json");
    let text = std::fs::read_to_string(&path).expect("istgt fixtures");
    let all: Vec<Value> = serde_json::from_str(&text).expect("fixtures are JSON");
    all.iter()
        .map(|e| {
            (
                e["send"].as_str().expect("send").to_string(),
                e["recv"].as_str().expect("recv").to_string(),
            )
        })
        .collect()
}

/// A played istgt: each request is answered with the captured reply of the same request
/// (whitespace-trimmed), `REPLICA` with the capture the test chose, and a scale-down `DRF`
/// with ids not captured verbatim with the captured scale-down's reply.
#[derive(Clone)]
struct PlayedIstgt {
    captures: Arc<Vec<(String, String)>>,
    replica: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// False after a restart until a REFRESH: istgt boots with no LU (the captured boot
    /// state answers REPLICA).
    loaded: Arc<Mutex<bool>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// How long a SNAPCREATE takes (istgt quiescing I/O and waiting for replicas).
    snapshot_time: Arc<Mutex<Duration>>,
}

impl PlayedIstgt {
    fn new() -> Self {
        PlayedIstgt {
            captures: Arc::new(captures()),
            replica: Arc::new(Mutex::new(1)),
            requests: Arc::new(Mutex::new(Vec::new())),
            loaded: Arc::new(Mutex::new(true)),
            server: Arc::new(Mutex::new(None)),
            snapshot_time: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// `REPLICA` answers with capture `i` from now on.
    fn replica_state(&self, i: usize) {
        *self.replica.lock().expect("lock") = i;
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    fn reply(&self, request: &str) -> String {
        let c = &self.captures;
        if request == "REFRESH" {
            *self.loaded.lock().expect("lock") = true;
        }
        if request == "REPLICA" && !*self.loaded.lock().expect("lock") {
            return c[56].1.clone();
        }
        if request == "REPLICA" {
            let i = *self.replica.lock().expect("lock");
            return c[i].1.clone();
        }
        if let Some((_, recv)) = c.iter().find(|(s, _)| s.trim() == request) {
            return recv.clone();
        }
        if request.starts_with("DRF ") && request.split_whitespace().count() > 3 {
            return c[78].1.clone();
        }
        panic!("no captured reply for {request:?}");
    }

    fn serve(&self, path: &Path) {
        let listener = UnixListener::bind(path).expect("bind istgt control socket");
        let me = self.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let me = me.clone();
                tokio::spawn(async move { me.connection(s).await });
            }
        });
        *self.server.lock().expect("lock") = Some(server);
    }

    /// istgt dies: its socket is gone.
    fn kill(&self, path: &Path) {
        if let Some(h) = self.server.lock().expect("lock").take() {
            h.abort();
        }
        let _ = std::fs::remove_file(path);
    }

    /// istgt starts again, with no LU until it re-reads a conf.
    fn restart(&self, path: &Path) {
        *self.loaded.lock().expect("lock") = false;
        self.serve(path);
    }

    async fn connection(&self, mut s: UnixStream) {
        let banner = self.captures[0]
            .1
            .split_inclusive("\r\n")
            .next()
            .unwrap_or("");
        if split_write(&mut s, banner).await.is_err() {
            return;
        }
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while !got.ends_with(b"\r\n") {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => got.push(b[0]),
            }
        }
        let request = String::from_utf8_lossy(&got).trim().to_string();
        self.requests.lock().expect("lock").push(request.clone());
        let reply = self.reply(&request);
        if request.starts_with("SNAPCREATE") {
            let wait = *self.snapshot_time.lock().expect("lock");
            tokio::time::sleep(wait).await;
        }
        for line in reply.split_inclusive("\r\n").skip(1) {
            if split_write(&mut s, line).await.is_err() {
                return;
            }
        }
        // istgt waits for the next command; the client closes.
        let _ = s.read(&mut b).await;
    }
}

/// A line's text and its CRLF in two writes, as istgt sends them.
async fn split_write(s: &mut UnixStream, line: &str) -> std::io::Result<()> {
    s.write_all(line.trim_end_matches("\r\n").as_bytes())
        .await?;
    tokio::time::sleep(Duration::from_millis(2)).await;
    s.write_all(b"\r\n").await
}

/// istgt registering a replica: the captured line, in two writes; the answer.
async fn register(path: &Path, id: &str, guid: &str, rf: i64, cf: i64) -> String {
    let line = format!(
        "{{\"replicaId\":\"{id}\",\"replicaZvolGuid\":\"{guid}\",\"volumeName\":\"{VOLUME}\",\"replicationFactor\":{rf},\"consistencyFactor\":{cf}}}\r\n"
    );
    let mut s = UnixStream::connect(path)
        .await
        .expect("registration socket");
    let (a, b) = line.split_at(20);
    s.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.write_all(b.as_bytes()).await.expect("write");
    let mut answer = String::new();
    // istgt waits 20 s for the answer.
    tokio::time::timeout(Duration::from_secs(20), s.read_to_string(&mut answer))
        .await
        .expect("answered within istgt's 20 s")
        .expect("read answer");
    answer
}

struct Harness {
    env: testing::TestEnv,
    dir: tempfile::TempDir,
    istgt: PlayedIstgt,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    manager: Option<tokio::task::JoinHandle<Result<(), cstor_agents::volume_manager::Error>>>,
}

impl Harness {
    fn paths(&self) -> Paths {
        Paths {
            control: self.dir.path().join("istgt_ctl_sock"),
            registration: self.dir.path().join("volume_mgmt_sock"),
            conf: self.dir.path().join("istgt.conf"),
        }
    }

    fn cvs(&self) -> Api<CStorVolume> {
        Api::namespaced(self.env.client.clone(), &self.env.namespace)
    }

    async fn create_cv(&self, rf: i64, cf: i64, drf: i64) -> CStorVolume {
        let cv: CStorVolume = serde_json::from_value(json!({
            "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolume",
            "metadata": {"name": VOLUME},
            "spec": {
                "capacity": "1Gi", "targetIP": "10.0.0.5", "targetPort": "3260",
                "iqn": format!("iqn.2016-09.com.openebs.cstor:{VOLUME}"),
                "targetPortal": "10.0.0.5:3260",
                "replicationFactor": rf, "consistencyFactor": cf,
                "desiredReplicationFactor": drf,
            }
        }))
        .expect("cv");
        self.cvs()
            .create(&PostParams::default(), &cv)
            .await
            .expect("create CStorVolume")
    }

    /// A merge patch of the CV, as the cvc-operator (or a requester) writes it.
    async fn patch_cv(&self, patch: Value, what: &str) {
        self.cvs()
            .patch(VOLUME, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Asks for snapshot `snapshot` with request id `id` on the CV.
    async fn ask_snapshot(&self, id: &str, snapshot: &str) {
        let request = json!({"id": id, "snapshot": snapshot, "op": "create"}).to_string();
        self.patch_cv(
            json!({"metadata": {"annotations": {"cstor.openebs.io/snapshot-request": request}}}),
            "ask snapshot",
        )
        .await;
    }

    fn start(&mut self, uid: &str) {
        let config = Config {
            namespace: self.env.namespace.clone(),
            volume_uid: uid.to_string(),
            mount_dir: self.dir.path().join("unused"),
            tgt_control_port: None,
            node_roots: BTreeMap::new(),
            replica_roots: BTreeMap::new(),
            resync: Duration::from_secs(30),
            command_timeout: Duration::from_secs(10),
            access: tgt::Access::from_parts("", None, None),
            target: Target::Istgt,
            istgt: self.paths(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let client = self.env.client.clone();
        self.stop = Some(tx);
        self.manager = Some(tokio::spawn(cstor_agents::volume_manager::run(
            client,
            config,
            async move {
                let _ = rx.await;
            },
        )));
    }

    /// The volume-manager is killed: no Offline report, the registration socket left behind.
    async fn kill(&mut self) {
        // Aborted first: dropping the stop sender would be a graceful stop.
        if let Some(h) = self.manager.take() {
            h.abort();
            let _ = h.await;
        }
        self.stop = None;
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.manager.take() {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("the volume-manager stops within 30 s")
                .expect("join")
                .expect("the volume-manager ends without error");
        }
    }

    /// Waits until the CV satisfies `ok`; panics with the last CV seen.
    async fn wait_cv(&self, what: &str, ok: impl Fn(&CStorVolume) -> bool) -> CStorVolume {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cv = self.cvs().get(VOLUME).await.expect("get CV");
            if ok(&cv) {
                return cv;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within 60 s; last CV: {}",
                    serde_json::to_string_pretty(&cv).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn wait_request(&self, request: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.istgt.requests().iter().any(|r| r == request) {
            assert!(
                Instant::now() < deadline,
                "istgt never got {request:?}; it got {:?}",
                self.istgt.requests()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn conf(&self) -> String {
        std::fs::read_to_string(self.paths().conf).unwrap_or_default()
    }

    async fn event_reasons(&self) -> Vec<(String, String)> {
        let api: Api<Event> = Api::namespaced(self.env.client.clone(), &self.env.namespace);
        api.list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(VOLUME))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    async fn wait_event(&self, reason: &str, contains: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = self.event_reasons().await;
            if all.iter().any(|(r, n)| r == reason && n.contains(contains)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {reason} Event containing {contains:?}; events: {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn harness(prefix: &str) -> Harness {
    Harness {
        env: testing::env(prefix).await,
        dir: tempfile::tempdir().expect("tempdir"),
        istgt: PlayedIstgt::new(),
        stop: None,
        manager: None,
    }
}

/// The snapshot outcome the volume-manager wrote on the CV, if any.
fn outcome_of(cv: &CStorVolume) -> Option<Value> {
    cv.metadata
        .annotations
        .as_ref()?
        .get("cstor.openebs.io/snapshot-outcome")
        .and_then(|v| serde_json::from_str(v).ok())
}

fn phase(cv: &CStorVolume) -> &str {
    cv.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("")
}

fn known(cv: &CStorVolume) -> BTreeMap<String, String> {
    cv.spec
        .replica_details
        .as_ref()
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default()
}

fn status_known(cv: &CStorVolume) -> BTreeMap<String, String> {
    cv.status
        .as_ref()
        .and_then(|s| s.replica_details.as_ref())
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_served_by_istgt_follows_its_replicas_resize_snapshots_and_scaling() {
    let mut h = harness("istgt").await;
    let cv = h.create_cv(3, 2, 3).await;
    let uid = cv.metadata.uid.clone().expect("uid");
    // The volume-manager starts before istgt's socket exists, and waits for it.
    h.start(&uid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.istgt.requests().is_empty());
    h.istgt.serve(&h.paths().control);

    // The conf is the CV's; istgt re-reads it and the volume is confirmed with REPLICA.
    let cv = h
        .wait_cv("Init with no replica", |cv| phase(cv) == "Init")
        .await;
    let st = cv.status.clone().expect("status");
    assert!(
        st.message.contains("0 of 3 connected"),
        "message: {}",
        st.message
    );
    assert!(st.replica_statuses.is_empty());
    assert_eq!(st.capacity.as_ref().map(|q| q.0.as_str()), Some("1Gi"));
    let requests = h.istgt.requests();
    assert_eq!(
        requests[..3],
        ["STATUS", "REFRESH", "REPLICA"],
        "{requests:?}"
    );
    let conf = h.conf();
    let rendered = cstor_agents::volume_manager::istgt::conf::render(&cv).expect("render");
    assert_eq!(conf, rendered);
    assert!(conf.contains("  TargetName pvc-0a1b2c3d\n"));
    assert!(conf.contains("  Portal UC1 10.0.0.5:3261\n"));
    assert!(conf.contains("  LUN0 Storage 1Gi 32k\n"));
    h.wait_event("Init", "Volume is in Init state").await;

    // istgt registers the three replicas: recorded in spec, status and conf before `Ok`.
    let reg = h.paths().registration;
    for (id, guid) in [R1, R2, R3] {
        assert_eq!(register(&reg, id, guid, 3, 2).await, "Ok\r\n", "{id}");
        let cv = h.cvs().get(VOLUME).await.expect("cv");
        assert_eq!(known(&cv).get(id).map(String::as_str), Some(guid));
        assert_eq!(status_known(&cv).get(id).map(String::as_str), Some(guid));
        assert!(h.conf().contains(&format!("  Replica {id} {guid}\n")));
    }
    let cv = h.cvs().get(VOLUME).await.expect("cv");
    assert_eq!(cv.spec.replication_factor, Some(3));
    assert_eq!(cv.spec.consistency_factor, Some(2));
    // Refused: a fourth replica while three are known of three desired; lowered factors;
    // another volume's replica.
    assert_eq!(register(&reg, R4.0, R4.1, 3, 2).await, "Err\r\n");
    assert_eq!(register(&reg, R1.0, R1.1, 2, 2).await, "Err\r\n");
    assert_eq!(
        register(&reg, R1.0, R1.1, 3, 1).await,
        "Err\r\n",
        "a lowered consistency factor"
    );
    assert!(!known(&h.cvs().get(VOLUME).await.expect("cv")).contains_key(R4.0));

    // 1 of 3 connected: istgt says Offline; then all three Healthy.
    h.istgt.replica_state(31);
    let cv = h
        .wait_cv("Offline with one replica", |cv| phase(cv) == "Offline")
        .await;
    let st = cv.status.clone().expect("status");
    assert_eq!(st.replica_statuses.len(), 1);
    assert_eq!(st.replica_statuses[0].id, "6161");
    assert_eq!(st.replica_statuses[0].mode, "Degraded");
    assert_eq!(st.replica_statuses[0].checkpointed_io_seq, "1000");
    assert_eq!(st.replica_statuses[0].quorum, "1");
    h.wait_event("Offline", "Volume is in Offline state").await;
    h.istgt.replica_state(32);
    let cv = h
        .wait_cv("Healthy with three", |cv| phase(cv) == "Healthy")
        .await;
    let st = cv.status.clone().expect("status");
    let modes: Vec<(&str, &str)> = st
        .replica_statuses
        .iter()
        .map(|r| (r.id.as_str(), r.mode.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            ("6161", "Healthy"),
            ("6162", "Healthy"),
            ("6163", "Healthy")
        ]
    );
    h.wait_event("Healthy", "Volume is in Healthy state").await;
    // The stored status uses the API's lower-case keys.
    let raw: Value = serde_json::to_value(&st).expect("json");
    assert_eq!(raw["replicaStatuses"][0]["mode"], "Healthy");

    // Resize 1Gi → 2Gi: RESIZE as the Go sidecar sends it; the conf's storage line follows.
    h.patch_cv(json!({"spec": {"capacity": "2Gi"}}), "resize")
        .await;
    h.wait_request("RESIZE pvc-0a1b2c3d 2Gi 10 60").await;
    let cv = h
        .wait_cv("capacity 2Gi", |cv| {
            cv.status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .is_some_and(|q| q.0 == "2Gi")
        })
        .await;
    assert!(
        cv.status.as_ref().is_some_and(|s| s.conditions.is_empty()),
        "no Resizing condition once done"
    );
    assert!(h.conf().contains("  LUN0 Storage 2Gi 32K\n"));
    h.wait_event("Updated", "successfully resized volume from 1Gi to 2Gi")
        .await;

    // Snapshots through the CV's snapshot annotations, as the local stack's.
    h.ask_snapshot("s1", "snap-a").await;
    let cv = h
        .wait_cv("snapshot s1 outcome", |cv| {
            outcome_of(cv).is_some_and(|o| o["id"] == "s1")
        })
        .await;
    let o = outcome_of(&cv).expect("outcome");
    assert_eq!(o["refused"], "", "{o}");
    let mut done: Vec<String> = serde_json::from_value(o["done"].clone()).expect("done");
    done.sort();
    let mut want = vec![R1.0.to_string(), R2.0.to_string(), R3.0.to_string()];
    want.sort();
    assert_eq!(done, want);
    assert!(
        h.istgt
            .requests()
            .contains(&"SNAPCREATE pvc-0a1b2c3d snap-a 10 60".to_string())
    );
    // istgt refuses one (the captured `ERR failed SNAPCREATE`): refused with its words.
    h.ask_snapshot("s2", "snap-c").await;
    let cv = h
        .wait_cv("snapshot s2 outcome", |cv| {
            outcome_of(cv).is_some_and(|o| o["id"] == "s2")
        })
        .await;
    let o = outcome_of(&cv).expect("outcome");
    assert!(
        o["refused"]
            .as_str()
            .is_some_and(|r| r.contains("failed SNAPCREATE")),
        "{o}"
    );
    h.wait_event("SnapshotFailed", "failed SNAPCREATE").await;

    // Scale up to 4: DRF, then istgt registers the new replica with RF 4 / CF 3.
    h.patch_cv(json!({"spec": {"desiredReplicationFactor": 4}}), "scale up")
        .await;
    h.wait_request("DRF pvc-0a1b2c3d 4").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.conf().contains("  DesiredReplicationFactor 4\n") {
        assert!(Instant::now() < deadline, "conf: {}", h.conf());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(register(&reg, R4.0, R4.1, 4, 3).await, "Ok\r\n");
    let cv = h.cvs().get(VOLUME).await.expect("cv");
    assert_eq!(cv.spec.replication_factor, Some(4));
    assert_eq!(cv.spec.consistency_factor, Some(3));
    assert_eq!(known(&cv).len(), 4);
    assert!(h.conf().contains("  ReplicationFactor 4\n"));
    assert!(h.conf().contains("  ConsistencyFactor 3\n"));
    h.istgt.replica_state(43);
    h.wait_cv("four replicas reported", |cv| {
        cv.status
            .as_ref()
            .is_some_and(|s| s.replica_statuses.len() == 4)
    })
    .await;

    // Scale down to 3 (as the cvc-operator asks: the replica leaves spec.knownReplicas and
    // DRF drops): conf and factors first, then DRF naming the three kept; status follows.
    h.patch_cv(
        json!({"spec": {
            "desiredReplicationFactor": 3,
            "replicaDetails": {"knownReplicas": {R4.0: null}},
        }}),
        "scale down",
    )
    .await;
    let mut kept = [R1.0, R2.0, R3.0];
    kept.sort();
    let drf = format!("DRF pvc-0a1b2c3d 3 {}", kept.join(" "));
    h.wait_request(&drf).await;
    let cv = h
        .wait_cv("status knows three", |cv| status_known(cv).len() == 3)
        .await;
    assert_eq!(cv.spec.replication_factor, Some(3));
    assert_eq!(cv.spec.consistency_factor, Some(2));
    let conf = h.conf();
    assert!(!conf.contains(R4.0), "{conf}");
    assert!(conf.contains("  DesiredReplicationFactor 3\n"));
    assert!(conf.contains("  ReplicationFactor 3\n"));
    h.istgt.replica_state(45);

    // A stop reports Offline with no replica statuses, as the Go sidecar does.
    h.stop().await;
    let cv = h.cvs().get(VOLUME).await.expect("cv");
    assert_eq!(phase(&cv), "Offline");
    assert!(
        cv.status
            .as_ref()
            .is_some_and(|s| s.replica_statuses.is_empty())
    );
    assert!(
        !h.paths().registration.exists(),
        "registration socket removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_istgt_cannot_serve_is_invalid_and_a_silently_rejected_conf_is_an_error() {
    // Invalid: rf 3 above drf 2. Nothing is written and istgt is not asked to re-read.
    let mut h = harness("istgt-bad").await;
    let cv = h.create_cv(3, 2, 2).await;
    h.istgt.serve(&h.paths().control);
    h.start(&cv.metadata.uid.clone().expect("uid"));
    let cv = h.wait_cv("Invalid", |cv| phase(cv) == "Invalid").await;
    let message = cv.status.map(|s| s.message).unwrap_or_default();
    assert_eq!(
        message,
        "CStorVolume pvc-0a1b2c3d: replication factors rf=3 cf=2 drf=2 are invalid (need 0 < cf <= rf <= drf <= 5)"
    );
    h.wait_event("FailCreate", "validation failed").await;
    assert!(!h.paths().conf.exists());
    assert!(!h.istgt.requests().iter().any(|r| r == "REFRESH"));
    // Fixed by the operator: served.
    h.patch_cv(json!({"spec": {"desiredReplicationFactor": 3}}), "fix")
        .await;
    h.wait_cv("Init once valid", |cv| phase(cv) == "Init").await;
    h.stop().await;

    // istgt answers OK to REFRESH but serves no LU (the captured boot state): Error.
    let mut h = harness("istgt-rejected").await;
    let cv = h.create_cv(3, 2, 3).await;
    h.istgt.replica_state(56);
    h.istgt.serve(&h.paths().control);
    h.start(&cv.metadata.uid.clone().expect("uid"));
    let cv = h.wait_cv("Error", |cv| phase(cv) == "Error").await;
    let message = cv.status.map(|s| s.message).unwrap_or_default();
    assert!(
        message.contains("istgt did not take the volume's conf")
            && message.contains("empty volume status from istgt"),
        "{message}"
    );
    // istgt takes it at a later REFRESH: the volume is served.
    h.istgt.replica_state(1);
    h.wait_cv("Init once istgt serves it", |cv| phase(cv) == "Init")
        .await;
    let refreshes = h
        .istgt
        .requests()
        .iter()
        .filter(|r| *r == "REFRESH")
        .count();
    assert!(refreshes >= 2, "REFRESH sent again: {refreshes}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istgt_dying_and_the_volume_manager_killed_are_survived() {
    let mut h = harness("istgt-faults").await;
    let cv = h.create_cv(3, 2, 3).await;
    let uid = cv.metadata.uid.clone().expect("uid");
    // A volume that served before: its three replicas are known.
    let served: serde_json::Map<String, Value> = [R1, R2, R3]
        .iter()
        .map(|(id, guid)| (id.to_string(), json!(guid)))
        .collect();
    h.patch_cv(
        json!({"spec": {"replicaDetails": {"knownReplicas": served}}}),
        "known replicas",
    )
    .await;
    h.cvs()
        .patch_status(
            VOLUME,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Offline", "replicaDetails": {"knownReplicas": served}}})),
        )
        .await
        .expect("status known replicas");
    h.istgt.replica_state(32);
    let control = h.paths().control;
    h.istgt.serve(&control);
    h.start(&uid);
    h.wait_cv("Healthy", |cv| phase(cv) == "Healthy").await;
    // The conf carries the known replicas, in sorted order.
    let conf = h.conf();
    let lines: Vec<&str> = conf
        .lines()
        .filter(|l| l.starts_with("  Replica "))
        .collect();
    let mut want = vec![
        format!("  Replica {} {}", R1.0, R1.1),
        format!("  Replica {} {}", R2.0, R2.1),
        format!("  Replica {} {}", R3.0, R3.1),
    ];
    want.sort();
    assert_eq!(lines, want);

    // A snapshot istgt takes 20 s over: registrations are answered meanwhile (istgt gives
    // them 20 s), and the snapshot completes.
    *h.istgt.snapshot_time.lock().expect("lock") = Duration::from_secs(20);
    h.ask_snapshot("slow", "snap-a").await;
    h.wait_request("SNAPCREATE pvc-0a1b2c3d snap-a 10 60").await;
    let asked = Instant::now();
    assert_eq!(
        register(&h.paths().registration, R2.0, R2.1, 3, 2).await,
        "Ok\r\n"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "registration answered during the snapshot, in {:?}",
        asked.elapsed()
    );
    h.wait_cv("slow snapshot done", |cv| {
        outcome_of(cv).is_some_and(|o| o["id"] == "slow")
    })
    .await;
    *h.istgt.snapshot_time.lock().expect("lock") = Duration::ZERO;

    // istgt dies: the report fails, the volume is Error with the reason and a Warning.
    h.istgt.kill(&control);
    let cv = h.wait_cv("Error", |cv| phase(cv) == "Error").await;
    let st = cv.status.expect("status");
    assert!(
        st.message.starts_with("istgt's replica report failed"),
        "{}",
        st.message
    );
    assert_eq!(st.replica_statuses.len(), 3, "the last statuses are kept");
    h.wait_event("Error", "Volume is in Error state").await;

    // It comes back with no LU (its conf emptied): the conf is written and re-read.
    let refreshes = |h: &Harness| {
        h.istgt
            .requests()
            .iter()
            .filter(|r| *r == "REFRESH")
            .count()
    };
    let before = refreshes(&h);
    std::fs::write(h.paths().conf, "# Global section\n").expect("emptied conf");
    h.istgt.restart(&control);
    h.wait_cv("Healthy again", |cv| phase(cv) == "Healthy")
        .await;
    assert!(refreshes(&h) > before, "REFRESH sent again");
    assert!(h.conf().contains(&format!("  Replica {} {}\n", R1.0, R1.1)));

    // The volume-manager is killed (no Offline, its socket left) and starts again: a stale
    // socket is replaced, and a known replica replaced on its pool (same id, new GUID)
    // registers: the GUID is updated in spec, status and conf, its line not duplicated.
    h.kill().await;
    assert!(h.paths().registration.exists());
    h.start(&uid);
    h.wait_request("STATUS").await;
    let reg = h.paths().registration;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        match tokio::time::timeout(Duration::from_secs(25), register(&reg, R1.0, "7161", 3, 2))
            .await
        {
            Ok(a) if a == "Ok\r\n" => break a,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "registration after restart: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    assert_eq!(answer, "Ok\r\n");
    let cv = h.cvs().get(VOLUME).await.expect("cv");
    assert_eq!(known(&cv).get(R1.0).map(String::as_str), Some("7161"));
    assert_eq!(
        status_known(&cv).get(R1.0).map(String::as_str),
        Some("7161")
    );
    assert_eq!(known(&cv).len(), 3);
    let conf = h.conf();
    assert_eq!(
        conf.matches(&format!("  Replica {}", R1.0)).count(),
        1,
        "{conf}"
    );
    assert!(conf.contains(&format!("  Replica {} 7161\n", R1.0)));
    h.stop().await;
}
