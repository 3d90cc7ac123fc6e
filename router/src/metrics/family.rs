//! Metric families for the Prometheus text format: [`CounterVec`] and [`HistogramVec`] keep one
//! atomic series per label set (found under a read lock, created once under a write lock), and
//! [`Exposition`] writes `# HELP`, `# TYPE` and samples with escaped label values.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nfai_inference::histogram::{AtomicHistogram, HistogramSnapshot};

/// Prometheus text being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` lines of a family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for &(le, count) in &h.buckets {
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(le));
            let _ = writeln!(self.out, " {count}");
        }
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", number(h.sum));
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    /// Text already in the exposition format (another component's families).
    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    pub fn into_string(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<f64>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    if let Some(le) = le {
        if !labels.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "le=\"{}\"", number(le));
    }
    out.push('}');
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value as Prometheus writes it.
pub fn number(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        v.to_string()
    }
}

/// A family of counters with the label names `labels`.
#[derive(Debug)]
pub struct CounterVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    series: RwLock<HashMap<[String; N], Arc<AtomicU64>>>,
}

impl<const N: usize> CounterVec<N> {
    pub fn new(name: &'static str, help: &'static str, labels: [&'static str; N]) -> Self {
        Self {
            name,
            help,
            labels,
            series: RwLock::new(HashMap::new()),
        }
    }

    /// Adds `n` to the series of `values`.
    pub fn add(&self, values: [&str; N], n: u64) {
        if let Some(c) = series(&self.series, values, || AtomicU64::new(0)) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn inc(&self, values: [&str; N]) {
        self.add(values, 1);
    }

    /// The value of one series (0 when it was never touched).
    pub fn get(&self, values: [&str; N]) -> u64 {
        let key = values.map(str::to_string);
        self.series
            .read()
            .ok()
            .and_then(|m| m.get(&key).map(|c| c.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    pub fn render(&self, out: &mut Exposition) {
        out.family(self.name, "counter", self.help);
        for (key, c) in sorted(&self.series) {
            let labels = zip_labels(&self.labels, &key);
            out.sample(self.name, &labels, c.load(Ordering::Relaxed) as f64);
        }
    }
}

/// A family of histograms with the label names `labels` and the bucket bounds `bounds`.
#[derive(Debug)]
pub struct HistogramVec<const N: usize> {
    name: &'static str,
    help: &'static str,
    labels: [&'static str; N],
    bounds: &'static [f64],
    series: RwLock<HashMap<[String; N], Arc<AtomicHistogram>>>,
}

impl<const N: usize> HistogramVec<N> {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            labels,
            bounds,
            series: RwLock::new(HashMap::new()),
        }
    }

    pub fn observe(&self, values: [&str; N], v: f64) {
        let bounds = self.bounds;
        if let Some(h) = series(&self.series, values, || AtomicHistogram::new(bounds)) {
            h.observe(v);
        }
    }

    pub fn render(&self, out: &mut Exposition) {
        out.family(self.name, "histogram", self.help);
        for (key, h) in sorted(&self.series) {
            let labels = zip_labels(&self.labels, &key);
            out.histogram(self.name, &labels, &h.snapshot());
        }
    }
}

/// The series of `values`, made with `make` the first time.
fn series<T, const N: usize>(
    map: &RwLock<HashMap<[String; N], Arc<T>>>,
    values: [&str; N],
    make: impl FnOnce() -> T,
) -> Option<Arc<T>> {
    let key = values.map(str::to_string);
    if let Some(s) = map.read().ok()?.get(&key) {
        return Some(s.clone());
    }
    let mut w = map.write().ok()?;
    Some(w.entry(key).or_insert_with(|| Arc::new(make())).clone())
}

fn sorted<T, const N: usize>(
    map: &RwLock<HashMap<[String; N], Arc<T>>>,
) -> Vec<([String; N], Arc<T>)> {
    let mut all: Vec<_> = map
        .read()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn zip_labels<'a, const N: usize>(
    names: &[&'static str; N],
    values: &'a [String; N],
) -> Vec<(&'static str, &'a str)> {
    names
        .iter()
        .zip(values.iter())
        .map(|(k, v)| (*k, v.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_escaped_sorted_series() {
        let c = CounterVec::new("x_total", "Things.", ["a"]);
        c.inc(["b\"q"]);
        c.add(["a"], 2);
        let h = HistogramVec::new("y_seconds", "Time.", ["a"], &[0.5]);
        h.observe(["z"], 0.25);
        let mut out = Exposition::new();
        c.render(&mut out);
        h.render(&mut out);
        let text = out.into_string();
        assert!(
            text.contains("x_total{a=\"a\"} 2\nx_total{a=\"b\\\"q\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("y_seconds_bucket{a=\"z\",le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("y_seconds_bucket{a=\"z\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("y_seconds_count{a=\"z\"} 1\n"), "{text}");
        assert_eq!(c.get(["a"]), 2);
    }
}
