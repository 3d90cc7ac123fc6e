//! The language of a chunk of text, told from its letters (whatlang's trigram models, 69
//! languages), so that searches can rank a multilingual store's languages evenly.

/// Bytes of a text looked at: a chunk's language shows in its first few thousand characters.
const SAMPLE_BYTES: usize = 4096;

/// The ISO 639-3 code of `text`'s language (`vie`, `eng`, …), or `None` when the text is too
/// short, mixed or unlike any language for a reliable answer.
pub fn detect_language(text: &str) -> Option<String> {
    let mut end = text.len().min(SAMPLE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    whatlang::detect(&text[..end])
        .filter(whatlang::Info::is_reliable)
        .map(|info| info.lang().code().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_and_english_chunks_are_told_apart() {
        let vi = "Khách hàng có thể đổi trả sản phẩm trong vòng 30 ngày kể từ ngày nhận hàng, \
                  với điều kiện sản phẩm còn nguyên tem và hộp.";
        let en = "Customers may return a product within 30 days of delivery, provided that \
                  the product still has its seal and its box.";
        assert_eq!(detect_language(vi).as_deref(), Some("vie"));
        assert_eq!(detect_language(en).as_deref(), Some("eng"));
    }

    #[test]
    fn short_or_languageless_text_has_no_language() {
        assert_eq!(detect_language(""), None);
        assert_eq!(detect_language("0901 234 567 — #4521"), None);
    }

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary() {
        let long = "Điều hòa không mát vì thiếu gas. ".repeat(400);
        assert!(long.len() > SAMPLE_BYTES);
        assert_eq!(detect_language(&long).as_deref(), Some("vie"));
    }
}
