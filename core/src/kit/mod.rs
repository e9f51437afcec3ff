//! Helpers every backend crate needs, kept here so that a new backend is
//! one crate that copies nothing.
//!
//! | module | owns |
//! |---|---|
//! | [`batcher`] | [`Batcher`]: coalescing concurrent requests into one round trip |
//! | [`url`] | options in a backend URL's query (`?ack_timeout=10s&…`): splitting, value parsing, naming the bad one |

pub mod batcher;
pub mod url;

pub use batcher::Batcher;
