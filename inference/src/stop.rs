//! Stop strings that may span token boundaries.
//!
//! Text is released to the client only once no stop string can start inside it, so a stop
//! string split over several tokens is still caught and never shown.

/// Holds back the tail of the output that could still begin a stop string.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with newly decoded text.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text safe to send now (may be empty).
    Continue(String),
    /// A stop string was found: send this text, then finish.
    Stopped(String),
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Adds decoded text and returns what can be released.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(text.to_string());
        }
        self.pending.push_str(text);
        let first_match = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = first_match {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stopped(out);
        }
        let keep = self.held_back_len();
        let release_to = self.pending.len() - keep;
        let out = self.pending[..release_to].to_string();
        self.pending.drain(..release_to);
        StopOutcome::Continue(out)
    }

    /// The text still held back, released when the sequence ends for another reason.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string.
    fn held_back_len(&self) -> usize {
        let p = &self.pending;
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut best = 0;
        for (start, _) in p.char_indices().rev() {
            let suffix = &p[start..];
            if suffix.len() >= longest {
                break;
            }
            if self.stops.iter().any(|s| s.starts_with(suffix)) {
                best = suffix.len();
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_split_across_pushes_is_caught_and_hidden() {
        let mut m = StopMatcher::new(vec!["\n\nUser:".into()]);
        assert_eq!(m.push("Hello"), StopOutcome::Continue("Hello".into()));
        assert_eq!(m.push(" there\n"), StopOutcome::Continue(" there".into()));
        assert_eq!(m.push("\nUs"), StopOutcome::Continue(String::new()));
        assert_eq!(m.push("er: hi"), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn false_start_is_released() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("the EN"), StopOutcome::Continue("the ".into()));
        assert_eq!(m.push("D"), StopOutcome::Stopped(String::new()));
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("EN"), StopOutcome::Continue(String::new()));
        assert_eq!(m.push("Ds"), StopOutcome::Stopped(String::new()));
        let mut m = StopMatcher::new(vec!["END".into()]);
        m.push("EN");
        assert_eq!(m.push("ough"), StopOutcome::Continue("ENough".into()));
        assert_eq!(m.flush(), "");
    }

    #[test]
    fn earliest_of_several_stops_wins_and_text_before_it_is_kept() {
        let mut m = StopMatcher::new(vec!["b".into(), "cd".into()]);
        assert_eq!(m.push("xxcdyb"), StopOutcome::Stopped("xx".into()));
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        let mut m = StopMatcher::new(vec!["ệtX".into()]);
        assert_eq!(
            m.push("Việt Nam, Việt"),
            StopOutcome::Continue("Việt Nam, Vi".into())
        );
        assert_eq!(m.flush(), "ệt");
    }

    #[test]
    fn no_stops_passes_through() {
        let mut m = StopMatcher::new(vec![String::new()]);
        assert_eq!(m.push("abc"), StopOutcome::Continue("abc".into()));
    }
}
