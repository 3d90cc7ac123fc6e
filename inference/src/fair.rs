//! Fair queueing between tenants: the engines take waiting work from each tenant in turn.
//!
//! A tenant is whoever a request is accounted to (an API key; background ingestion; `None` for
//! every caller of a server without keys). Items of one tenant keep their order; tenants take
//! turns, so a tenant with a thousand waiting requests delays another tenant's next request by
//! one turn, not by a thousand.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Who a request is accounted to, for fair queueing. `None` is the shared tenant of callers
/// without a key.
pub type Tenant = Option<Arc<str>>;

/// Queues per tenant, served round robin.
#[derive(Debug)]
pub struct FairQueue<T> {
    queues: HashMap<Tenant, VecDeque<T>>,
    /// Tenants with waiting items, in turn order; the front one is served next.
    turns: VecDeque<Tenant>,
    len: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            queues: HashMap::new(),
            turns: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues `item` behind the tenant's earlier items; a tenant new to the queue takes its turn
    /// after the tenants already waiting.
    pub fn push(&mut self, tenant: Tenant, item: T) {
        self.tenant_queue(tenant).push_back(item);
        self.len += 1;
    }

    /// Puts `item` back at the head of its tenant's items (a request that was served in part
    /// and goes on before the tenant's others); a tenant new to the queue waits its turn.
    pub fn push_front(&mut self, tenant: Tenant, item: T) {
        self.tenant_queue(tenant).push_front(item);
        self.len += 1;
    }

    /// `tenant`'s items, its turn taken (last) if it had none waiting.
    fn tenant_queue(&mut self, tenant: Tenant) -> &mut VecDeque<T> {
        let queue = self.queues.entry(tenant.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(tenant);
        }
        queue
    }

    /// `tenant`'s oldest item.
    pub fn front_of(&self, tenant: &Tenant) -> Option<&T> {
        self.queues.get(tenant).and_then(VecDeque::front)
    }

    /// Every item, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.queues.values().flatten()
    }

    /// The tenants with waiting items, in turn order.
    pub fn tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.turns.iter()
    }

    /// Takes `tenant`'s oldest item out of turn; the other tenants keep their order.
    pub fn pop_tenant(&mut self, tenant: &Tenant) -> Option<T> {
        let queue = self.queues.get_mut(tenant)?;
        let item = queue.pop_front()?;
        self.len -= 1;
        if queue.is_empty() {
            self.queues.remove(tenant);
            self.turns.retain(|t| t != tenant);
        }
        Some(item)
    }

    /// The item served next: the oldest item of the tenant whose turn it is.
    pub fn front(&self) -> Option<&T> {
        self.turns
            .front()
            .and_then(|t| self.queues.get(t))
            .and_then(VecDeque::front)
    }

    /// Mutable access to [`FairQueue::front`].
    pub fn front_mut(&mut self) -> Option<&mut T> {
        let tenant = self.turns.front()?;
        self.queues.get_mut(tenant).and_then(VecDeque::front_mut)
    }

    /// Takes the item served next; its tenant's turn ends.
    pub fn pop(&mut self) -> Option<T> {
        let tenant = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&tenant)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&tenant);
        } else {
            self.turns.push_back(tenant);
        }
        if item.is_some() {
            self.len -= 1;
        }
        item
    }

    /// Ends the current tenant's turn without taking its item (it was served in part).
    pub fn rotate(&mut self) {
        if let Some(tenant) = self.turns.pop_front() {
            self.turns.push_back(tenant);
        }
    }

    /// Drops every item for which `keep` is false.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for queue in self.queues.values_mut() {
            let before = queue.len();
            queue.retain(&mut keep);
            self.len -= before - queue.len();
        }
        self.queues.retain(|_, q| !q.is_empty());
        let queues = &self.queues;
        self.turns.retain(|t| queues.contains_key(t));
    }

    /// Takes every item, in no particular order.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.turns.clear();
        self.len = 0;
        self.queues.drain().flat_map(|(_, q)| q)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> Tenant {
        Some(name.into())
    }

    #[test]
    fn tenants_take_turns_and_keep_their_order() {
        let mut q = FairQueue::default();
        for i in 0..5 {
            q.push(t("flood"), ("flood", i));
        }
        q.push(t("victim"), ("victim", 0));
        q.push(None, ("anon", 0));
        q.push(t("victim"), ("victim", 1));
        assert_eq!(q.len(), 8);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(
            order,
            [
                ("flood", 0),
                ("victim", 0),
                ("anon", 0),
                ("flood", 1),
                ("victim", 1),
                ("flood", 2),
                ("flood", 3),
                ("flood", 4),
            ]
        );
        assert!(q.is_empty());
        assert!(q.front().is_none());
    }

    #[test]
    fn a_tenant_back_after_emptying_waits_for_the_others() {
        let mut q = FairQueue::default();
        q.push(t("a"), 1);
        q.push(t("b"), 10);
        q.push(t("b"), 11);
        assert_eq!(q.pop(), Some(1));
        q.push(t("a"), 2);
        assert_eq!(q.pop(), Some(10));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(11));
    }

    #[test]
    fn rotate_serves_a_partly_served_item_again_on_its_next_turn() {
        let mut q = FairQueue::default();
        q.push(t("a"), vec![1, 2, 3]);
        q.push(t("b"), vec![9]);
        let first = q.front_mut().unwrap().remove(0);
        q.rotate();
        assert_eq!(first, 1);
        assert_eq!(q.pop(), Some(vec![9]));
        assert_eq!(q.front(), Some(&vec![2, 3]));
    }

    #[test]
    fn items_put_back_go_first_and_a_tenant_can_be_served_out_of_turn() {
        let mut q = FairQueue::default();
        q.push(t("a"), 1);
        q.push(t("a"), 2);
        q.push(t("b"), 10);
        q.push_front(t("a"), 0);
        q.push_front(t("c"), 20);
        assert_eq!(q.len(), 5);
        assert_eq!(q.tenants().collect::<Vec<_>>(), [&t("a"), &t("b"), &t("c")]);
        assert_eq!(q.pop_tenant(&t("c")), Some(20));
        assert_eq!(q.pop_tenant(&t("c")), None);
        assert_eq!(q.tenants().count(), 2);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(10));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2));
        assert!(q.is_empty());
    }

    #[test]
    fn retain_and_drain_keep_the_count() {
        let mut q = FairQueue::default();
        for i in 0..6 {
            q.push(t(if i % 2 == 0 { "a" } else { "b" }), i);
        }
        q.retain(|i| *i != 1 && *i != 3 && *i != 5);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(2));
        q.push(t("c"), 7);
        let mut rest: Vec<_> = q.drain().collect();
        rest.sort();
        assert_eq!(rest, [4, 7]);
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }
}
