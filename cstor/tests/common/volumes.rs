//! Shared support of the volume end-to-end tests and benches: the `cstor` CLI, real iSCSI
//! clients against the local tgtd, and waits on CVC / CV / CVR state.

use std::process::Command;
use std::time::Duration;

use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvc::CStorVolumeConfig;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::labels;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;

use super::{NS, kubectl, wait_for};
use cstor_local::testing::current as volume_stack;

pub fn cstor(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cstor"))
        .args(args)
        .env(
            "KUBECONFIG",
            cstor_local::testing::control_plane().kubeconfig(),
        )
        .output()
        .expect("cstor");
    assert!(out.status.success(), "cstor {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn url(volume: &str) -> String {
    format!(
        "iscsi://127.0.0.1:{}/iqn.2016-09.com.openebs.cstor:{volume}/1",
        volume_stack().iscsi_port
    )
}

/// Runs a real iSCSI client; panics with its output unless it succeeds.
pub fn client_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is required (Debian libiscsi-bin / qemu-utils): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

pub fn lun_bytes(volume: &str) -> u64 {
    let text = client_tool("iscsi-readcapacity16", &[&url(volume)]);
    text.lines()
        .find_map(|l| l.strip_prefix("Total size:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in {text}"))
}

/// qemu-io commands against the volume; a `read -P` that finds other bytes fails the run.
pub fn qemu_io(volume: &str, cmds: &[&str]) -> String {
    let mut args = vec!["-f", "raw"];
    for c in cmds {
        args.push("-c");
        args.push(c);
    }
    let u = url(volume);
    args.push(&u);
    let text = client_tool("qemu-io", &args);
    assert!(
        !text.contains("Pattern verification failed") && !text.contains("error"),
        "qemu-io {cmds:?}: {text}"
    );
    text
}

pub async fn cvrs_of(client: &kube::Client, volume: &str) -> Vec<CStorVolumeReplica> {
    let api: Api<CStorVolumeReplica> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("{}={volume}", labels::PERSISTENT_VOLUME)))
        .await
        .expect("list cvrs")
        .items
}

/// Waits for CVC Bound, CV Healthy with `n` Healthy replicas, and `n` Healthy CVRs.
pub async fn wait_healthy(client: &kube::Client, volume: &str, n: usize) {
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(client.clone(), NS);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("volume {volume} Healthy with {n} replicas"),
        Duration::from_secs(180),
        || async {
            let cvc = cvcs.get(volume).await.map_err(|e| e.to_string())?;
            let phase = cvc.status.clone().unwrap_or_default().phase;
            let cv = cvs.get_opt(volume).await.map_err(|e| e.to_string())?;
            let cv_status = cv.and_then(|v| v.status).unwrap_or_default();
            let healthy = cv_status
                .replica_statuses
                .iter()
                .filter(|r| r.mode == "Healthy")
                .count();
            let cvrs: Vec<String> = cvrs_of(client, volume)
                .await
                .into_iter()
                .map(|c| c.status.unwrap_or_default().phase)
                .collect();
            if phase == "Bound"
                && cv_status.phase == "Healthy"
                && healthy == n
                && cvrs.len() == n
                && cvrs.iter().all(|p| p == "Healthy")
            {
                Ok(())
            } else {
                Err(format!(
                    "cvc {phase}, cv {} ({healthy} healthy), cvrs {cvrs:?}",
                    cv_status.phase
                ))
            }
        },
    )
    .await
}

/// Deletes the CVC; waits until target, CVRs and datasets are gone.
pub async fn delete_volume(client: &kube::Client, volume: &str) {
    let (ok, out) = kubectl(&["delete", "cvc", volume, "--wait=false"], None);
    assert!(ok, "{out}");
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), NS);
    let cvs: Api<CStorVolume> = Api::namespaced(client.clone(), NS);
    wait_for(
        &format!("volume {volume} removed"),
        Duration::from_secs(120),
        || async {
            let target = deploys
                .get_opt(&format!("{volume}-target"))
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            let cv = cvs
                .get_opt(volume)
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            let cvrs = cvrs_of(client, volume).await.len();
            let datasets: Vec<String> = volume_stack()
                .nodes
                .iter()
                .filter_map(|n| n.zfs(&["list", "-H", "-o", "name"]).ok())
                .flat_map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
                .filter(|l| l.ends_with(&format!("/{volume}")))
                .collect();
            if !target && !cv && cvrs == 0 && datasets.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "target {target}, cv {cv}, cvrs {cvrs}, datasets {datasets:?}"
                ))
            }
        },
    )
    .await
}

/// One HTTP/1.1 call as the velero-plugin's Go client makes it (`Content-Type:
/// application/json` and a body on POST and GET alike); returns the status code and body.
pub fn plugin_call(method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let port = *volume_stack()
        .ports
        .of("cstor-cvc-operator", "backup-api")
        .first()
        .expect("the cvc-operator's backup-api port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(90)))
        .expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    // axum answers with Content-Length (no chunking) when the body is known.
    (code, rest.to_string())
}

pub fn backup_body(
    ns: &str,
    backup: &str,
    volume: &str,
    snap: &str,
    dest: &str,
    local: bool,
) -> String {
    serde_json::json!({"metadata": {"namespace": ns, "creationTimestamp": null},
           "spec": {"backupName": backup, "volumeName": volume, "snapName": snap,
                    "prevSnapName": "", "backupDest": dest, "localSnap": local},
           "status": ""})
    .to_string()
}

/// The CVC cstor-csi makes from the velero-plugin's restore claim (annotation
/// `openebs.io/created-through: restore`), 3 replicas on `cspc`, applied.
pub fn apply_restore_volume(volume: &str, cspc: &str, size: &str) {
    super::kubectl_apply(&serde_json::json!({
        "apiVersion": "cstor.openebs.io/v1", "kind": "CStorVolumeConfig",
        "metadata": {"name": volume, "namespace": NS,
                     "labels": {"openebs.io/cstor-pool-cluster": cspc},
                     "annotations": {"openebs.io/volumeID": volume, "openebs.io/volume-policy": "",
                                     "openebs.io/created-through": "restore"},
                     "finalizers": ["cvc.openebs.io/finalizer"]},
        "spec": {"capacity": {"storage": size},
                 "provision": {"capacity": {"storage": size}, "replicaCount": 3}, "policy": {}}
    }));
}

/// Waits until the volume's 3 replicas all await their restore (phase Error).
pub async fn wait_awaiting_restore(client: &kube::Client, volume: &str) {
    wait_for(
        "restore replicas waiting",
        Duration::from_secs(180),
        || async {
            let phases: Vec<String> = cvrs_of(client, volume)
                .await
                .iter()
                .map(|c| {
                    c.status
                        .as_ref()
                        .map(|s| s.phase.clone())
                        .unwrap_or_default()
                })
                .collect();
            if phases.len() == 3 && phases.iter().all(|p| p == "Error") {
                Ok(())
            } else {
                Err(format!("{phases:?}"))
            }
        },
    )
    .await;
}
