//! Timestamps of the demo records: seconds after 2026-01-01T00:00:00Z written as PostgreSQL
//! `timestamptz` text, without a date library.

/// 2026-01-01T00:00:00Z in days since 1970-01-01.
const EPOCH_DAYS: i64 = 20_454;

/// `YYYY-MM-DD HH:MM:SS+00` for `secs` after the demo's epoch.
pub fn timestamp(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(0);
    let days = EPOCH_DAYS + secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}+00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_a_leap_day() {
        assert_eq!(timestamp(0), "2026-01-01 00:00:00+00");
        assert_eq!(timestamp(59 * 86_400 + 3_661), "2026-03-01 01:01:01+00");
        // 2028 is a leap year: 2028-02-29 is day 789 after 2026-01-01.
        assert_eq!(timestamp(789 * 86_400).get(..10), Some("2028-02-29"));
    }
}
