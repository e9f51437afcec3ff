//! Structured logging through the standard `wasi:logging/logging@0.1.0-draft`.
//!
//! The host forwards each record into its `tracing` output at the matching
//! level, tagged with the call's transaction id, workflow, step and attempt;
//! `context` becomes the log target. The macros format like `format!` and
//! use the calling module's path as context:
//!
//! ```no_run
//! use multiagents_worker::prelude::*;
//! # let (sku, qty) = ("A-1", 2);
//! info!("reserved {qty} x {sku}");
//! warn!(target: "inventory", "stock of {sku} is low");
//! ```
//!
//! Logging never fails. Off the wasm target records are kept in a
//! thread-local list ([`crate::testing::logs`]) and printed to stderr.

/// How important a record is: the WIT `level` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Values of variables and the flow of control.
    Trace,
    /// Of interest to someone debugging.
    Debug,
    /// Of interest to someone monitoring.
    Info,
    /// A hazardous situation.
    Warn,
    /// A serious error.
    Error,
    /// A fatal error (the host logs it at its highest level, `error`).
    Critical,
}

/// Emits one record: `level`, a `context` (a target such as a module path)
/// and the message.
pub fn log(level: Level, context: &str, message: &str) {
    imp::log(level, context, message)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::bindings::wasi::logging::logging as wit;

    pub(super) fn log(level: Level, context: &str, message: &str) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
            Level::Critical => wit::Level::Critical,
        };
        wit::log(level, context, message)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub(super) use crate::testing::sim::log::log;
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:ident, target: $target:expr, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, $target, &::std::format!($($arg)+))
    };
    ($level:ident, $($arg:tt)+) => {
        $crate::log::log($crate::log::Level::$level, ::core::module_path!(), &::std::format!($($arg)+))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace { ($($arg:tt)+) => { $crate::__log!(Trace, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug { ($($arg:tt)+) => { $crate::__log!(Debug, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info { ($($arg:tt)+) => { $crate::__log!(Info, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn { ($($arg:tt)+) => { $crate::__log!(Warn, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error { ($($arg:tt)+) => { $crate::__log!(Error, $($arg)+) }; }
#[doc(hidden)]
#[macro_export]
macro_rules! __log_critical { ($($arg:tt)+) => { $crate::__log!(Critical, $($arg)+) }; }

/// Logs at [`Level::Trace`]: `trace!("x = {x}")`, `trace!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_trace as trace;

/// Logs at [`Level::Debug`]: `debug!("x = {x}")`, `debug!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_debug as debug;

/// Logs at [`Level::Info`]: `info!("x = {x}")`, `info!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_info as info;

/// Logs at [`Level::Warn`]: `warn!("x = {x}")`, `warn!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_warn as warn;

/// Logs at [`Level::Error`]: `error!("x = {x}")`, `error!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_error as error;

/// Logs at [`Level::Critical`]: `critical!("x = {x}")`, `critical!(target: "t", "...")`.
#[doc(inline)]
pub use crate::__log_critical as critical;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::Level;
    use crate::testing;

    #[test]
    fn macros_record_level_target_and_message() {
        testing::reset();
        let n = 3;
        crate::log::info!("reserved {n} items");
        crate::log::warn!(target: "inventory", "low stock: {}", n - 1);
        let logs = testing::logs();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[0].level, Level::Info);
        assert_eq!(logs[0].context, module_path!());
        assert_eq!(logs[0].message, "reserved 3 items");
        assert_eq!(logs[1].level, Level::Warn);
        assert_eq!(logs[1].context, "inventory");
        assert_eq!(logs[1].message, "low stock: 2");
    }
}
