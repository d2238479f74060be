//! Parsers of `zpool status` and `zpool list -H` output, as the zfs-fuse and cStor uZFS CLIs
//! print it (no `-P`/`-p` there: paths are as given at create time, sizes are human).

/// A parse failure, naming the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("zpool status: {0}")]
    Status(String),
    #[error("zpool list line {line}: {reason}")]
    List { line: usize, reason: String },
}

/// One node of the vdev tree: the pool, a raid group (`mirror-0`, `raidz1-1`) or a disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vdev {
    pub name: String,
    pub state: String,
    pub read_errors: u64,
    pub write_errors: u64,
    pub checksum_errors: u64,
    /// Anything after the counters, e.g. `12K resilvered`.
    pub note: String,
    pub children: Vec<Vdev>,
}

/// What `zpool status <pool>` says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: String,
    pub state: String,
    /// The `status:` paragraph, joined into one line (empty when healthy).
    pub status: String,
    /// The `scrub:` line, e.g. `resilver in progress …`, `none requested`.
    pub scrub: String,
    /// The pool's vdev tree (`config:`), root first.
    pub root: Vdev,
    pub errors: String,
}

impl PoolStatus {
    /// Whether a resilver is running (a replaced disk is not yet redundant).
    pub fn resilvering(&self) -> bool {
        self.scrub.starts_with("resilver in progress")
    }

    /// The disks of each top-level data group, in order; a disk directly under the pool
    /// (stripe) is a group of one.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        Self::grouped(self.root.children.iter().filter(|v| !is_section(&v.name)))
    }

    /// The groups of a section (`logs`, `cache`, `spares`), like [`Self::groups`].
    pub fn section(&self, name: &str) -> Vec<(String, Vec<String>)> {
        Self::grouped(
            self.root
                .children
                .iter()
                .filter(|v| v.name == name)
                .flat_map(|v| v.children.iter()),
        )
    }

    fn grouped<'a>(tops: impl Iterator<Item = &'a Vdev>) -> Vec<(String, Vec<String>)> {
        tops.map(|top| {
            if top.children.is_empty() {
                ("disk".to_string(), vec![top.name.clone()])
            } else {
                (
                    top.name.clone(),
                    top.children.iter().map(|d| d.name.clone()).collect(),
                )
            }
        })
        .collect()
    }
}

fn is_section(name: &str) -> bool {
    matches!(name, "logs" | "cache" | "spares")
}

fn counter(s: Option<&str>) -> u64 {
    s.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Parses the output of `zpool status <pool>` (one pool).
pub fn parse_status(text: &str) -> Result<PoolStatus, ParseError> {
    let mut out = PoolStatus::default();
    let lines = text.lines();
    let mut in_config = false;
    // (indent, vdev) path from the root to the last node read.
    let mut stack: Vec<(usize, Vdev)> = Vec::new();
    let mut last_key = "";
    for line in lines {
        let trimmed = line.trim();
        if in_config {
            if trimmed.is_empty() {
                if stack.is_empty() {
                    continue;
                }
                in_config = false;
                continue;
            }
            if trimmed.starts_with("NAME") && trimmed.contains("STATE") {
                continue;
            }
            let mut indent = line.len() - line.trim_start().len();
            // `logs`, `cache` and `spares` head sections at the root's own indent; they belong
            // under the root.
            if matches!(trimmed, "logs" | "cache" | "spares")
                && stack.first().is_some_and(|(root, _)| *root == indent)
            {
                indent += 1;
            }
            let mut words = trimmed.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let state = words.next().unwrap_or_default().to_string();
            let read_errors = counter(words.next());
            let write_errors = counter(words.next());
            let checksum_errors = counter(words.next());
            let note = words.collect::<Vec<_>>().join(" ");
            let node = Vdev {
                name,
                state,
                read_errors,
                write_errors,
                checksum_errors,
                note,
                children: Vec::new(),
            };
            // Close every open node at this depth or deeper.
            while let Some((depth, _)) = stack.last() {
                if *depth < indent {
                    break;
                }
                let Some((_, done)) = stack.pop() else { break };
                match stack.last_mut() {
                    Some((_, parent)) => parent.children.push(done),
                    None => {
                        return Err(ParseError::Status(format!(
                            "second root vdev {:?} in the config",
                            done.name
                        )));
                    }
                }
            }
            stack.push((indent, node));
            continue;
        }
        if let Some((key, value)) = trimmed.split_once(':')
            && matches!(
                key,
                "pool"
                    | "state"
                    | "status"
                    | "action"
                    | "scrub"
                    | "scan"
                    | "see"
                    | "config"
                    | "errors"
            )
        {
            last_key = key;
            let value = value.trim().to_string();
            match key {
                "pool" => out.name = value,
                "state" => out.state = value,
                "status" => out.status = value,
                "scrub" | "scan" => out.scrub = value,
                "errors" => out.errors = value,
                "config" => in_config = true,
                _ => {}
            }
            continue;
        }
        // Continuation lines of a paragraph (status/action) are indented with a tab.
        if !trimmed.is_empty() && last_key == "status" && line.starts_with('\t') {
            out.status.push(' ');
            out.status.push_str(trimmed);
        }
    }
    while let Some((_, done)) = stack.pop() {
        match stack.last_mut() {
            Some((_, parent)) => parent.children.push(done),
            None => out.root = done,
        }
    }
    if out.name.is_empty() {
        return Err(ParseError::Status("no `pool:` line".into()));
    }
    if out.root.name != out.name {
        return Err(ParseError::Status(format!(
            "config root {:?} is not the pool {:?}",
            out.root.name, out.name
        )));
    }
    Ok(out)
}

/// One row of `zpool list -H -o name,size,allocated,free,health`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRow {
    pub name: String,
    pub size: u64,
    pub allocated: u64,
    pub free: u64,
    pub health: String,
}

/// `250M`, `1.47G`, `556K`, `0`, `12345` → bytes (binary units, as zpool prints them).
pub fn human_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let factor: u64 = match unit {
        "" | "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        "P" => 1 << 50,
        "E" => 1 << 60,
        _ => return None,
    };
    let value: f64 = num.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let bytes = value * factor as f64;
    (bytes < u64::MAX as f64).then_some(bytes.round() as u64)
}

/// Parses `zpool list -H -o name,size,allocated,free,health`.
pub fn parse_list(text: &str) -> Result<Vec<ListRow>, ParseError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, size, allocated, free, health] = fields.as_slice() else {
            return Err(ParseError::List {
                line: i + 1,
                reason: format!("expected 5 tab-separated fields, got {}", fields.len()),
            });
        };
        let bytes = |what: &str, v: &str| {
            human_bytes(v).ok_or_else(|| ParseError::List {
                line: i + 1,
                reason: format!("{what} {v:?} is not a size"),
            })
        };
        rows.push(ListRow {
            name: name.to_string(),
            size: bytes("size", size)?,
            allocated: bytes("allocated", allocated)?,
            free: bytes("free", free)?,
            health: health.to_string(),
        });
    }
    Ok(rows)
}
