//! The pool-manager's part of a volume snapshot (docs/backup-restore.md, "Snapshots"): when a
//! CStorVolume carries a barrier naming replicas on our pool, each one's dataset is snapshotted
//! (or the snapshot destroyed) and the answer written on its CVR. The volume-manager holds the
//! volume's writes meanwhile, so every replica's snapshot has the same bytes.

use std::sync::Arc;

use cstor_api::cstor_v1::cv::CStorVolume;
use cstor_api::cstor_v1::cvr::CStorVolumeReplica;
use cstor_api::keys::labels;
use cstor_api::snapshot::{self, ANSWER, Answer, BARRIER, Barrier};
use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::Context as PoolContext;
use super::replica::{decide, store};

/// One replica to act on: its CVR and its dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    pub cvr: String,
    pub dataset: String,
}

/// The CVRs of `cvrs` (ours) that `barrier` on volume `volume` names and that have not
/// answered it yet.
pub fn work(barrier: &Barrier, volume: &str, pool: &str, cvrs: &[CStorVolumeReplica]) -> Vec<Work> {
    if barrier.id.is_empty() {
        return Vec::new();
    }
    cvrs.iter()
        .filter(|c| c.meta().deletion_timestamp.is_none())
        .filter(|c| decide::volume_of(c).as_deref() == Some(volume))
        .filter(|c| !c.spec.replica_id.is_empty() && barrier.replicas.contains(&c.spec.replica_id))
        .filter(|c| {
            snapshot::parse::<Answer>(c.annotations().get(ANSWER))
                .is_none_or(|a| a.id != barrier.id)
        })
        .map(|c| Work {
            cvr: c.name_any(),
            dataset: decide::dataset_name(pool, volume),
        })
        .collect()
}

/// Follows CStorVolumes until `stop` turns true.
pub async fn run(base: Arc<PoolContext>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let cvs: Api<CStorVolume> = Api::namespaced(base.client.clone(), &base.config.namespace);
    let mut events = watcher(cvs, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            e = events.next() => match e {
                Some(Ok(cv)) => answer(&base, &cv).await,
                Some(Err(e)) => tracing::debug!(error = %e, "CStorVolume watch"),
                None => return,
            },
        }
    }
}

async fn answer(base: &PoolContext, cv: &CStorVolume) {
    let Some(barrier) = snapshot::parse::<Barrier>(cv.annotations().get(BARRIER)) else {
        return;
    };
    let volume = cv.name_any();
    let cvrs: Api<CStorVolumeReplica> =
        Api::namespaced(base.client.clone(), &base.config.namespace);
    let ours = ListParams::default().labels(&format!(
        "{}={},{}={volume}",
        labels::CSPI_UID,
        base.config.cspi_uid,
        labels::PERSISTENT_VOLUME
    ));
    let listed = match cvrs.list(&ours).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(%volume, error = %e, "replicas for a snapshot not listed");
            return;
        }
    };
    for w in work(&barrier, &volume, &base.pool, &listed) {
        let done = match snapshot::valid_name(&barrier.snapshot) {
            Ok(()) => store::snapshot(&base.runner, &w.dataset, &barrier.snapshot, barrier.op)
                .await
                .map_err(|e| e.message()),
            Err(e) => Err(e),
        };
        if let Err(e) = &done {
            tracing::warn!(dataset = %w.dataset, snapshot = %barrier.snapshot, op = ?barrier.op, error = %e, "snapshot failed");
        } else {
            tracing::info!(dataset = %w.dataset, snapshot = %barrier.snapshot, op = ?barrier.op, "snapshot done");
        }
        let answer = Answer {
            id: barrier.id.clone(),
            error: done.err().unwrap_or_default(),
        };
        let value = serde_json::to_string(&answer).unwrap_or_default();
        if let Err(e) = cstor_runtime::finalizers::patch_metadata(&cvrs, &w.cvr, |c| {
            decide::annotation_ops(c, ANSWER, &value)
        })
        .await
        {
            tracing::warn!(cvr = %w.cvr, error = %e, "snapshot answer not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvr(name: &str, id: &str, answered: Option<&str>) -> CStorVolumeReplica {
        let mut c: CStorVolumeReplica = serde_json::from_value(serde_json::json!({
            "apiVersion": "cstor.openebs.io/v1",
            "kind": "CStorVolumeReplica",
            "metadata": {"name": name, "labels": {"openebs.io/persistent-volume": "pvc-1",
                          "cstorvolume.openebs.io/name": "pvc-1"}},
            "spec": {"replicaid": id}
        }))
        .expect("cvr");
        if let Some(a) = answered {
            c.annotations_mut().insert(
                ANSWER.into(),
                serde_json::to_string(&Answer {
                    id: a.into(),
                    error: String::new(),
                })
                .expect("json"),
            );
        }
        c
    }

    #[test]
    fn only_named_replicas_that_have_not_answered_this_barrier_act() {
        let barrier = Barrier {
            id: "b7".into(),
            snapshot: "s1".into(),
            op: snapshot::Op::Create,
            replicas: vec!["11".into(), "22".into()],
        };
        let cvrs = vec![
            cvr("pvc-1-a", "11", None),
            cvr("pvc-1-b", "22", Some("b7")),
            cvr("pvc-1-c", "33", None),
            cvr("pvc-1-d", "", None),
        ];
        assert_eq!(
            work(&barrier, "pvc-1", "cstor-x", &cvrs),
            vec![Work {
                cvr: "pvc-1-a".into(),
                dataset: "cstor-x/pvc-1".into()
            }]
        );
        // An older answer does not count for a new barrier; another volume's replicas never.
        let newer = Barrier {
            id: "b8".into(),
            ..barrier.clone()
        };
        assert_eq!(work(&newer, "pvc-1", "cstor-x", &cvrs).len(), 2);
        assert!(work(&barrier, "pvc-2", "cstor-x", &cvrs).is_empty());
        let none = Barrier {
            id: String::new(),
            ..barrier
        };
        assert!(work(&none, "pvc-1", "cstor-x", &cvrs).is_empty());
    }
}
