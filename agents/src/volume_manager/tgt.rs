//! tgt (the Linux SCSI target daemon) driven through `tgtadm`: exact argv builders, a parser
//! for `--op show --mode target`, the tid choice, and the async steps (serve, re-open the LUN on
//! resize, remove) run through [`Runner`].
//!
//! Verified against tgt 1.0.85: a regular file needs `--bstype rdwr`; `-C <n>` on both
//! `tgtd` and `tgtadm` selects a private control socket (`/var/run/tgtd/socket.<n>`); tgt does
//! not notice a grown backing file. Re-opening it does: `--params online=0` then
//! `--params path=<same file>` (refused while the LU is online) re-reads the size and puts the
//! LU online again; an initiator logged in sees the new size at its next READ CAPACITY. A
//! non-removable LU keeps serving I/O while "offline". tgt swaps the file descriptor with no
//! lock against its I/O threads, so the caller holds the LUN's I/O around it (see
//! [`super::gate`]); deleting and re-adding the LUN instead fails every command in between.

use crate::runner::{RunError, Runner};

use super::Error;

/// The LUN we serve (LUN 0 is tgt's controller).
pub const LUN: u32 = 1;
/// Largest tid we pick (tgt takes any positive int; a small range keeps `show` readable).
const TID_RANGE: u32 = 30_000;

/// Who may log in to a target: initiator names (`iqn.…`) or addresses/subnets (none: all),
/// and CHAP credentials initiators must present (none: no CHAP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub initiators: Vec<String>,
    pub chap: Option<Chap>,
}

/// CHAP credentials of a target (from the volume's Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Chap {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chap")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Access {
    /// From the target's environment: `initiators` comma-separated, CHAP when both the user
    /// and the password are set.
    pub fn from_parts(initiators: &str, user: Option<String>, password: Option<String>) -> Access {
        Access {
            initiators: initiators
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            chap: match (user, password) {
                (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                    Some(Chap { user, password })
                }
                _ => None,
            },
        }
    }
}

/// `tgtadm` argv builder bound to one control port (`None`: tgtd's default socket).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tgtadm {
    pub control_port: Option<u16>,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

impl Tgtadm {
    fn base(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = self.control_port {
            v.push("-C".to_string());
            v.push(p.to_string());
        }
        v.extend(s(&["--lld", "iscsi"]));
        v
    }

    fn with(&self, rest: &[&str]) -> Vec<String> {
        let mut v = self.base();
        v.extend(s(rest));
        v
    }

    /// `--mode target --op new --tid N --targetname IQN`
    pub fn new_target(&self, tid: u32, iqn: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.with(&[
            "--mode",
            "target",
            "--op",
            "new",
            "--tid",
            &tid,
            "--targetname",
            iqn,
        ])
    }

    /// `--mode logicalunit --op new --tid N --lun 1 --backing-store PATH --bstype rdwr`
    pub fn new_lun(&self, tid: u32, backing: &str) -> Vec<String> {
        let tid = tid.to_string();
        let lun = LUN.to_string();
        self.with(&[
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--backing-store",
            backing,
            "--bstype",
            "rdwr",
        ])
    }

    /// `--mode logicalunit --op update --tid N --lun 1 --params PARAMS`
    pub fn update_lun(&self, tid: u32, params: &str) -> Vec<String> {
        let tid = tid.to_string();
        let lun = LUN.to_string();
        self.with(&[
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            &tid,
            "--lun",
            &lun,
            "--params",
            params,
        ])
    }

    /// `--mode target --op bind --tid N --initiator-address ALL`
    pub fn bind_all(&self, tid: u32) -> Vec<String> {
        let tid = tid.to_string();
        self.with(&[
            "--mode",
            "target",
            "--op",
            "bind",
            "--tid",
            &tid,
            "--initiator-address",
            "ALL",
        ])
    }

    /// `--mode target --op bind --tid N --initiator-name IQN` for an initiator name
    /// (`iqn.`, `eui.`, `naa.`), else `--initiator-address ADDR` (an address or a subnet).
    pub fn bind_initiator(&self, tid: u32, who: &str) -> Vec<String> {
        let tid = tid.to_string();
        let by_name = ["iqn.", "eui.", "naa."].iter().any(|p| who.starts_with(p));
        let flag = if by_name {
            "--initiator-name"
        } else {
            "--initiator-address"
        };
        self.with(&["--mode", "target", "--op", "bind", "--tid", &tid, flag, who])
    }

    /// `--mode account --op new --user U --password P`
    pub fn new_account(&self, user: &str, password: &str) -> Vec<String> {
        self.with(&[
            "--mode",
            "account",
            "--op",
            "new",
            "--user",
            user,
            "--password",
            password,
        ])
    }

    /// `--mode account --op bind --tid N --user U`: initiators must log in with CHAP as U.
    pub fn bind_account(&self, tid: u32, user: &str) -> Vec<String> {
        let tid = tid.to_string();
        self.with(&[
            "--mode", "account", "--op", "bind", "--tid", &tid, "--user", user,
        ])
    }

    /// `--mode target --op delete --force --tid N` (force: initiators may be logged in).
    pub fn delete_target(&self, tid: u32) -> Vec<String> {
        let tid = tid.to_string();
        self.with(&[
            "--mode", "target", "--op", "delete", "--force", "--tid", &tid,
        ])
    }

    /// `--mode target --op unbind --tid N --initiator-address ADDR` (`ALL` or an address) or
    /// `--initiator-name IQN`: the reverse of a bind, as `show` lists it under ACL information.
    pub fn unbind(&self, tid: u32, acl: &str) -> Vec<String> {
        let tid = tid.to_string();
        let flag = if acl.starts_with("iqn.") || acl.starts_with("eui.") {
            "--initiator-name"
        } else {
            "--initiator-address"
        };
        self.with(&[
            "--mode", "target", "--op", "unbind", "--tid", &tid, flag, acl,
        ])
    }

    /// `--mode conn --op delete --tid N --sid S --cid C`: closes one initiator connection.
    pub fn close_connection(&self, tid: u32, sid: u64, cid: u64) -> Vec<String> {
        let (tid, sid, cid) = (tid.to_string(), sid.to_string(), cid.to_string());
        self.with(&[
            "--mode", "conn", "--op", "delete", "--tid", &tid, "--sid", &sid, "--cid", &cid,
        ])
    }

    /// `--mode target --op show`
    pub fn show(&self) -> Vec<String> {
        self.with(&["--mode", "target", "--op", "show"])
    }

    /// `--mode system --op delete`: stops tgtd (only for a tgtd we started ourselves).
    pub fn stop_daemon(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = self.control_port {
            v.push("-C".to_string());
            v.push(p.to_string());
        }
        v.extend(s(&["--mode", "system", "--op", "delete"]));
        v
    }
}

/// A LUN from `show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShownLun {
    pub lun: u32,
    /// `Size: 67 MB` (tgt prints decimal MB, rounded).
    pub size_mb: u64,
    pub backing_path: String,
}

/// A target from `show`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShownTarget {
    pub tid: u32,
    pub iqn: String,
    /// Number of `I_T nexus:` entries (logged-in sessions).
    pub sessions: usize,
    /// `(session, connection)` of every logged-in connection (`I_T nexus: S` /
    /// `Connection: C`).
    pub connections: Vec<(u64, u64)>,
    pub luns: Vec<ShownLun>,
    /// Lines under `ACL information:` (e.g. `ALL`).
    pub acl: Vec<String>,
}

fn parse_err(line: &str, what: &str) -> Error {
    Error::Parse(format!("{what} in tgtadm show line {line:?}"))
}

/// Parses `tgtadm --op show --mode target` output.
pub fn parse_show(out: &str) -> Result<Vec<ShownTarget>, Error> {
    let mut targets: Vec<ShownTarget> = Vec::new();
    let mut in_acl = false;
    let mut nexus: Option<u64> = None;
    for raw in out.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("Target ") {
            let (tid, iqn) = rest
                .split_once(':')
                .ok_or_else(|| parse_err(raw, "no ':'"))?;
            let tid = tid.trim().parse().map_err(|_| parse_err(raw, "bad tid"))?;
            nexus = None;
            targets.push(ShownTarget {
                tid,
                iqn: iqn.trim().to_string(),
                ..ShownTarget::default()
            });
            in_acl = false;
            continue;
        }
        let Some(t) = targets.last_mut() else {
            return Err(parse_err(raw, "text before the first target"));
        };
        if line.ends_with("information:") {
            in_acl = line == "ACL information:";
            continue;
        }
        if in_acl {
            t.acl.push(line.to_string());
        } else if let Some(sid) = line.strip_prefix("I_T nexus:") {
            t.sessions += 1;
            let sid = sid
                .trim()
                .parse()
                .map_err(|_| parse_err(raw, "bad I_T nexus"))?;
            nexus = Some(sid);
        } else if let Some(cid) = line.strip_prefix("Connection:") {
            let cid = cid
                .trim()
                .parse()
                .map_err(|_| parse_err(raw, "bad connection"))?;
            if let Some(sid) = nexus {
                t.connections.push((sid, cid));
            }
        } else if let Some(n) = line.strip_prefix("LUN:") {
            let lun = n.trim().parse().map_err(|_| parse_err(raw, "bad LUN"))?;
            t.luns.push(ShownLun {
                lun,
                ..ShownLun::default()
            });
        } else if let Some(rest) = line.strip_prefix("Size:") {
            let mb = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| parse_err(raw, "bad size"))?;
            if let Some(l) = t.luns.last_mut() {
                l.size_mb = mb;
            }
        } else if let Some(p) = line.strip_prefix("Backing store path:")
            && let Some(l) = t.luns.last_mut()
        {
            l.backing_path = p.trim().to_string();
        }
    }
    Ok(targets)
}

/// The tid tgt would print for `size` bytes (`Size: N MB`, rounded to nearest MB of 10^6).
pub fn shown_mb(size: u64) -> u64 {
    (size + 500_000) / 1_000_000
}

/// The tid to use for `iqn`: the one already serving it, else the first free one from a hash
/// of the IQN (so restarts and different volumes rarely collide).
pub fn choose_tid(targets: &[ShownTarget], iqn: &str) -> Result<u32, Error> {
    if let Some(t) = targets.iter().find(|t| t.iqn == iqn) {
        return Ok(t.tid);
    }
    let start = (xxhash_rust::xxh64::xxh64(iqn.as_bytes(), 0) % u64::from(TID_RANGE)) as u32;
    (0..TID_RANGE)
        .map(|i| (start + i) % TID_RANGE + 1)
        .find(|tid| targets.iter().all(|t| t.tid != *tid))
        .ok_or(Error::NoFreeTid)
}

/// How many times a target removal is tried while tgtd says a command is in flight (200 ms
/// apart).
const REMOVE_TRIES: u32 = 25;

/// The async side: runs tgtadm through [`Runner`].
#[derive(Clone, Debug)]
pub struct Tgt {
    pub adm: Tgtadm,
    pub runner: Runner,
}

impl Tgt {
    async fn run(&self, argv: Vec<String>) -> Result<String, RunError> {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.runner.run("tgtadm", &args).await.map(|o| o.stdout)
    }

    pub async fn show(&self) -> Result<Vec<ShownTarget>, Error> {
        let out = self.run(self.adm.show()).await?;
        parse_show(&out)
    }

    /// Serves `backing` as LUN 1 of a fresh target `iqn`, open to `access`; a target of that IQN
    /// left by an earlier run (its LUN points at a dead mount) is deleted first. Returns the tid.
    pub async fn serve(&self, iqn: &str, backing: &str, access: &Access) -> Result<u32, Error> {
        let shown = self.show().await?;
        if let Some(old) = shown.iter().find(|t| t.iqn == iqn) {
            tracing::info!(
                tid = old.tid,
                iqn,
                "removing a target left by an earlier run"
            );
            self.remove(old.tid).await?;
        }
        let shown: Vec<ShownTarget> = shown.into_iter().filter(|t| t.iqn != iqn).collect();
        let tid = choose_tid(&shown, iqn)?;
        self.run(self.adm.new_target(tid, iqn)).await?;
        let rest = async {
            self.run(self.adm.new_lun(tid, backing)).await?;
            if access.initiators.is_empty() {
                self.run(self.adm.bind_all(tid)).await?;
            }
            for who in &access.initiators {
                self.run(self.adm.bind_initiator(tid, who)).await?;
            }
            if let Some(chap) = &access.chap {
                // tgtd's accounts are the daemon's: one made for another volume is reused.
                if let Err(e) = self
                    .run(self.adm.new_account(&chap.user, &chap.password))
                    .await
                    && !e.to_string().contains("exist")
                {
                    return Err(e);
                }
                self.run(self.adm.bind_account(tid, &chap.user)).await?;
            }
            Ok::<_, RunError>(())
        };
        if let Err(e) = rest.await {
            let _ = self.run(self.adm.delete_target(tid)).await;
            return Err(e.into());
        }
        tracing::info!(tid, iqn, backing, "target served");
        Ok(tid)
    }

    /// Makes tgt see a new size of the backing file by re-opening it (the module doc says
    /// how); the caller holds the LUN's I/O meanwhile. A LUN found missing (a target whose
    /// LUN was lost) is added, that tried three times.
    pub async fn refresh_lun(&self, tid: u32, backing: &str) -> Result<(), Error> {
        if self.lun_mb(tid).await?.is_some() {
            self.run(self.adm.update_lun(tid, "online=0")).await?;
            let path = format!("path={backing}");
            if let Err(e) = self.run(self.adm.update_lun(tid, &path)).await {
                // Back online on the old file: the resize is tried again later.
                if let Err(back) = self.run(self.adm.update_lun(tid, "online=1")).await {
                    tracing::error!(tid, error = %back, "LUN left offline after a failed re-open");
                }
                return Err(e.into());
            }
            return Ok(());
        }
        let mut last = None;
        for attempt in 0..3u64 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await;
            }
            match self.run(self.adm.new_lun(tid, backing)).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(tid, attempt, error = %e, "re-adding the LUN failed");
                    last = Some(e);
                }
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::Parse("LUN not re-added".into())))
    }

    /// LUN 1's size as tgt shows it (MB), None when the target or LUN is missing.
    pub async fn lun_mb(&self, tid: u32) -> Result<Option<u64>, Error> {
        let shown = self.show().await?;
        Ok(shown
            .iter()
            .find(|t| t.tid == tid)
            .and_then(|t| t.luns.iter().find(|l| l.lun == LUN))
            .map(|l| l.size_mb))
    }

    pub async fn remove(&self, tid: u32) -> Result<(), Error> {
        let shown = self.show().await?;
        let Some(target) = shown.iter().find(|t| t.tid == tid) else {
            return Ok(());
        };
        // No new logins, then every connection closed: an initiator sees its session drop
        // (not an I/O error), keeps trying to log in again and re-sends what was in flight
        // once the next target of this IQN serves (docs/volumes.md, "A target restarted").
        for acl in &target.acl {
            if let Err(e) = self.run(self.adm.unbind(tid, acl)).await {
                tracing::warn!(tid, acl, error = %e, "unbinding an initiator failed");
            }
        }
        for (sid, cid) in &target.connections {
            if let Err(e) = self.run(self.adm.close_connection(tid, *sid, *cid)).await {
                tracing::warn!(tid, sid, cid, error = %e, "closing a connection failed");
            }
        }
        // tgtd refuses while a command is in flight ("still active"); those end in moments.
        let mut last = None;
        for attempt in 0..REMOVE_TRIES {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            match self.run(self.adm.delete_target(tid)).await {
                Ok(_) => return Ok(()),
                Err(e) if e.to_string().contains("still active") => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(Error::from)
            .unwrap_or_else(|| Error::Parse("target not removed".into())))
    }
}
