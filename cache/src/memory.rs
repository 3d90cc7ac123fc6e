//! The default host-memory budget: a share of the memory available when the process starts.

/// Memory assumed available where it cannot be read (non-Linux systems, or no
/// `/proc/meminfo`): 4 GiB, small enough to be safe on a laptop.
pub const FALLBACK_AVAILABLE_BYTES: u64 = 4 << 30;

/// `share` (clamped to 0..=1) of the host memory available now, for
/// [`crate::CacheConfig::budgets`] of [`crate::DeviceId::Cpu`].
///
/// On Linux it reads `MemAvailable` from `/proc/meminfo` (memory obtainable without swapping,
/// page cache included). Elsewhere, or when the file cannot be read or parsed, it uses the
/// conservative [`FALLBACK_AVAILABLE_BYTES`].
pub fn default_cpu_budget(share: f64) -> u64 {
    let available = available_bytes().unwrap_or(FALLBACK_AVAILABLE_BYTES);
    scaled(available, share)
}

fn scaled(bytes: u64, share: f64) -> u64 {
    let share = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    // f64 holds byte counts of any real machine exactly enough; the cast saturates.
    (bytes as f64 * share) as u64
}

#[cfg(target_os = "linux")]
fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

#[cfg(not(target_os = "linux"))]
fn available_bytes() -> Option<u64> {
    None
}

/// The `MemAvailable:  123456 kB` line, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    let scale = match fields.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal:       16310108 kB\nMemFree:         1034432 kB\n\
                    MemAvailable:    8000000 kB\nBuffers:          123 kB\n";
        assert_eq!(parse_mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: x kB\n"), None);
    }

    #[test]
    fn share_is_clamped() {
        assert_eq!(scaled(1000, 0.5), 500);
        assert_eq!(scaled(1000, 2.0), 1000);
        assert_eq!(scaled(1000, -1.0), 0);
        assert_eq!(scaled(1000, f64::NAN), 0);
        assert!(default_cpu_budget(0.5) > 0);
    }
}
