//! Prompt assembly for an answer grounded in retrieved chunks: [`assemble`].
//!
//! The chunks become numbered sources (`[1]`, `[2]`, … in rank order, best first) in the system
//! message, after the caller's instructions, with a rule asking the model to cite them by
//! number. The prompt must leave room for the answer: the sources get what the model's context
//! holds after the reserved output, the conversation and a per-message allowance. When they do
//! not all fit, the lowest-ranked chunks are dropped first; the last chunk that still fits in
//! part is cut at a character boundary (and marked with `…`) when a useful piece of it fits.
//!
//! Token counts come from a caller-given counter; the handler uses [`estimate_tokens`], a
//! deliberate overestimate (one token per two UTF-8 bytes), so that the prompt fits whatever
//! tokenizer the model has, Vietnamese text included.

use nfai_models::chat_template::ChatMessage;

/// One retrieved chunk offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub file_id: String,
    pub filename: String,
    pub text: String,
}

/// The model's context and what must stay free in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The model's context length, in tokens.
    pub context_tokens: usize,
    /// Tokens kept for the answer (`max_output_tokens`, or a default reserve).
    pub output_tokens: usize,
}

/// The assembled system message and the sources it numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// Instructions, then the citation rule and the numbered sources.
    pub system: String,
    /// Indices into the given sources of those in the prompt: marker `[n]` is `used[n - 1]`.
    pub used: Vec<usize>,
    /// Whether the last source in the prompt was cut to fit.
    pub truncated: bool,
}

/// Tokens allowed for each message's role markers in the chat template.
pub const PER_MESSAGE_TOKENS: usize = 8;
/// A chunk is cut to fit only when at least this many of its tokens fit; otherwise it is dropped.
pub const MIN_CUT_TOKENS: usize = 32;

/// The rule that asks for citation markers, placed before the sources.
pub const CITE_RULE: &str = "Answer using the sources below. After each statement taken from a \
source, cite it with its number in square brackets, like [1] or [2]. If the sources do not \
hold the answer, say so.";

/// What the model is told when the search found nothing.
pub const NO_SOURCES: &str = "The file search found no matching sources; say that the files \
hold no answer if you cannot answer from the conversation.";

/// A token count that overestimates every tokenizer in use: one token per two UTF-8 bytes.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(2)
}

fn source_block(n: usize, s: &Source, text: &str) -> String {
    format!("\n\n[{n}] {}\n{text}", s.filename)
}

/// Builds the system message for `conversation` (every other message of the prompt) from
/// `instructions` and `sources` (best first), within `budget`, counting with `count`.
pub fn assemble(
    instructions: Option<&str>,
    conversation: &[ChatMessage],
    sources: &[Source],
    budget: Budget,
    count: impl Fn(&str) -> usize,
) -> Assembled {
    let mut head = String::new();
    if let Some(i) = instructions.map(str::trim).filter(|i| !i.is_empty()) {
        head.push_str(i);
        head.push_str("\n\n");
    }
    let none = || Assembled {
        system: format!("{head}{NO_SOURCES}"),
        used: Vec::new(),
        truncated: false,
    };
    let mut system = format!("{head}{CITE_RULE}");
    let fixed = conversation
        .iter()
        .map(|m| count(&m.content) + PER_MESSAGE_TOKENS)
        .sum::<usize>()
        + count(&system)
        + PER_MESSAGE_TOKENS
        + budget.output_tokens;
    let mut left = budget.context_tokens.saturating_sub(fixed);
    let mut used = Vec::new();
    let mut truncated = false;
    for (i, s) in sources.iter().enumerate() {
        let n = used.len() + 1;
        let block = source_block(n, s, &s.text);
        let cost = count(&block);
        if cost <= left {
            system.push_str(&block);
            left -= cost;
            used.push(i);
            continue;
        }
        if left >= MIN_CUT_TOKENS
            && let Some(cut) = longest_fitting(s, n, left, &count)
        {
            system.push_str(&cut);
            used.push(i);
            truncated = true;
        }
        break;
    }
    if used.is_empty() {
        return none();
    }
    Assembled {
        system,
        used,
        truncated,
    }
}

/// The block of source `n` with the longest prefix of its text (cut at a character boundary,
/// ended with `…`) that costs at most `left`; `None` when not even a few characters fit.
fn longest_fitting(
    s: &Source,
    n: usize,
    left: usize,
    count: &impl Fn(&str) -> usize,
) -> Option<String> {
    let bounds: Vec<usize> = s.text.char_indices().map(|(i, _)| i).collect();
    let block = |chars: usize| {
        let end = bounds.get(chars).copied().unwrap_or(s.text.len());
        source_block(n, s, &format!("{}…", s.text[..end].trim_end()))
    };
    // The largest char count whose block fits: binary search, since cost grows with length.
    let (mut lo, mut hi) = (0usize, bounds.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(&block(mid)) <= left {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (lo > 0).then(|| block(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: &str, text: &str) -> Source {
        Source {
            file_id: id.into(),
            filename: format!("{id}.txt"),
            text: text.into(),
        }
    }

    /// One token per whitespace-separated word: easy to reason about in tests.
    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn wide() -> Budget {
        Budget {
            context_tokens: 10_000,
            output_tokens: 100,
        }
    }

    #[test]
    fn sources_are_numbered_in_rank_order_after_the_instructions() {
        let sources = [src("a", "alpha text"), src("b", "beta text")];
        let user = [ChatMessage::new("user", "question?")];
        let a = assemble(Some("Be brief."), &user, &sources, wide(), words);
        assert_eq!(a.used, vec![0, 1]);
        assert!(!a.truncated);
        assert!(a.system.starts_with("Be brief.\n\n"));
        let one = a.system.find("[1] a.txt\nalpha text").unwrap();
        let two = a.system.find("[2] b.txt\nbeta text").unwrap();
        assert!(a.system.find(CITE_RULE).unwrap() < one && one < two);
    }

    #[test]
    fn no_sources_says_so() {
        let a = assemble(None, &[], &[], wide(), words);
        assert_eq!(a.system, NO_SOURCES);
        assert!(a.used.is_empty());
    }

    #[test]
    fn the_budget_drops_the_lowest_ranked_chunks_first() {
        let long = "word ".repeat(100);
        let sources = [src("a", &long), src("b", &long), src("c", &long)];
        let user = [ChatMessage::new("user", "q")];
        let fixed = words(CITE_RULE) + 2 * PER_MESSAGE_TOKENS + 1;
        // Room for the output, the fixed part and two whole blocks (each 102 words), and too
        // little of the third to be worth cutting.
        let budget = Budget {
            context_tokens: 50 + fixed + 2 * 102 + MIN_CUT_TOKENS - 1,
            output_tokens: 50,
        };
        let a = assemble(None, &user, &sources, budget, words);
        assert_eq!(a.used, vec![0, 1]);
        assert!(!a.truncated);
        assert!(!a.system.contains("[3]"));
        assert!(
            words(&a.system) + 50 + 2 * PER_MESSAGE_TOKENS + words("q") <= budget.context_tokens
        );
    }

    #[test]
    fn the_last_chunk_that_fits_in_part_is_cut() {
        let long = "word ".repeat(100);
        let sources = [src("a", &long), src("b", &long)];
        let fixed = words(CITE_RULE) + PER_MESSAGE_TOKENS;
        let budget = Budget {
            context_tokens: fixed + 102 + 40,
            output_tokens: 0,
        };
        let a = assemble(None, &[], &sources, budget, words);
        assert_eq!(a.used, vec![0, 1]);
        assert!(a.truncated);
        assert!(a.system.ends_with('…'));
        assert!(words(&a.system) + PER_MESSAGE_TOKENS <= budget.context_tokens);
        // The cut keeps as much as fits.
        assert!(words(&a.system) + PER_MESSAGE_TOKENS + 1 >= budget.context_tokens);
    }

    #[test]
    fn a_cut_never_splits_a_vietnamese_character() {
        let vi = "Khách hàng Nguyễn Văn An đã thanh toán hóa đơn số 4521 vào thứ Sáu.".repeat(20);
        let sources = [src("vi", &vi)];
        let system_cost = estimate_tokens(CITE_RULE);
        let budget = Budget {
            context_tokens: system_cost + PER_MESSAGE_TOKENS + 120,
            output_tokens: 0,
        };
        let a = assemble(None, &[], &sources, budget, estimate_tokens);
        assert!(a.truncated, "{}", a.system);
        assert!(estimate_tokens(&a.system) + PER_MESSAGE_TOKENS <= budget.context_tokens);
        // Slicing at a byte inside a character would have panicked; the kept text is a prefix.
        let kept = a.system.rsplit('\n').next().unwrap().trim_end_matches('…');
        assert!(vi.starts_with(kept));
    }

    #[test]
    fn a_conversation_that_fills_the_context_leaves_no_sources() {
        let sources = [src("a", "alpha")];
        let user = [ChatMessage::new("user", "w ".repeat(500))];
        let budget = Budget {
            context_tokens: 400,
            output_tokens: 10,
        };
        let a = assemble(None, &user, &sources, budget, words);
        assert!(a.used.is_empty());
        assert_eq!(a.system, NO_SOURCES);
    }

    #[test]
    fn the_estimate_counts_bytes_not_characters() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 2);
        // "ễ" is three bytes in UTF-8.
        assert_eq!(estimate_tokens("ễ"), 2);
    }
}
