//! `cstor migrate spc NAME --dry-run` against SPC-era objects created in a real cluster: it
//! prints the CSPC and the problems, exits 2 when there are any, and changes nothing.

use std::process::Command;

use cstor_local::components::{self, OPERATOR_NAMESPACE};
use cstor_local::testing;
use serde_json::{Value, json};

fn csp(name: &str, host: &str, groups: &[&[&str]], ro: i64) -> Value {
    json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "CStorPool",
        "metadata": {"name": name, "labels": {"openebs.io/storage-pool-claim": "old-pool", "kubernetes.io/hostname": host}},
        "spec": {"group": groups.iter().map(|g| json!({"blockDevice": g.iter().map(|b| json!({"name": b, "deviceID": format!("/dev/{b}"), "inUseByPool": true})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
                 "poolSpec": {"poolType": "mirrored", "cacheFile": "", "overProvisioning": false, "thickProvisioning": false, "roThresholdLimit": ro}},
    })
}

fn bd(name: &str, host: &str) -> [Value; 2] {
    [
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "BlockDevice",
               "metadata": {"name": name, "namespace": OPERATOR_NAMESPACE, "labels": {"kubernetes.io/hostname": host}},
               "spec": {"capacity": {"storage": 1u64 << 30}, "nodeAttributes": {"nodeName": host}, "path": format!("/dev/{name}")},
               "status": {"claimState": "Claimed", "state": "Active"}}),
        json!({"apiVersion": "openebs.io/v1alpha1", "kind": "BlockDeviceClaim",
               "metadata": {"name": format!("bdc-{name}"), "namespace": OPERATOR_NAMESPACE,
                            "labels": {"openebs.io/storage-pool-claim": "old-pool"}},
               "spec": {"blockDeviceName": name, "hostName": host}}),
    ]
}

fn pool_deployment(csp: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": csp, "namespace": OPERATOR_NAMESPACE, "labels": {"openebs.io/cstor-pool": csp}},
        "spec": {"selector": {"matchLabels": {"app": csp}},
                 "template": {"metadata": {"labels": {"app": csp}},
                              "spec": {"containers": [{"name": "cstor-pool", "image": "openebs/cstor-pool:1.12.0",
                                                       "resources": {"limits": {"memory": "2Gi"}}}]}}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_cspc_and_problems_and_changes_nothing() {
    let cp = testing::control_plane();
    let admin = cp.client().await.expect("admin client");
    components::ensure_namespace(&admin, OPERATOR_NAMESPACE)
        .await
        .expect("namespace");
    let mut objects = vec![json!({
        "apiVersion": "openebs.io/v1alpha1", "kind": "StoragePoolClaim",
        "metadata": {"name": "old-pool"},
        "spec": {"name": "old-pool", "type": "disk", "maxPools": 2,
                 "poolSpec": {"poolType": "mirrored", "cacheFile": "", "roThresholdLimit": 0}},
    })];
    objects.push(csp("old-pool-a1b2", "node-1", &[&["bd-a", "bd-b"]], 0));
    objects.push(csp("old-pool-c3d4", "node-2", &[&["bd-c", "bd-d"]], 85));
    for (name, host) in [
        ("bd-a", "node-1"),
        ("bd-b", "node-1"),
        ("bd-c", "node-2"),
        ("bd-d", "node-2"),
    ] {
        objects.extend(bd(name, host));
    }
    // Only the first CSP has its pool Deployment: the second is a problem.
    objects.push(pool_deployment("old-pool-a1b2"));
    components::apply(&admin, &objects)
        .await
        .expect("SPC-era objects");

    let run = || {
        Command::new(env!("CARGO_BIN_EXE_cstor"))
            .args([
                "migrate",
                "spc",
                "old-pool",
                "--dry-run",
                "--cspc-name",
                "new-pool",
            ])
            .env("KUBECONFIG", cp.kubeconfig())
            .output()
            .expect("cstor migrate")
    };
    let versions_before = resource_versions(cp);
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("problem: invalid number of deployments found for csp old-pool-c3d4: 0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 problem(s) would stop the migration of spc old-pool"),
        "{stderr}"
    );
    assert!(
        stdout.contains("# note: csp old-pool-a1b2: roThresholdLimit 0 (off for the old pool manager) becomes 85"),
        "{stdout}"
    );
    let yaml: String = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let cspc: Value = serde_yaml_ng::from_str(&yaml).expect("CSPC YAML");
    assert_eq!(cspc["apiVersion"], "cstor.openebs.io/v1");
    assert_eq!(cspc["metadata"]["name"], "new-pool");
    assert_eq!(
        cspc["metadata"]["annotations"]["openebs.io/migrated-from"],
        "old-pool"
    );
    assert_eq!(
        cspc["spec"]["pools"][0]["nodeSelector"]["kubernetes.io/hostname"],
        "node-1"
    );
    assert_eq!(
        cspc["spec"]["pools"][0]["poolConfig"]["dataRaidGroupType"],
        "mirror"
    );
    assert_eq!(
        cspc["spec"]["pools"][0]["poolConfig"]["roThresholdLimit"],
        85
    );
    assert_eq!(
        cspc["spec"]["pools"][0]["poolConfig"]["resources"]["limits"]["memory"],
        "2Gi"
    );
    assert_eq!(
        cspc["spec"]["pools"][1]["dataRaidGroups"][0]["blockDevices"][1]["blockDeviceName"],
        "bd-d"
    );

    // Nothing changed: same objects at the same resourceVersions, no CSPC.
    assert_eq!(resource_versions(cp), versions_before);

    // With the missing Deployment in place, the same dry run is clean.
    components::apply(&admin, &[pool_deployment("old-pool-c3d4")])
        .await
        .expect("deployment");
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("# no problems found"));
}

/// Every SPC-era object and CSPC with its resourceVersion, as kubectl lists them.
fn resource_versions(cp: &cstor_local::controlplane::ControlPlane) -> String {
    let out = cp
        .kubectl()
        .args([
            "get",
            "spc,csp,cspc,bd,bdc,deployments",
            "--all-namespaces",
            "-o",
            "custom-columns=KIND:.kind,NAME:.metadata.name,RV:.metadata.resourceVersion",
            "--no-headers",
        ])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
