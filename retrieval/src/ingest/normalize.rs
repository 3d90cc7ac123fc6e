//! Text normalisation before chunking and embedding: Unicode NFC and `\n` line endings.
//!
//! Vietnamese can be typed precomposed (NFC, `ệ` as one code point) or decomposed (NFD,
//! `e` + two combining marks); tokenizers see different pieces for each, so both are brought
//! to NFC first and give the same chunks and vectors.

use unicode_normalization::{UnicodeNormalization, is_nfc_quick};

/// `text` in NFC with `\r\n` and lone `\r` turned into `\n`.
pub fn normalize_text(text: &str) -> String {
    let text = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_owned()
    };
    match is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text,
        _ => text.nfc().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfd_vietnamese_becomes_nfc() {
        let nfc = "Khách hàng đã thanh toán hoá đơn tiếng Việt";
        let nfd: String = nfc.nfd().collect();
        assert_ne!(nfc, nfd);
        assert_eq!(normalize_text(&nfd), nfc);
        assert_eq!(normalize_text(nfc), nfc);
    }

    #[test]
    fn line_endings_become_newlines() {
        assert_eq!(normalize_text("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
