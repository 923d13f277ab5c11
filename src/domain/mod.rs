//! The domain, PURE: no tokio, sled, NATS, HTTP or clock. It takes events, records and dates and
//! returns facts, views, findings or a rejection.

pub mod compare;
pub mod contribution;
pub mod event;
pub mod export;
pub mod fold;
pub mod ids;
pub mod review;
pub mod rights;
pub mod rules;
pub mod tracks;
pub mod validate;

#[cfg(test)]
mod tests;
