//! Kafka-specific behaviour against a real broker (`KAFKA_URL`): dead
//! letters, records that are not envelopes, errors, closing, and a consumer
//! killed with work in hand, the state store across instances, and TLS
//! (feature `tls`). (The shared contract is in `conformance.rs`.)

mod kafka {
    mod broadcast;
    mod closing;
    mod delays;
    mod errors;
    mod killed;
    mod letters;
    mod rebalance;
    mod store;
    mod support;
    #[cfg(feature = "tls")]
    mod tls;
}
