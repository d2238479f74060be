//! istgt.conf for a CStorVolume, the Go sidecar's template line for line (docs/volumes.md
//! "istgt"): one LU, the volume's target IP on the portal and the unit-control lines, its
//! replication factors, its capacity and its known replicas in sorted order. Pure.

use cstor_api::cstor_v1::CStorVolume;
use kube::ResourceExt;

/// Where istgt reads its conf (compiled into the image's entrypoint).
pub const CONF_PATH: &str = "/usr/local/etc/istgt/istgt.conf";

/// Why a CStorVolume cannot be served (the Go sidecar's `CheckValidVolume`, and istgt's own
/// limits, so a conf istgt would reject is never written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidVolume {
    #[error("CStorVolume {0} has no {1}")]
    Missing(String, &'static str),
    #[error(
        "CStorVolume {name}: replication factors rf={rf} cf={cf} drf={drf} are invalid (need 0 < cf <= rf <= drf <= 5)"
    )]
    Factors {
        name: String,
        rf: i64,
        cf: i64,
        drf: i64,
    },
    #[error(
        "CStorVolume {name} knows {known} replicas but its desired replication factor is {drf}"
    )]
    TooManyReplicas {
        name: String,
        known: usize,
        drf: i64,
    },
}

/// Most replicas istgt serves (MAXREPLICA).
pub const MAX_REPLICAS: i64 = 5;

const TEMPLATE: &str = r#"# Global section
[Global]
  NodeBase "iqn.2016-09.com.openebs.cstor"
  PidFile "/var/run/istgt.pid"
  AuthFile "/usr/local/etc/istgt/auth.conf"
  LogFile "/usr/local/etc/istgt/logfile"
  Luworkers 6
  MediaDirectory "/mnt"
  Timeout 60
  NopInInterval 20
  TCPUserTimeout 120
  MaxR2T 16
  DiscoveryAuthMethod None
  DiscoveryAuthGroup None
  MaxSessions 32
  MaxConnections 4
  FirstBurstLength 262144
  MaxBurstLength 1048576
  MaxRecvDataSegmentLength 262144
  MaxOutstandingR2T 16
  DefaultTime2Wait 2
  DefaultTime2Retain 20
  OperationalMode 0

# UnitControl section
[UnitControl]
  AuthMethod None
  AuthGroup None
  Portal UC1 {target_ip}:3261
  Netmask {target_ip}/8

# PortalGroup section
[PortalGroup1]
  Portal DA1 {target_ip}:3260

# InitiatorGroup section
[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask "ALL"

[InitiatorGroup2]
  InitiatorName "None"
  Netmask "None"

# LogicalUnit section
[LogicalUnit1]
  TargetName {name}
  TargetAlias nicknamefor-{name}
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod None
  AuthGroup None
  UseDigest Auto
  ReadOnly No
  DesiredReplicationFactor {drf}
  ReplicationFactor {rf}
  ConsistencyFactor {cf}
  UnitType Disk
  UnitOnline Yes
  BlockLength 512
  QueueDepth 32
  Luworkers 6
  UnitInquiry "OpenEBS" "iscsi" "0" "{uid}"
  PhysRecordLength 4096
  LUN0 Storage {capacity} 32k
  LUN0 Option Unmap Disable
  LUN0 Option WZero Disable
  LUN0 Option ATS Disable
  LUN0 Option XCOPY Disable"#;

/// The istgt.conf that serves `cv`.
pub fn render(cv: &CStorVolume) -> Result<String, InvalidVolume> {
    let name = cv.name_any();
    let missing = |what| InvalidVolume::Missing(name.clone(), what);
    let uid = cv
        .uid()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| missing("uid"))?;
    let spec = &cv.spec;
    if spec.target_ip.is_empty() {
        return Err(missing("spec.targetIP"));
    }
    let capacity = spec
        .capacity
        .as_ref()
        .map(|q| q.0.clone())
        .filter(|c| !c.is_empty() && c != "0")
        .ok_or_else(|| missing("spec.capacity"))?;
    let rf = spec.replication_factor.unwrap_or(0);
    let cf = spec.consistency_factor.unwrap_or(0);
    // A CStorVolume from before 1.3 has no desired factor: the Go sidecar takes rf.
    let drf = spec
        .desired_replication_factor
        .filter(|d| *d != 0)
        .unwrap_or(rf);
    if !(cf > 0 && cf <= rf && rf <= drf && drf <= MAX_REPLICAS) {
        return Err(InvalidVolume::Factors { name, rf, cf, drf });
    }
    let known = spec
        .replica_details
        .as_ref()
        .map(|d| d.known_replicas.clone())
        .unwrap_or_default();
    if i64::try_from(known.len()).unwrap_or(i64::MAX) > drf {
        return Err(InvalidVolume::TooManyReplicas {
            name,
            known: known.len(),
            drf,
        });
    }
    let mut conf = TEMPLATE
        .replace("{target_ip}", &spec.target_ip)
        .replace("{name}", &name)
        .replace("{drf}", &drf.to_string())
        .replace("{rf}", &rf.to_string())
        .replace("{cf}", &cf.to_string())
        .replace("{uid}", &uid)
        .replace("{capacity}", &capacity);
    // A BTreeMap iterates in key order, as the Go template ranges over a map.
    for (id, guid) in &known {
        conf.push_str(&format!("\n  Replica {id} {guid}"));
    }
    conf.push('\n');
    Ok(conf)
}
