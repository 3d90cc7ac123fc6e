//! How a fetch reports progress: [`Reporter`] lines (a terminal, else `tracing`), the live
//! [`Progress`] line of a large file, and byte counts for people.

/// Where progress goes: plain lines on a terminal, `tracing` events otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reporter {
    pub(crate) terminal: bool,
}

impl Reporter {
    pub(crate) fn line(&self, msg: &str) {
        if self.terminal {
            eprintln!("{msg}");
        } else {
            tracing::info!("{msg}");
        }
    }
}

/// Copy buffer size.
pub(crate) const BUF_SIZE: usize = 1 << 20;

/// Files at least this large get a live progress line on a terminal.
const LIVE_THRESHOLD: u64 = 8 << 20;

/// A `\r`-updated progress line on a terminal; silent otherwise and for small files.
pub(crate) struct Progress {
    label: String,
    total: u64,
    done: u64,
    last_pct: Option<u64>,
    live: bool,
}

impl Progress {
    pub(crate) fn new(out: &Reporter, label: String, total: u64) -> Self {
        let live = out.terminal && total >= LIVE_THRESHOLD;
        Self {
            label,
            total,
            done: 0,
            last_pct: None,
            live,
        }
    }

    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.live {
            return;
        }
        let pct = (self.done.saturating_mul(100) / self.total.max(1)).min(100);
        if self.last_pct != Some(pct) {
            self.last_pct = Some(pct);
            eprint!(
                "\r  {}: {} / {} ({pct}%)",
                self.label,
                human_bytes(self.done),
                human_bytes(self.total)
            );
        }
    }

    /// Ends the live line, if any, with `suffix`.
    pub(crate) fn finish(self, suffix: &str) {
        if self.live {
            eprintln!(
                "\r  {}: {} / {} (100%){suffix}",
                self.label,
                human_bytes(self.done),
                human_bytes(self.total)
            );
        }
    }
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
