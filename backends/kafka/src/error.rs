//! The one place that turns rdkafka errors into core [`Error`]s: the kind
//! (and so whether retrying can help), the operation and context.
//!
//! | rdkafka error (code) | kind | retryable |
//! |---|---|---|
//! | a bad client option (`ClientConfig`, `ClientCreation`) | `Config` | no |
//! | `MessageSizeTooLarge`, `MessageBatchTooLarge` | `TooLarge` | no |
//! | `MessageTimedOut`, `RequestTimedOut`, `OperationTimedOut`, `TimedOutQueue` | `Timeout` | yes |
//! | authentication and authorization failures | `PermissionDenied` | no |
//! | `InvalidTopic` | `InvalidInput` | no |
//! | the client was destroyed, a canceled wait | `Closed` | no |
//! | anything else (brokers down, no leader, unknown partition, a lost coordinator, …) | `Unavailable` | yes |

use multiagents_core::{Error, ErrorKind};
use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};

/// `e`, met during `op`, as a core error.
pub(crate) fn kafka(op: &'static str, e: KafkaError) -> Error {
    let kind = match &e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => ErrorKind::Config,
        KafkaError::Canceled => ErrorKind::Closed,
        KafkaError::Nul(_) => ErrorKind::InvalidInput,
        _ => match e.rdkafka_error_code() {
            Some(code) => by_code(code),
            None => ErrorKind::Unavailable,
        },
    };
    Error::new(kind, format!("kafka: {e}"))
        .with_operation(op)
        .with_source(e)
}

/// The kind of an error code.
pub(crate) fn by_code(code: Code) -> ErrorKind {
    match code {
        Code::MessageSizeTooLarge | Code::MessageBatchTooLarge => ErrorKind::TooLarge,
        Code::MessageTimedOut | Code::RequestTimedOut | Code::OperationTimedOut | Code::TimedOutQueue => {
            ErrorKind::Timeout
        }
        Code::Authentication
        | Code::SaslAuthenticationFailed
        | Code::TopicAuthorizationFailed
        | Code::GroupAuthorizationFailed
        | Code::ClusterAuthorizationFailed => ErrorKind::PermissionDenied,
        Code::InvalidTopic => ErrorKind::InvalidInput,
        Code::BrokerDestroy | Code::DestroyBroker => ErrorKind::Closed,
        _ => ErrorKind::Unavailable,
    }
}

/// The broker refused a record because it holds this producer's id or
/// epoch for fenced: no retry on the same producer can succeed (seen on
/// Tansu after a restart, without librdkafka calling it fatal).
pub(crate) fn is_fenced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(Code::ProducerFenced | Code::InvalidProducerEpoch)
    )
}

/// Whether a core error came from [`is_fenced`] rdkafka error.
pub(crate) fn came_from_fenced(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<KafkaError>())
        .is_some_and(is_fenced)
}

/// The transport was closed.
pub(crate) fn closed(op: &'static str) -> Error {
    Error::new(ErrorKind::Closed, "the kafka transport is closed").with_operation(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_whether_to_retry() {
        assert_eq!(by_code(Code::MessageSizeTooLarge), ErrorKind::TooLarge);
        assert_eq!(by_code(Code::AllBrokersDown), ErrorKind::Unavailable);
        assert_eq!(by_code(Code::MessageTimedOut), ErrorKind::Timeout);
        let e = kafka(
            "kafka.publish",
            KafkaError::MessageProduction(Code::TopicAuthorizationFailed),
        );
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(!e.is_retryable());
        assert!(
            kafka(
                "kafka.publish",
                KafkaError::MessageProduction(Code::LeaderNotAvailable)
            )
            .is_retryable()
        );
    }

    #[test]
    fn a_fenced_producer_is_told_apart_through_the_core_error() {
        let fenced = kafka(
            "kafka.publish",
            KafkaError::MessageProduction(Code::ProducerFenced),
        );
        assert!(fenced.is_retryable(), "a new producer can send it");
        assert!(came_from_fenced(&fenced));
        assert!(came_from_fenced(&kafka(
            "kafka.publish",
            KafkaError::MessageProduction(Code::InvalidProducerEpoch)
        )));
        assert!(!came_from_fenced(&kafka(
            "kafka.publish",
            KafkaError::MessageProduction(Code::LeaderNotAvailable)
        )));
        assert!(!came_from_fenced(&closed("kafka.publish")));
    }
}
