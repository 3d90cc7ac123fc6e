//! How long an idle model stays resident: [`KeepAlive`] and its parsers for the API's
//! `keep_alive` field (duration strings such as `"10m"` or `"1h30m"`, or numbers of seconds;
//! anything negative means forever).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a model stays loaded after its last lease is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepAlive {
    /// Never unloaded for being idle (written as a negative value in the API).
    Forever,
    /// Unloaded this long after it became idle; zero unloads it as soon as the last lease drops.
    Duration(Duration),
}

impl KeepAlive {
    /// Five minutes, the default when neither the request, the catalog nor the config says.
    pub const DEFAULT: KeepAlive = KeepAlive::Duration(Duration::from_secs(300));

    /// The idle duration, or `None` for [`KeepAlive::Forever`].
    pub fn duration(self) -> Option<Duration> {
        match self {
            KeepAlive::Forever => None,
            KeepAlive::Duration(d) => Some(d),
        }
    }

    /// True for a zero duration: unload when the last lease drops.
    pub fn is_zero(self) -> bool {
        self == KeepAlive::Duration(Duration::ZERO)
    }

    /// Parses the API's `keep_alive` value: a duration string (`"10m"`, `"1h30m"`, `"45s"`,
    /// `"500ms"`, `"1.5h"`; units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`), a plain number of seconds
    /// as a string or a JSON number; any negative value (`-1`, `"-1"`, `"-1s"`) is
    /// [`KeepAlive::Forever`]. The error text names the rejected value.
    pub fn parse_json(value: &serde_json::Value) -> Result<KeepAlive, String> {
        let invalid = || {
            format!(
                "invalid keep_alive {value}: expected a duration such as \"5m\" or \"1h30m\", \
                 or a number of seconds (negative keeps the model loaded forever)"
            )
        };
        match value {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(secs) => from_seconds(secs).ok_or_else(invalid),
                None => Err(invalid()),
            },
            serde_json::Value::String(s) => parse_text(s).ok_or_else(invalid),
            _ => Err(invalid()),
        }
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive::DEFAULT
    }
}

impl FromStr for KeepAlive {
    type Err = String;

    /// The string forms accepted by [`KeepAlive::parse_json`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeepAlive::parse_json(&serde_json::Value::String(s.to_owned()))
    }
}

impl fmt::Display for KeepAlive {
    /// `-1` for forever, else the compact form the parser accepts (`1h30m`, `45s`, `500ms`, `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = match self {
            KeepAlive::Forever => return f.write_str("-1"),
            KeepAlive::Duration(d) => *d,
        };
        if d.is_zero() {
            return f.write_str("0s");
        }
        let secs = d.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let nanos = d.subsec_nanos();
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if nanos > 0 {
            if nanos % 1_000_000 == 0 {
                write!(f, "{}ms", nanos / 1_000_000)?;
            } else if nanos % 1_000 == 0 {
                write!(f, "{}us", nanos / 1_000)?;
            } else {
                write!(f, "{nanos}ns")?;
            }
        }
        Ok(())
    }
}

/// A number of seconds; negative is forever. `None` for NaN, infinity or an overflow.
fn from_seconds(secs: f64) -> Option<KeepAlive> {
    if secs.is_nan() {
        return None;
    }
    if secs < 0.0 {
        return Some(KeepAlive::Forever);
    }
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(KeepAlive::Duration)
}

/// A duration string or a plain number of seconds.
fn parse_text(text: &str) -> Option<KeepAlive> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(secs) = text.parse::<f64>() {
        // `parse::<f64>` also accepts "inf" and "NaN"; only plain numbers count as seconds.
        if text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        {
            return from_seconds(secs);
        }
        return None;
    }
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let duration = parse_units(rest)?;
    if negative && !duration.is_zero() {
        return Some(KeepAlive::Forever);
    }
    Some(KeepAlive::Duration(duration))
}

/// A sequence of `<number><unit>` terms, e.g. `1h30m` or `1.5s`.
fn parse_units(mut rest: &str) -> Option<Duration> {
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" | "μs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: u64) -> KeepAlive {
        KeepAlive::Duration(Duration::from_secs(s))
    }

    #[test]
    fn duration_strings() {
        let cases = [
            ("10m", secs(600)),
            ("1h30m", secs(5400)),
            ("45s", secs(45)),
            ("500ms", KeepAlive::Duration(Duration::from_millis(500))),
            ("1.5h", secs(5400)),
            ("2h3m4s", secs(7384)),
            ("250us", KeepAlive::Duration(Duration::from_micros(250))),
            ("0", secs(0)),
            ("0s", secs(0)),
            ("300", secs(300)),
            (" 5m ", secs(300)),
            ("-1", KeepAlive::Forever),
            ("-1s", KeepAlive::Forever),
            ("-5m", KeepAlive::Forever),
        ];
        for (text, want) in cases {
            assert_eq!(KeepAlive::parse_json(&json!(text)), Ok(want), "{text}");
            assert_eq!(text.parse::<KeepAlive>(), Ok(want), "{text}");
        }
    }

    #[test]
    fn numbers_are_seconds() {
        assert_eq!(KeepAlive::parse_json(&json!(30)), Ok(secs(30)));
        assert_eq!(KeepAlive::parse_json(&json!(0)), Ok(secs(0)));
        assert_eq!(
            KeepAlive::parse_json(&json!(1.5)),
            Ok(KeepAlive::Duration(Duration::from_millis(1500)))
        );
        assert_eq!(KeepAlive::parse_json(&json!(-1)), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse_json(&json!(-0.5)), Ok(KeepAlive::Forever));
    }

    #[test]
    fn invalid_values_are_named() {
        for bad in [
            json!("ten minutes"),
            json!(""),
            json!("5x"),
            json!("m"),
            json!("1h-5m"),
            json!("inf"),
            json!("NaN"),
            json!(true),
            json!(null),
            json!([1]),
            json!({"s": 1}),
            json!(1e300),
        ] {
            let err = KeepAlive::parse_json(&bad).err();
            let err = err.unwrap_or_else(|| panic!("{bad} should be rejected"));
            assert!(err.contains(&bad.to_string()), "{err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for ka in [
            KeepAlive::Forever,
            secs(0),
            secs(45),
            secs(5400),
            KeepAlive::Duration(Duration::from_millis(500)),
            KeepAlive::Duration(Duration::from_millis(61_250)),
        ] {
            assert_eq!(ka.to_string().parse::<KeepAlive>(), Ok(ka), "{ka}");
        }
        assert_eq!(secs(5400).to_string(), "1h30m");
        assert_eq!(KeepAlive::Forever.to_string(), "-1");
        assert_eq!(KeepAlive::default(), secs(300));
    }
}
