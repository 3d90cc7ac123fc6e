//! Citation markers in the model's answer → `file_citation` annotations.
//!
//! The prompt numbers its sources `[1]`, `[2]`, … ([`super::prompt`]). [`Citer`] reads the
//! answer as it is generated and removes every marker that names a source in the prompt
//! (`[2]`, `[1, 3]`, `[1][2]`), together with the whitespace just before it; markers naming no
//! such source (`[7]` of three, `[a]`) stay in the text as written. Each removed number becomes
//! a [`Citation`] whose `index` is the position in the final text where the marker stood,
//! counted in characters (Unicode scalar values, as Python indexes a `str`), never in bytes.
//!
//! When the answer holds no marker at all, [`annotations`] still cites what the answer was built
//! from: one annotation per distinct file of the sources in the prompt, in rank order, each at
//! the end of the text.
//!
//! Streaming: text after a possible marker start (`[`) or trailing whitespace is held back until
//! it is known not to be (part of) a marker, so deltas never show a marker.

use super::prompt::Source;

/// The longest marker looked at; a longer bracket is ordinary text.
const MAX_MARKER: usize = 24;

/// One cited source number at a character position of the final text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Citation {
    /// Characters of the final text before the citation.
    pub index: usize,
    /// The source's position in the prompt's numbering (marker `[n]` → `n - 1`).
    pub source: usize,
}

/// A `file_citation` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub index: usize,
    pub file_id: String,
    pub filename: String,
}

/// Removes markers from a text that arrives in pieces; see the module docs.
#[derive(Debug, Default)]
pub struct Citer {
    sources: usize,
    /// Characters emitted so far.
    emitted: usize,
    /// Whitespace held back: dropped if a marker follows.
    space: String,
    /// A bracket that may still become a marker.
    marker: Option<String>,
    citations: Vec<Citation>,
}

enum Shape {
    /// A whole marker with its numbers.
    Whole(Vec<usize>),
    /// May still become a marker.
    Prefix,
    /// Cannot become a marker.
    Not,
}

fn shape(m: &str) -> Shape {
    let body = m.get(1..).unwrap_or("");
    let (inner, closed) = match body.strip_suffix(']') {
        Some(inner) => (inner, true),
        None => (body, false),
    };
    if inner.contains(']') || m.chars().count() > MAX_MARKER {
        return Shape::Not;
    }
    let parts: Vec<&str> = inner.split(',').collect();
    let last = parts.len() - 1;
    let mut nums = Vec::with_capacity(parts.len());
    for (k, part) in parts.iter().enumerate() {
        let p = if k == 0 { part } else { part.trim_start() };
        let digits = p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
        let complete = digits && !p.is_empty();
        let ok = if closed || k < last { complete } else { digits };
        if !ok {
            return Shape::Not;
        }
        if complete {
            nums.push(p.parse::<usize>().unwrap_or(0));
        }
    }
    if closed {
        Shape::Whole(nums)
    } else {
        Shape::Prefix
    }
}

impl Citer {
    /// A citer for a prompt with `sources` numbered sources.
    pub fn new(sources: usize) -> Self {
        Self {
            sources,
            ..Self::default()
        }
    }

    fn emit(&mut self, out: &mut String, text: &str) {
        self.emitted += text.chars().count();
        out.push_str(text);
    }

    fn flush_held(&mut self, out: &mut String) {
        let space = std::mem::take(&mut self.space);
        self.emit(out, &space);
        if let Some(m) = self.marker.take() {
            self.emit(out, &m);
        }
    }

    /// Takes the next piece of the answer; returns the text that may be shown now.
    pub fn push(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            self.step(c, &mut out);
        }
        out
    }

    fn step(&mut self, c: char, out: &mut String) {
        if let Some(mut m) = self.marker.take() {
            m.push(c);
            match shape(&m) {
                Shape::Prefix => self.marker = Some(m),
                Shape::Whole(nums) if nums.iter().all(|&n| (1..=self.sources).contains(&n)) => {
                    self.space.clear();
                    for n in nums {
                        self.citations.push(Citation {
                            index: self.emitted,
                            source: n - 1,
                        });
                    }
                }
                Shape::Whole(_) => {
                    self.marker = Some(m);
                    self.flush_held(out);
                }
                Shape::Not => {
                    m.pop();
                    self.marker = Some(m);
                    self.flush_held(out);
                    self.step(c, out);
                }
            }
            return;
        }
        if c == '[' && self.sources > 0 {
            self.marker = Some("[".to_owned());
        } else if c.is_whitespace() {
            self.space.push(c);
        } else {
            self.flush_held(out);
            let mut buf = [0u8; 4];
            self.emit(out, c.encode_utf8(&mut buf));
        }
    }

    /// Ends the answer; returns the text still held back.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.flush_held(&mut out);
        out
    }

    /// The citations found so far.
    pub fn citations(&self) -> &[Citation] {
        &self.citations
    }

    /// Characters of the final text emitted so far.
    pub fn emitted_chars(&self) -> usize {
        self.emitted
    }
}

/// A whole answer without its markers, and their citations.
pub fn strip(text: &str, sources: usize) -> (String, Vec<Citation>) {
    let mut c = Citer::new(sources);
    let mut out = c.push(text);
    out.push_str(&c.finish());
    (out, c.citations)
}

/// The annotations of an answer of `text_chars` characters with `citations`, over the prompt's
/// `sources` (in their numbering). Without citations: one per distinct file, at the end.
pub fn annotations(
    citations: &[Citation],
    sources: &[&Source],
    text_chars: usize,
) -> Vec<Annotation> {
    let of = |index: usize, s: &Source| Annotation {
        index,
        file_id: s.file_id.clone(),
        filename: s.filename.clone(),
    };
    if citations.is_empty() {
        let mut seen = std::collections::HashSet::new();
        return sources
            .iter()
            .filter(|s| seen.insert(s.file_id.as_str()))
            .map(|s| of(text_chars, s))
            .collect();
    }
    citations
        .iter()
        .filter_map(|c| sources.get(c.source).map(|s| of(c.index, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: &str) -> Source {
        Source {
            file_id: id.into(),
            filename: format!("{id}.txt"),
            text: String::new(),
        }
    }

    #[test]
    fn markers_are_removed_with_the_space_before_them() {
        let (text, cites) = strip("Paid late [1]. Shipped [2][1] today.", 2);
        assert_eq!(text, "Paid late. Shipped today.");
        assert_eq!(
            cites,
            vec![
                Citation {
                    index: 9,
                    source: 0
                },
                Citation {
                    index: 18,
                    source: 1
                },
                Citation {
                    index: 18,
                    source: 0
                },
            ]
        );
    }

    #[test]
    fn lists_in_one_marker_cite_each_number() {
        let (text, cites) = strip("Both [1, 3].", 3);
        assert_eq!(text, "Both.");
        let sources: Vec<usize> = cites.iter().map(|c| c.source).collect();
        assert_eq!(sources, vec![0, 2]);
        assert!(cites.iter().all(|c| c.index == 4));
    }

    #[test]
    fn brackets_that_name_no_source_stay() {
        for text in [
            "See [7] here",
            "a [b] c",
            "x [1 2] y",
            "[]",
            "arr[0]",
            "open [1",
        ] {
            let (out, cites) = strip(text, 3);
            let expected = if text == "arr[0]" { "arr[0]" } else { text };
            assert_eq!(out, expected, "{text}");
            assert!(cites.is_empty(), "{text}");
        }
        let (out, _) = strip("[1]", 0);
        assert_eq!(out, "[1]");
    }

    #[test]
    fn indices_count_characters_in_vietnamese_text() {
        let (text, cites) = strip("Đơn hàng 4521 được giao thứ Sáu [1]. Hoàn tiền [2].", 2);
        assert_eq!(text, "Đơn hàng 4521 được giao thứ Sáu. Hoàn tiền.");
        let first: String = text.chars().take(cites[0].index).collect();
        assert_eq!(first, "Đơn hàng 4521 được giao thứ Sáu");
        assert_eq!(cites[0].index, 31);
        assert!(
            text.len() > text.chars().count(),
            "bytes differ from chars here"
        );
        let second: String = text.chars().take(cites[1].index).collect();
        assert!(second.ends_with("Hoàn tiền"));
    }

    #[test]
    fn streamed_pieces_give_the_same_text_and_citations() {
        let whole = "Khách hàng An [1] đã trả [2, 1]; xem [9] và [1]";
        let (expected, expected_cites) = strip(whole, 2);
        let mut c = Citer::new(2);
        let mut out = String::new();
        // Split into one-character pieces and into awkward multi-character ones.
        for piece in whole.chars().map(String::from) {
            let shown = c.push(&piece);
            assert!(!shown.contains("[1]"));
            out.push_str(&shown);
        }
        out.push_str(&c.finish());
        assert_eq!(out, expected);
        assert_eq!(c.citations(), expected_cites.as_slice());
        let mut c = Citer::new(2);
        let mut out = c.push("Khách hàng An [");
        out.push_str(&c.push("1] đã trả [2,"));
        out.push_str(&c.push(" 1]; xem [9] và [1"));
        out.push_str(&c.push("]"));
        out.push_str(&c.finish());
        assert_eq!(out, expected);
        assert_eq!(c.citations(), expected_cites.as_slice());
    }

    #[test]
    fn without_markers_every_file_used_is_cited_at_the_end() {
        let (a, b) = (src("file-a"), src("file-b"));
        let sources = [&a, &b, &a];
        let notes = annotations(&[], &sources, 12);
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].file_id, "file-a");
        assert_eq!(notes[1].file_id, "file-b");
        assert!(notes.iter().all(|n| n.index == 12));
    }

    #[test]
    fn citations_map_to_the_files_of_their_sources() {
        let (a, b) = (src("file-a"), src("file-b"));
        let cites = [
            Citation {
                index: 3,
                source: 1,
            },
            Citation {
                index: 5,
                source: 0,
            },
        ];
        let notes = annotations(&cites, &[&a, &b], 9);
        assert_eq!(
            notes,
            vec![
                Annotation {
                    index: 3,
                    file_id: "file-b".into(),
                    filename: "file-b.txt".into()
                },
                Annotation {
                    index: 5,
                    file_id: "file-a".into(),
                    filename: "file-a.txt".into()
                },
            ]
        );
    }
}
