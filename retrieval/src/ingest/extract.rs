//! Text from an uploaded file, by type: plain text and Markdown as they are, HTML without
//! tags, scripts and styles, JSON as `path: value` lines, CSV as `header: value` rows, PDF
//! through the `pdf-extract` crate.
//!
//! Every failure is an [`IngestError`] for that file alone; a malformed PDF that makes the
//! PDF parser panic is caught and reported the same way.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::Value;

use crate::ingest::IngestError;

/// Deepest JSON nesting rendered; deeper values are refused rather than risk the stack.
const MAX_JSON_DEPTH: usize = 64;

/// The file types nfai ingests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Text,
    Markdown,
    Html,
    Json,
    Csv,
    Pdf,
}

impl FileKind {
    /// The type from the file name's extension, else from its content type.
    pub fn detect(filename: &str, content_type: Option<&str>) -> Result<Self, IngestError> {
        let extension = filename
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase());
        let by_extension = match extension.as_deref() {
            Some("txt" | "text" | "log") => Some(Self::Text),
            Some("md" | "markdown") => Some(Self::Markdown),
            Some("html" | "htm") => Some(Self::Html),
            Some("json") => Some(Self::Json),
            Some("csv") => Some(Self::Csv),
            Some("pdf") => Some(Self::Pdf),
            _ => None,
        };
        if let Some(kind) = by_extension {
            return Ok(kind);
        }
        let mime = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        match mime.as_str() {
            "text/plain" => Ok(Self::Text),
            "text/markdown" => Ok(Self::Markdown),
            "text/html" => Ok(Self::Html),
            "application/json" => Ok(Self::Json),
            "text/csv" => Ok(Self::Csv),
            "application/pdf" => Ok(Self::Pdf),
            _ => Err(IngestError::UnsupportedType(format!(
                "`{filename}` ({}); supported: txt, md, html, json, csv, pdf",
                content_type.unwrap_or("no content type")
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Markdown => "Markdown",
            Self::Html => "HTML",
            Self::Json => "JSON",
            Self::Csv => "CSV",
            Self::Pdf => "PDF",
        }
    }
}

/// The text of a file of `kind`. An empty file has empty text.
pub fn extract_text(kind: FileKind, bytes: &[u8]) -> Result<String, IngestError> {
    let unreadable = |reason: String| IngestError::Unreadable {
        kind: kind.name(),
        reason,
    };
    match kind {
        FileKind::Pdf => extract_pdf(bytes).map_err(unreadable),
        _ => {
            let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
                .map_err(|e| unreadable(format!("not UTF-8: {e}")))?;
            match kind {
                FileKind::Html => Ok(html_text(text)),
                FileKind::Json if text.trim().is_empty() => Ok(String::new()),
                FileKind::Json => json_text(text).map_err(unreadable),
                FileKind::Csv => csv_text(text).map_err(unreadable),
                _ => Ok(text.to_owned()),
            }
        }
    }
}

fn extract_pdf(bytes: &[u8]) -> Result<String, String> {
    if bytes.is_empty() {
        return Ok(String::new());
    }
    match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem(bytes)
    })) {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the PDF parser failed on this file".into()),
    }
}

/// Visible text of an HTML document: elements become line breaks where they are blocks,
/// `script`, `style`, `head` and comments are dropped, and entities are decoded.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(close) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..close].trim_start_matches('/').to_ascii_lowercase();
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &rest[close + 1..];
        if matches!(name.as_str(), "script" | "style" | "head" | "template") && !rest.is_empty() {
            let end_tag = format!("</{name}");
            let lower = rest.to_ascii_lowercase();
            rest = lower
                .find(&end_tag)
                .and_then(|at| rest[at..].find('>').map(|gt| &rest[at + gt + 1..]))
                .unwrap_or("");
            continue;
        }
        if matches!(
            name.as_str(),
            "p" | "div"
                | "br"
                | "li"
                | "tr"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "section"
                | "article"
                | "table"
                | "ul"
                | "ol"
                | "blockquote"
                | "pre"
                | "hr"
        ) && !out.ends_with('\n')
        {
            out.push('\n');
        } else if matches!(name.as_str(), "td" | "th") {
            out.push(' ');
        }
    }
    out.push_str(&decode_entities(rest));
    // Collapse runs of blank lines and trailing spaces left by the markup.
    let mut text = String::with_capacity(out.len());
    for line in out.lines().map(str::trim_end) {
        if line.trim().is_empty() && text.ends_with("\n\n") {
            continue;
        }
        text.push_str(line.trim_start());
        text.push('\n');
    }
    text.trim().to_owned()
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| entity(&rest[1..=end]).map(|c| (c, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => return None,
    })
}

/// JSON as one `path: value` line per scalar, in document order.
fn json_text(text: &str) -> Result<String, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = String::new();
    flatten(&value, "", 0, &mut out)?;
    Ok(out)
}

fn flatten(value: &Value, path: &str, depth: usize, out: &mut String) -> Result<(), String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("nested deeper than {MAX_JSON_DEPTH} levels"));
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                flatten(v, &child, depth + 1, out)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, &format!("{path}[{i}]"), depth + 1, out)?;
            }
        }
        scalar => {
            let rendered = match scalar {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !path.is_empty() {
                out.push_str(path);
                out.push_str(": ");
            }
            out.push_str(&rendered);
            out.push('\n');
        }
    }
    Ok(())
}

/// CSV as one line per record, `header: value` pairs joined by `; `.
fn csv_text(text: &str) -> Result<String, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mut out = String::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let fields: Vec<String> = record
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(i, v)| match headers.get(i) {
                Some(h) if !h.is_empty() => format!("{h}: {v}"),
                _ => v.to_owned(),
            })
            .collect();
        if !fields.is_empty() {
            out.push_str(&fields.join("; "));
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_extension_then_the_content_type() {
        assert_eq!(FileKind::detect("a.MD", None).unwrap(), FileKind::Markdown);
        assert_eq!(
            FileKind::detect("report.pdf", Some("text/plain")).unwrap(),
            FileKind::Pdf
        );
        assert_eq!(
            FileKind::detect("blob", Some("text/csv; charset=utf-8")).unwrap(),
            FileKind::Csv
        );
        assert!(matches!(
            FileKind::detect("image.png", Some("image/png")),
            Err(IngestError::UnsupportedType(_))
        ));
    }

    #[test]
    fn html_keeps_visible_text_only() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
            <h1>Báo cáo</h1><!-- hidden --><p>Khách&nbsp;hàng &amp; đơn &#7885;</p>\
            <script>var a = '<p>no</p>';</script><ul><li>một</li><li>hai</li></ul></body></html>";
        assert_eq!(html_text(html), "Báo cáo\nKhách hàng & đơn ọ\nmột\nhai");
    }

    #[test]
    fn json_and_csv_become_labelled_lines() {
        let json = r#"{"customer": {"name": "Lan", "tags": ["vip", 3]}, "open": true}"#;
        assert_eq!(
            extract_text(FileKind::Json, json.as_bytes()).unwrap(),
            "customer.name: Lan\ncustomer.tags[0]: vip\ncustomer.tags[1]: 3\nopen: true\n"
        );
        let csv = "name,city\nLan,Hà Nội\nMinh,\n";
        assert_eq!(
            extract_text(FileKind::Csv, csv.as_bytes()).unwrap(),
            "name: Lan; city: Hà Nội\nname: Minh\n"
        );
    }

    #[test]
    fn empty_files_have_empty_text_and_bad_files_fail_alone() {
        for kind in [
            FileKind::Text,
            FileKind::Json,
            FileKind::Csv,
            FileKind::Pdf,
            FileKind::Html,
        ] {
            assert_eq!(extract_text(kind, b"").unwrap(), "", "{kind:?}");
        }
        assert!(matches!(
            extract_text(FileKind::Text, &[0xff, 0xfe, 0x00]),
            Err(IngestError::Unreadable { kind: "text", .. })
        ));
        assert!(matches!(
            extract_text(FileKind::Json, b"{\"a\": "),
            Err(IngestError::Unreadable { kind: "JSON", .. })
        ));
        assert!(matches!(
            extract_text(FileKind::Pdf, b"%PDF-1.4\nthis is not a pdf body"),
            Err(IngestError::Unreadable { kind: "PDF", .. })
        ));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(extract_text(FileKind::Json, deep.as_bytes()).is_err());
    }
}
