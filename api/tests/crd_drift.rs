//! deploy/crds can never disagree with the types: regenerate and compare byte for byte.

use std::path::Path;

#[test]
fn deploy_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let files = cstor_api::crdgen::render_all().expect("render CRDs");
    let drift = cstor_api::crdgen::drift(&dir, &files).expect("read deploy/crds");
    assert!(
        drift.is_empty(),
        "deploy/crds is out of date: {drift:?}; run `cargo xtask crds`"
    );
}

#[test]
fn every_kind_has_a_crd_with_the_expected_names() {
    let crds = cstor_api::all_crds().expect("CRDs");
    let mut names: Vec<String> = crds
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "blockdeviceclaims.openebs.io",
            "blockdevices.openebs.io",
            "cstorbackups.cstor.openebs.io",
            "cstorcompletedbackups.cstor.openebs.io",
            "cstorpoolclusters.cstor.openebs.io",
            "cstorpoolinstances.cstor.openebs.io",
            "cstorpools.openebs.io",
            "cstorrestores.cstor.openebs.io",
            "cstorvolumeattachments.cstor.openebs.io",
            "cstorvolumeconfigs.cstor.openebs.io",
            "cstorvolumepolicies.cstor.openebs.io",
            "cstorvolumereplicas.cstor.openebs.io",
            "cstorvolumereplicas.openebs.io",
            "cstorvolumes.cstor.openebs.io",
            "cstorvolumes.openebs.io",
            "migrationtasks.openebs.io",
            "storagepoolclaims.openebs.io",
            "upgradetasks.openebs.io",
        ]
    );
}

#[test]
fn cspc_and_cspi_serve_v1_stored_and_v1alpha1_deprecated_through_the_webhook() {
    for crd in cstor_api::all_crds().expect("CRDs") {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let versions: Vec<(String, bool, bool)> = crd
            .spec
            .versions
            .iter()
            .map(|v| (v.name.clone(), v.served, v.storage))
            .collect();
        if name == "cstorpoolclusters.cstor.openebs.io"
            || name == "cstorpoolinstances.cstor.openebs.io"
        {
            assert_eq!(
                versions,
                [
                    ("v1".to_string(), true, true),
                    ("v1alpha1".to_string(), true, false)
                ],
                "{name}"
            );
            let old = &crd.spec.versions[1];
            assert_eq!(old.deprecated, Some(true), "{name}");
            assert!(
                old.deprecation_warning
                    .as_deref()
                    .is_some_and(|w| w.contains("use cstor.openebs.io/v1")),
                "{name}"
            );
            let conversion = crd.spec.conversion.as_ref().expect("conversion");
            assert_eq!(conversion.strategy, "Webhook", "{name}");
            let service = conversion
                .webhook
                .as_ref()
                .and_then(|w| w.client_config.as_ref())
                .and_then(|c| c.service.as_ref())
                .expect("service");
            assert_eq!(
                (service.name.as_str(), service.path.as_deref()),
                ("openebs-cstor-admission-server", Some("/convert"))
            );
        } else {
            assert_eq!(versions.len(), 1, "{name}");
            assert!(versions[0].1 && versions[0].2, "{name}");
        }
    }
}

#[test]
fn short_names_match_the_spec() {
    let want = [
        ("cstorpoolclusters.cstor.openebs.io", "cspc"),
        ("cstorpoolinstances.cstor.openebs.io", "cspi"),
        ("cstorvolumeconfigs.cstor.openebs.io", "cvc"),
        ("cstorvolumes.cstor.openebs.io", "cv"),
        ("cstorvolumereplicas.cstor.openebs.io", "cvr"),
        ("cstorvolumepolicies.cstor.openebs.io", "cvp"),
        ("cstorvolumeattachments.cstor.openebs.io", "cva"),
        ("blockdevices.openebs.io", "bd"),
        ("blockdeviceclaims.openebs.io", "bdc"),
        ("storagepoolclaims.openebs.io", "spc"),
        ("cstorpools.openebs.io", "csp"),
    ];
    let crds = cstor_api::all_crds().expect("CRDs");
    for (name, short) in want {
        let crd = crds
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no CRD {name}"));
        let shorts = crd.spec.names.short_names.clone().unwrap_or_default();
        assert!(shorts.iter().any(|s| s == short), "{name}: {shorts:?}");
    }
}
