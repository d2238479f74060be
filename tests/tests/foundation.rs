//! The foundation end to end: generated CRDs installed into the real apiserver, examples applied
//! with kubectl and read back through typed `kube::Api`s, and the structural schema enforced.

use cstor_api::cstor_v1::{CStorPoolCluster, CStorVolumeConfig};
use cstor_api::openebs_v1alpha1::BlockDevice;
use cstor_local::{cluster, testing};
use cstor_tests::{repo_root, run, yaml_documents};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use pretty_assertions::assert_eq;

/// The CRDs as generated into deploy/crds (not from the types directly: the files are what
/// users install).
fn generated_crds() -> Vec<CustomResourceDefinition> {
    let dir = repo_root().join("deploy/crds");
    let mut crds = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    paths.sort();
    for p in paths {
        for doc in yaml_documents(&p) {
            crds.push(
                serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            );
        }
    }
    crds
}

#[tokio::test]
async fn generated_crds_install_and_examples_round_trip_through_the_apiserver() {
    let env = testing::env("foundation").await;
    let crds = generated_crds();
    assert!(crds.len() >= 18, "expected every CRD, found {}", crds.len());
    cluster::install_crds(&env.client, &crds)
        .await
        .expect("generated CRDs install and become Established");

    let examples = repo_root().join("examples");
    let files = [
        "blockdevices.yaml",
        "cspc-stripe.yaml",
        "cspc-mirror.yaml",
        "cspc-raidz2.yaml",
        "cvc.yaml",
    ];
    let mut apply = env.kubectl();
    apply.arg("apply");
    for f in files {
        apply.arg("-f").arg(examples.join(f));
    }
    let out = run(apply);
    assert!(out.success, "kubectl apply failed: {}", out.stderr);
    assert!(
        out.stdout
            .contains("cstorpoolcluster.cstor.openebs.io/cstor-stripe created"),
        "{}",
        out.stdout
    );

    let cspcs: Api<CStorPoolCluster> = Api::namespaced(env.client.clone(), &env.namespace);
    let cvcs: Api<CStorVolumeConfig> = Api::namespaced(env.client.clone(), &env.namespace);
    let bds: Api<BlockDevice> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut compared = 0;
    for f in files {
        for doc in yaml_documents(&examples.join(f)) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match kind.as_str() {
                "CStorPoolCluster" => {
                    let want: CStorPoolCluster = serde_json::from_value(doc).expect("typed CSPC");
                    let got = cspcs.get(&name).await.expect("read CSPC back");
                    assert_eq!(got.spec, want.spec, "CSPC {name}");
                }
                "CStorVolumeConfig" => {
                    let want: CStorVolumeConfig = serde_json::from_value(doc).expect("typed CVC");
                    let got = cvcs.get(&name).await.expect("read CVC back");
                    assert_eq!(got.spec, want.spec, "CVC {name}");
                    assert_eq!(got.version_details, want.version_details, "CVC {name}");
                }
                "BlockDevice" => {
                    let want: BlockDevice = serde_json::from_value(doc).expect("typed BD");
                    let got = bds.get(&name).await.expect("read BD back");
                    assert_eq!(got.spec, want.spec, "BD {name}");
                    assert_eq!(got.status, want.status, "BD {name}");
                }
                other => panic!("unexpected kind {other} in examples/{f}"),
            }
            compared += 1;
        }
    }
    // 13 BlockDevices, 3 CSPCs, 1 CVC.
    assert_eq!(compared, 17);

    let listed = cspcs.list(&Default::default()).await.expect("list CSPCs");
    let mut names: Vec<_> = listed
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["cstor-mirror", "cstor-raidz2", "cstor-stripe"]);
}

#[tokio::test]
async fn structural_schema_rejects_pools_given_as_a_string() {
    let env = testing::env("schema").await;
    let bad = env
        .control_plane
        .dir()
        .join(format!("{}-bad-cspc.yaml", env.namespace));
    std::fs::write(
        &bad,
        "apiVersion: cstor.openebs.io/v1\nkind: CStorPoolCluster\nmetadata:\n  name: bad\nspec:\n  pools: not-a-list\n",
    )
    .expect("write manifest");
    let mut apply = env.kubectl();
    apply.arg("apply").arg("-f").arg(&bad);
    let out = run(apply);
    assert!(
        !out.success,
        "a CSPC with string pools was accepted: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains(
            r#"The CStorPoolCluster "bad" is invalid: spec.pools: Invalid value: "string": spec.pools in body must be of type array: "string""#
        ),
        "unexpected kubectl error: {}",
        out.stderr
    );
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(env.client.clone(), &env.namespace);
    assert!(cspcs.get_opt("bad").await.expect("get").is_none());
}

#[tokio::test]
async fn status_is_a_subresource_for_kinds_we_own() {
    let env = testing::env("status").await;
    let mut apply = env.kubectl();
    apply
        .arg("apply")
        .arg("-f")
        .arg(repo_root().join("examples/cspc-stripe.yaml"));
    let out = run(apply);
    assert!(out.success, "{}", out.stderr);
    let cspcs: Api<CStorPoolCluster> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut cspc = cspcs.get("cstor-stripe").await.expect("get");
    // A status sent with a spec update is ignored by the apiserver...
    cspc.status = Some(cstor_api::cstor_v1::CStorPoolClusterStatus {
        desired_instances: Some(3),
        ..Default::default()
    });
    let replaced = cspcs
        .replace("cstor-stripe", &Default::default(), &cspc)
        .await
        .expect("replace");
    assert_eq!(replaced.status, None);
    // ...and taken through the status subresource.
    let patch = serde_json::json!({"status": {"desiredInstances": 3}});
    let patched = cspcs
        .patch_status(
            "cstor-stripe",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("patch status");
    assert_eq!(patched.status.and_then(|s| s.desired_instances), Some(3));
}
