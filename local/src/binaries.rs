//! Resolves the control-plane binaries: `$KUBEBUILDER_ASSETS`, then a versioned cache under
//! `target/`, else a one-time Go build from the published modules in `local/go/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nix::fcntl::{Flock, FlockArg};

use crate::Error;

/// Kubernetes version built from `local/go/k8s/go.mod`.
pub const KUBERNETES_VERSION: &str = "v1.37.2";
/// etcd version built from `local/go/etcd/go.mod`.
pub const ETCD_VERSION: &str = "v3.6.16";
/// Oldest Go that builds both modules (their `go` lines).
const MIN_GO_MINOR: u32 = 26;

/// Paths of the four binaries the local control plane runs.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kubectl: PathBuf,
}

/// The Go module directory (`local/go`) of this checkout.
pub fn go_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("go")
}

/// The cache directory for this version pair: `<target>/controlplane/k8s-<v>-etcd-<v>/`.
pub fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target
        .join("controlplane")
        .join(format!("k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"))
}

const NAMES: [&str; 4] = [
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
    "kubectl",
];

/// Finds every binary, building the missing ones with Go (once; concurrent callers wait on a
/// file lock). `progress` receives human-readable lines.
pub fn resolve(progress: &mut dyn FnMut(&str)) -> Result<Binaries, Error> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from);
    let cache = cache_dir();
    let find = |name: &str| -> Option<PathBuf> {
        assets
            .iter()
            .map(|dir| dir.join(name))
            .chain(std::iter::once(cache.join(name)))
            .find(|p| is_executable(p))
    };
    if NAMES.iter().any(|n| find(n).is_none()) {
        std::fs::create_dir_all(&cache).map_err(|e| Error::io(&cache, e))?;
        let lock_path = cache.join(".build.lock");
        let lock_file = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::io(&lock_path, std::io::Error::from(e)))?;
        // Another process may have built them while we waited for the lock.
        let missing: Vec<&str> = NAMES
            .iter()
            .copied()
            .filter(|n| find(n).is_none())
            .collect();
        if !missing.is_empty() {
            build(&missing, &cache, progress)?;
        }
    }
    let get = |name: &str| {
        find(name).ok_or_else(|| Error::Build(format!("{name} is still missing after the build")))
    };
    Ok(Binaries {
        kube_apiserver: get("kube-apiserver")?,
        etcd: get("etcd")?,
        kube_controller_manager: get("kube-controller-manager")?,
        kubectl: get("kubectl")?,
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Checks that a usable Go is on PATH and returns its version line.
pub fn check_go() -> Result<String, Error> {
    let out = Command::new("go").arg("version").output().map_err(|_| {
        Error::GoMissing(
            "Go is not installed (no `go` on PATH). The local control plane (kube-apiserver, \
             etcd, kube-controller-manager, kubectl) is built once from the published Go \
             modules and needs Go >= 1.26; install Go, or set KUBEBUILDER_ASSETS to a directory \
             holding those binaries."
                .into(),
        )
    })?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let minor = line
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= MIN_GO_MINOR => Ok(line),
        _ => Err(Error::GoMissing(format!(
            "`{line}` is too old or unrecognised: building Kubernetes {KUBERNETES_VERSION} needs \
             Go >= 1.{MIN_GO_MINOR}"
        ))),
    }
}

fn build(missing: &[&str], cache: &Path, progress: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let go = check_go()?;
    progress(&format!(
        "building the local control plane ({}) with {go}; a cold build takes ~8 minutes on 2 cores, \
         later runs use the cache in {}",
        missing.join(", "),
        cache.display()
    ));
    let staging = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(cache)
        .map_err(|e| Error::io(cache, e))?;
    let k8s: Vec<&str> = missing.iter().copied().filter(|n| *n != "etcd").collect();
    if !k8s.is_empty() {
        let version_pkgs = [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ];
        let (major, minor) = ("1", KUBERNETES_VERSION.split('.').nth(1).unwrap_or("0"));
        let mut ldflags = String::from("-s -w");
        for pkg in version_pkgs {
            ldflags.push_str(&format!(
                " -X {pkg}.gitVersion={KUBERNETES_VERSION} -X {pkg}.gitMajor={major} \
                 -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
            ));
        }
        let pkgs: Vec<String> = k8s
            .iter()
            .map(|n| format!("k8s.io/kubernetes/cmd/{n}"))
            .collect();
        let mut cmd = Command::new("go");
        cmd.current_dir(go_dir().join("k8s"))
            .args([
                "build",
                "-v",
                "-trimpath",
                "-buildvcs=false",
                "-ldflags",
                &ldflags,
                "-o",
            ])
            .arg(staging.path())
            .args(&pkgs);
        run_go(cmd, &k8s.join(", "), progress)?;
    }
    if missing.contains(&"etcd") {
        let mut cmd = Command::new("go");
        cmd.current_dir(go_dir().join("etcd"))
            .args([
                "build",
                "-v",
                "-trimpath",
                "-buildvcs=false",
                "-ldflags",
                "-s -w",
                "-o",
            ])
            .arg(staging.path().join("etcd"))
            .arg(".");
        run_go(cmd, "etcd", progress)?;
    }
    for name in missing {
        let from = staging.path().join(name);
        let to = cache.join(name);
        std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(())
}

fn run_go(mut cmd: Command, what: &str, progress: &mut dyn FnMut(&str)) -> Result<(), Error> {
    let started = Instant::now();
    // GOFLAGS from the environment (e.g. -mod=vendor) must not change what we build.
    cmd.env("GOFLAGS", "-mod=readonly")
        .env("CGO_ENABLED", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let argv = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Build(format!("cannot run {argv}: {e}")))?;
    let mut tail: Vec<String> = Vec::new();
    let mut packages = 0usize;
    let mut last_report = Instant::now();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            packages += 1;
            if last_report.elapsed().as_secs() >= 15 {
                progress(&format!(
                    "  {what}: {packages} packages compiled, {}s",
                    started.elapsed().as_secs()
                ));
                last_report = Instant::now();
            }
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::Build(format!("waiting for {argv}: {e}")))?;
    if !status.success() {
        return Err(Error::Build(format!(
            "{argv} failed ({status}); last output:\n{}",
            tail.join("\n")
        )));
    }
    progress(&format!(
        "  {what}: built in {}s",
        started.elapsed().as_secs()
    ));
    Ok(())
}
