//! Admission by waiting time: how long a new request would wait for a batch slot, from the
//! requests ahead of it and the recent time a sequence spends in the batch.

use std::sync::atomic::{AtomicU64, Ordering};

/// A moving average of the microseconds sequences spend in the batch, from admission to their
/// last token. Zero until the first sequence finishes.
#[derive(Debug, Default)]
pub struct ServiceTime(AtomicU64);

impl ServiceTime {
    /// Weight of the newest sample: 1/8, so a change of load shows within a few answers.
    const SHIFT: u32 = 3;

    pub fn observe(&self, micros: u64) {
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros.max(1)
        } else if micros >= old {
            old + ((micros - old) >> Self::SHIFT)
        } else {
            old - ((old - micros) >> Self::SHIFT)
        };
        self.0.store(new, Ordering::Relaxed);
    }

    pub fn micros(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Microseconds a request arriving now would wait for a slot: 0 while a slot is free for it;
/// otherwise the departures it needs (the requests ahead of it beyond the free slots, and one
/// for itself), one every `service_us / max_batch` on average with `max_batch` sequences at
/// staggered points, the first after half that.
pub fn expected_wait_us(waiting: usize, active: usize, max_batch: usize, service_us: u64) -> u64 {
    let max_batch = max_batch.max(1) as u64;
    let free = (max_batch as usize).saturating_sub(active);
    if waiting < free {
        return 0;
    }
    let departures = (waiting - free + 1) as u64;
    (2 * departures - 1).saturating_mul(service_us) / (2 * max_batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_slot_means_no_wait() {
        assert_eq!(expected_wait_us(0, 0, 1, 100_000), 0);
        assert_eq!(expected_wait_us(2, 1, 4, 100_000), 0);
    }

    #[test]
    fn the_wait_grows_with_the_requests_ahead_and_shrinks_with_the_slots() {
        // One slot, busy: half an answer; one more ahead: one and a half.
        assert_eq!(expected_wait_us(0, 1, 1, 100_000), 50_000);
        assert_eq!(expected_wait_us(1, 1, 1, 100_000), 150_000);
        // Four slots, all busy, three waiting: the fourth departure, at 3.5 quarters.
        assert_eq!(expected_wait_us(3, 4, 4, 400_000), 350_000);
        // Counters read while a step changes them may say more running than slots.
        assert_eq!(expected_wait_us(0, 5, 4, 400_000), 50_000);
    }

    #[test]
    fn the_service_time_follows_its_samples() {
        let s = ServiceTime::default();
        assert_eq!(s.micros(), 0);
        s.observe(800);
        assert_eq!(s.micros(), 800);
        s.observe(1_600);
        assert_eq!(s.micros(), 900);
        for _ in 0..100 {
            s.observe(100);
        }
        assert!(s.micros() < 110, "{}", s.micros());
        s.observe(0);
        assert!(s.micros() >= 1);
    }
}
