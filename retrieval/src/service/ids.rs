//! Record ids in OpenAI's style (`file-…`, `vs_…`, `vsfb_…`) and the clock in Unix seconds.

use rand::Rng;

/// `prefix` followed by 24 random lowercase hex digits.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for _ in 0..24 {
        let digit: u32 = rng.random_range(0..16);
        id.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    id
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_prefix_and_differ() {
        let a = super::new_id("vs_");
        assert!(a.starts_with("vs_") && a.len() == 27);
        assert_ne!(a, super::new_id("vs_"));
    }
}
