//! Ingestion from file bytes to chunks: a real PDF written here, NFC/NFD equality through
//! extraction and chunking, and one bad file failing alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test, reported where it happens"
)]

use std::ops::Range;

use nfai_retrieval::ingest::{
    ChunkingStrategy, EmbedderLimits, FileKind, IngestError, chunk_text, extract_text,
    normalize_text,
};
use unicode_normalization::UnicodeNormalization;

/// A one-page PDF showing `line` in Helvetica, with a correct cross-reference table.
fn pdf_with(line: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({line}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

fn words(text: &str) -> Result<Vec<Range<usize>>, String> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    Ok(out)
}

#[test]
fn text_comes_out_of_a_real_pdf() {
    let text = extract_text(
        FileKind::Pdf,
        &pdf_with("Quarterly report for nfai customers"),
    )
    .unwrap();
    assert!(
        text.contains("Quarterly report for nfai customers"),
        "{text:?}"
    );
}

#[test]
fn a_corrupt_pdf_fails_with_a_reason() {
    let mut pdf = pdf_with("hello");
    pdf.truncate(pdf.len() / 2);
    match extract_text(FileKind::Pdf, &pdf) {
        Err(e @ IngestError::Unreadable { kind: "PDF", .. }) => {
            assert_eq!(e.code(), "invalid_file")
        }
        other => panic!("expected an unreadable PDF, got {other:?}"),
    }
}

#[test]
fn nfc_and_nfd_uploads_give_the_same_chunks() {
    let nfc = "Công ty đã ký hợp đồng với khách hàng ở Đà Nẵng. ".repeat(40);
    let nfd: String = nfc.nfd().collect();
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    let limits = EmbedderLimits::from_positions(512, 2, 3);
    let strategy = ChunkingStrategy::Static {
        max_chunk_size_tokens: 100,
        chunk_overlap_tokens: 10,
    };
    let chunks = |raw: &str| {
        let text = normalize_text(&extract_text(FileKind::Text, raw.as_bytes()).unwrap());
        chunk_text(&text, strategy, limits, &words).unwrap()
    };
    let a = chunks(&nfc);
    assert!(a.len() > 3);
    assert_eq!(a, chunks(&nfd));
}
