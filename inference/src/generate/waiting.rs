//! The scheduler's waiting room: requests not yet admitted and sequences paused to make room
//! for another tenant, served by tenant in turn ([`FairQueue`]), and the rule for pausing.
//!
//! A tenant with a request waiting and no sequence running gets a slot within one step: when
//! every slot is taken and another tenant holds two or more, that tenant's most recently
//! admitted sequence is paused (its cache kept) and put back at the head of its tenant's
//! queue; it resumes, in its tenant's turn, where it stopped. Pausing never lets the caches of
//! running and paused sequences outgrow what `max_batch` sequences at full context would hold,
//! so the model's memory estimate still bounds them.

use super::Admission;
use super::sequence::Sequence;
use crate::fair::{FairQueue, Tenant};

/// One entry of the waiting room.
pub(super) enum Waiting {
    New(Box<Admission>),
    Paused(Box<Sequence>),
}

impl Waiting {
    /// Tokens the entry's cache will hold when it runs: its prompt, or what it holds already.
    fn tokens(&self) -> usize {
        match self {
            Self::New(a) => a.request.prompt_ids.len(),
            Self::Paused(s) => s.cache_tokens(),
        }
    }
}

/// A pause that makes room: the waiting tenant to admit, and the index in `active` of the
/// sequence to pause for it. `None` when a slot is free, nobody waits without a running
/// sequence, no tenant holds two slots, or the caches would outgrow `kv_budget` tokens.
pub(super) fn pause_for(
    active: &[Sequence],
    waiting: &FairQueue<Waiting>,
    max_batch: usize,
    kv_budget: usize,
) -> Option<(Tenant, usize)> {
    if active.len() < max_batch {
        return None;
    }
    let running = |t: &Tenant| active.iter().filter(|s| &s.tenant == t).count();
    let starved = waiting.tenants().find(|t| running(t) == 0)?.clone();
    let (holder, held) = active
        .iter()
        .map(|s| (&s.tenant, running(&s.tenant)))
        .max_by_key(|&(_, n)| n)?;
    if held < 2 {
        return None;
    }
    let index = active.iter().rposition(|s| &s.tenant == holder)?;
    let paused: usize = waiting
        .iter()
        .filter_map(|w| match w {
            Waiting::Paused(s) => Some(s.cache_tokens()),
            Waiting::New(_) => None,
        })
        .sum();
    let running_tokens: usize = active.iter().map(Sequence::cache_tokens).sum();
    let incoming = waiting.front_of(&starved).map_or(0, Waiting::tokens);
    (paused + running_tokens + incoming <= kv_budget).then_some((starved, index))
}
