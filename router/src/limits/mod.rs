//! Rate limits per API key: requests and tokens per minute ([`window`], a plain state),
//! admitted and settled by [`limiter::RateLimiter`] (local decisions, never waiting on Redis),
//! shared across replicas by [`redis_sync`] when `[redis] url` is set, with the cost of a
//! request estimated by [`estimate`] and its real usage read back by [`settle`]. Usage is
//! counted per key and model ([`usage`]).

pub mod estimate;
pub mod limiter;
pub mod redis_sync;
pub mod settle;
pub mod usage;
pub mod window;

pub use self::limiter::{RateLimiter, Ticket};
pub use self::window::{Limits, Quota, Refusal};
