//! Native Rust workers: any async closure `(CallInfo, Bytes) -> Result<Bytes>`.
//!
//! ```
//! use multiagents_core::worker::{native, CallInfo, Worker};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents_core::Result<()> {
//! let echo = native(|_call: CallInfo, input| async move { Ok(input) });
//! let out = echo.call(&CallInfo::new("tx", "wf", "echo", 1), "hi".into()).await?;
//! assert_eq!(out, "hi");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use bytes::Bytes;

use super::{CallInfo, Worker};
use crate::error::Result;

/// Wraps an async closure as a [`Worker`].
pub fn native<F, Fut>(f: F) -> NativeWorker<F, Fut>
where
    F: Fn(CallInfo, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes>> + Send + 'static,
{
    NativeWorker { f, _fut: PhantomData }
}

/// A closure-backed worker; see [`native`].
pub struct NativeWorker<F, Fut> {
    f: F,
    _fut: PhantomData<fn() -> Fut>,
}

#[async_trait]
impl<F, Fut> Worker for NativeWorker<F, Fut>
where
    F: Fn(CallInfo, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes>> + Send + 'static,
{
    async fn call(&self, call: &CallInfo, input: Bytes) -> Result<Bytes> {
        (self.f)(call.clone(), input).await
    }
}
