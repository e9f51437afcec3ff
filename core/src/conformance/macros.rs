//! The test-stamping macros and the one list of behaviour names.
//!
//! Adding a behaviour: write its `pub async fn` in `transport/`, `store/`
//! or `orchestrator/` (re-exported from that module), then add its name to
//! `__transport_behaviours!`, `__store_behaviours!` or
//! `__orchestrator_behaviours!` below. Nothing else.

/// Calls `$crate::$callback! { ($args) name name … }` with the name of
/// every transport behaviour: the one list of them.
#[doc(hidden)]
#[macro_export]
macro_rules! __transport_behaviours {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            queue_round_trip
            empty_payload_round_trip
            large_payload_round_trip
            per_key_order
            groups_each_receive_every_message
            topics_are_isolated
            competing_consumers_share_work
            nack_redelivers_after_delay
            nack_zero_redelivers_promptly
            settle_twice_is_already_settled
            dropped_delivery_is_redelivered
            delivery_dropped_outside_a_runtime_is_redelivered
            dropped_consumer_work_is_redelivered
            ack_timeout_redelivers
            progress_keeps_a_delivery
            backpressure_bound
            queue_depth_counts_waiting_and_unsettled
            broadcast_fan_out
            broadcast_only_reaches_broadcast_subscribers
            broadcast_batch_keeps_each_topics_order
            batch_of_10k_arrives_exactly_once
            batch_with_invalid_envelope_publishes_nothing
            publish_rejects_bad_input
            subscribe_rejects_bad_input
        }
    };
}

/// Calls `$crate::$callback! { ($args) name name … }` with the name of
/// every store behaviour: the one list of them.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_behaviours {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            get_missing_is_none
            put_get_round_trip
            empty_value_round_trip
            large_value_round_trip
            special_character_keys
            put_versions_increase
            delete_twice
            version_grows_across_delete
            cas_create_if_absent
            cas_stale_version_conflicts
            cas_current_version_succeeds
            cas_concurrent_single_winner
            ttl_expiry
            ttl_follows_latest_write
            cas_with_ttl
            put_batch_round_trip
            put_batch_invalid_entry_writes_nothing
            scan_prefix_paging
            scan_skips_expired
            timers_fire_when_due
            timer_changed_after_claim_is_not_settled
            timer_moves_only_from_where_it_was
            timed_cas_writes_the_timer_with_the_state
            concurrent_claims_single_winner
            scheduler_rejects_bad_input
            rejects_bad_input
        }
    };
}

/// Calls `$crate::$callback! { ($args) name name … }` with the name of
/// every orchestrator behaviour: the one list of them.
#[doc(hidden)]
#[macro_export]
macro_rules! __orchestrator_behaviours {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            success_runs_every_step_in_order_and_merges_outputs
            failure_at_each_step_compensates_exactly_the_completed_steps_in_reverse
            a_failing_compensation_ends_in_compensation_failed
            conditions_take_the_true_and_the_false_branch
            retry_then_success_and_retries_exhausted
            a_step_timeout_fails_the_attempt_and_the_late_result_is_dropped
            cancel_mid_flight_compensates_what_completed
            duplicated_results_never_advance_a_step_twice
            two_instances_on_one_backend_run_each_step_once
            a_runtime_dropped_mid_flight_is_resumed_by_another
            spans_of_one_transaction_share_a_trace_across_instances
            bad_input_is_refused_with_typed_errors
        }
    };
}

/// Stamps one `#[test]` per orchestrator behaviour over a site.
#[doc(hidden)]
#[macro_export]
macro_rules! __orchestrator_tests {
    (($factory:expr) $($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::block_on(async {
                    let ::std::option::Option::Some(site) = ($factory).await else {
                        $crate::conformance::skip_unavailable(::std::concat!(
                            ::std::module_path!(),
                            "::",
                            ::std::stringify!($name)
                        ));
                        return;
                    };
                    $crate::conformance::orchestrator::$name(&site).await;
                });
            }
        )*
    };
}

/// Stamps one `#[test]` per name, calling `$crate::conformance::$kind::$name`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (($kind:ident, $factory:expr, $settings:expr) $($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::block_on(async {
                    let ::std::option::Option::Some(backend) = ($factory).await else {
                        $crate::conformance::skip_unavailable(::std::concat!(
                            ::std::module_path!(),
                            "::",
                            ::std::stringify!($name)
                        ));
                        return;
                    };
                    let settings: $crate::conformance::Settings = $settings;
                    $crate::conformance::$kind::$name(&backend, &settings).await;
                });
            }
        )*
    };
}

/// Stamps a test module running every transport behaviour of
/// [`conformance::transport`](crate::conformance::transport) against a
/// backend.
///
/// `transport_conformance!(module_name, factory, settings)`:
/// * `factory`: an expression evaluating to a future of `Option<T>` where
///   `T: Transport` (a concrete type or `Arc<dyn Transport>`), usually an
///   `async { … }` block. It is evaluated once per test, so each test gets
///   a fresh backend handle; `None` skips the test visibly (see
///   [`backend_url`](crate::conformance::backend_url)).
/// * `settings`: a [`Settings`](crate::conformance::Settings) expression.
///
/// The module gets one `#[test]` per behaviour, named after it (filter with
/// `cargo test module_name::queue_round_trip`). Each builds its own
/// multi-threaded tokio runtime ([`block_on`](crate::conformance::block_on)),
/// so the calling crate needs no tokio dependency for it. The module does
/// `use super::*;`, so the factory may name anything imported next to the
/// macro call.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use multiagents_core::conformance::Settings;
/// use multiagents_core::{MemoryTransport, Transport};
///
/// multiagents_core::transport_conformance!(memory, async { Some(MemoryTransport::new()) }, Settings::default());
/// multiagents_core::transport_conformance!(
///     memory_dyn,
///     async { Some(Arc::new(MemoryTransport::new()) as Arc<dyn Transport>) },
///     Settings::default()
/// );
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! transport_conformance {
    ($module:ident, $factory:expr, $settings:expr $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__transport_behaviours!(__conformance_tests!(transport, $factory, $settings));
        }
    };
}

/// Stamps a test module running every store behaviour of
/// [`conformance::store`](crate::conformance::store) against a backend.
///
/// Same shape as [`transport_conformance!`](crate::transport_conformance):
/// `store_conformance!(module_name, factory, settings)` where `factory` is a
/// future of `Option<S>`, `S: StateStore` (concrete or `Arc<dyn StateStore>`).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use multiagents_core::conformance::Settings;
/// use multiagents_core::{MemoryStore, StateStore};
///
/// multiagents_core::store_conformance!(memory, async { Some(MemoryStore::new()) }, Settings::default());
/// multiagents_core::store_conformance!(
///     memory_dyn,
///     async { Some(Arc::new(MemoryStore::new()) as Arc<dyn StateStore>) },
///     Settings::default()
/// );
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($module:ident, $factory:expr, $settings:expr $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_behaviours!(__conformance_tests!(store, $factory, $settings));
        }
    };
}

/// Stamps a test module running every orchestrator behaviour of
/// [`conformance::orchestrator`](crate::conformance::orchestrator) over a
/// backend.
///
/// `orchestrator_conformance!(module_name, factory)` where `factory` is a
/// future of `Option<S>`, `S:`
/// [`Site`](crate::conformance::orchestrator::Site): where instances
/// connect, and how to get a fresh namespace. `None` skips visibly.
///
/// # Example
///
/// ```
/// use multiagents_core::conformance::orchestrator::MemorySite;
///
/// multiagents_core::orchestrator_conformance!(memory, async { Some(MemorySite::new(None)) });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! orchestrator_conformance {
    ($module:ident, $factory:expr $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__orchestrator_behaviours!(__orchestrator_tests!($factory));
        }
    };
}
