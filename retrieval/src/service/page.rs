//! OpenAI's list pagination: `limit` (1..=100, default 20), `order` by creation time (`asc` or
//! `desc`, default `desc`), and the `after` / `before` cursors (object ids).

use crate::error::{Result, RetrievalError};

/// Largest `limit` OpenAI accepts.
pub const MAX_LIMIT: usize = 100;
/// `limit` when absent.
pub const DEFAULT_LIMIT: usize = 20;

/// Sort order of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: usize,
    pub order: Order,
    pub after: Option<String>,
    pub before: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            order: Order::Desc,
            after: None,
            before: None,
        }
    }
}

impl ListQuery {
    /// Checks the query-string values; each error names its parameter.
    pub fn parse(
        limit: Option<i64>,
        order: Option<&str>,
        after: Option<String>,
        before: Option<String>,
    ) -> Result<Self> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(RetrievalError::InvalidArgument {
                    field: "limit",
                    reason: format!("{n} is outside 1..={MAX_LIMIT}"),
                });
            }
        };
        let order = match order {
            None | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(other) => {
                return Err(RetrievalError::InvalidArgument {
                    field: "order",
                    reason: format!("must be `asc` or `desc`, got `{other}`"),
                });
            }
        };
        Ok(Self {
            limit,
            order,
            after: after.filter(|s| !s.is_empty()),
            before: before.filter(|s| !s.is_empty()),
        })
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

/// Sorts `items` by (creation time, id) in the query's order and cuts the page. A cursor that
/// names no item is a 400 on that parameter.
pub fn paginate<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u64, &str),
    q: &ListQuery,
) -> Result<Page<T>> {
    items.sort_by(|a, b| key(a).cmp(&key(b)));
    if q.order == Order::Desc {
        items.reverse();
    }
    let position = |cursor: &str, field: &'static str| {
        items
            .iter()
            .position(|item| key(item).1 == cursor)
            .ok_or_else(|| RetrievalError::InvalidArgument {
                field,
                reason: format!("`{cursor}` is not an object of this list"),
            })
    };
    let start = match &q.after {
        Some(after) => position(after, "after")? + 1,
        None => 0,
    };
    let end = match &q.before {
        Some(before) => position(before, "before")?,
        None => items.len(),
    };
    if start >= end {
        return Ok(Page {
            data: Vec::new(),
            has_more: false,
        });
    }
    // With only `before`, the page is the one just before the cursor.
    let (from, to) = if q.before.is_some() && q.after.is_none() {
        (end.saturating_sub(q.limit).max(start), end)
    } else {
        (start, (start + q.limit).min(end))
    };
    let has_more = if q.before.is_some() && q.after.is_none() {
        from > start
    } else {
        to < end
    };
    let data = items.drain(from..to).collect();
    Ok(Page { data, has_more })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(page: &Page<(u64, String)>) -> Vec<&str> {
        page.data.iter().map(|(_, id)| id.as_str()).collect()
    }

    #[test]
    fn pages_follow_the_order_and_cursors() {
        let items: Vec<(u64, String)> = (1..=5).map(|i| (i, format!("id{i}"))).collect();
        fn key(x: &(u64, String)) -> (u64, &str) {
            (x.0, x.1.as_str())
        }
        let q = |limit, order, after: Option<&str>, before: Option<&str>| ListQuery {
            limit,
            order,
            after: after.map(Into::into),
            before: before.map(Into::into),
        };
        let p = paginate(items.clone(), key, &q(2, Order::Desc, None, None)).unwrap();
        assert_eq!((ids(&p), p.has_more), (vec!["id5", "id4"], true));
        let p = paginate(items.clone(), key, &q(2, Order::Desc, Some("id4"), None)).unwrap();
        assert_eq!((ids(&p), p.has_more), (vec!["id3", "id2"], true));
        let p = paginate(items.clone(), key, &q(10, Order::Asc, Some("id3"), None)).unwrap();
        assert_eq!((ids(&p), p.has_more), (vec!["id4", "id5"], false));
        let p = paginate(items.clone(), key, &q(2, Order::Asc, None, Some("id5"))).unwrap();
        assert_eq!((ids(&p), p.has_more), (vec!["id3", "id4"], true));
        assert!(paginate(items, key, &q(2, Order::Asc, Some("nope"), None)).is_err());
        assert!(ListQuery::parse(Some(0), None, None, None).is_err());
        assert!(ListQuery::parse(None, Some("up"), None, None).is_err());
    }
}
