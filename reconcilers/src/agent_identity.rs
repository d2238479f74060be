//! One identity per node agent (docs/pools.md "Node agents act on their own objects only"): a
//! pool-manager runs as ServiceAccount `cstor-pool-manager-<cspi>`, a volume target as
//! `cstor-volume-manager-<volume>`, each bound to the agents' shared Role and owned by its
//! object; a ValidatingAdmissionPolicy (deploy/) ties each account's writes to that object.

use cstor_runtime::errors::Step;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::Error;

/// The ServiceAccount (and RoleBinding) name of agent `role` for object `object`.
pub fn account_name(role: &str, object: &str) -> String {
    let mut name = format!("{role}-{object}");
    name.truncate(253);
    name
}

/// The ServiceAccount of `account`, owned by `owner`.
pub fn service_account(namespace: &str, account: &str, owner: &OwnerReference) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "cstor"},
                     "ownerReferences": [owner]},
    })
}

/// The RoleBinding giving `account` the agents' Role `role`, owned by `owner`.
pub fn role_binding(namespace: &str, account: &str, role: &str, owner: &OwnerReference) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": account, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "cstor"},
                     "ownerReferences": [owner]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    })
}

/// Makes (server-side apply, as `manager`) the ServiceAccount and RoleBinding of agent `role`
/// for `object`; returns the account name for the Deployment's pod template.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    role: &str,
    object: &str,
    owner: &OwnerReference,
    manager: &str,
) -> Result<String, Error> {
    let account = account_name(role, object);
    let pp = PatchParams::apply(manager).force();
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), namespace);
    sas.patch(
        &account,
        &pp,
        &Patch::Apply(service_account(namespace, &account, owner)),
    )
    .await
    .step("apply agent ServiceAccount", &account)?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(client.clone(), namespace);
    bindings
        .patch(
            &account,
            &pp,
            &Patch::Apply(role_binding(namespace, &account, role, owner)),
        )
        .await
        .step("apply agent RoleBinding", &account)?;
    Ok(account)
}
