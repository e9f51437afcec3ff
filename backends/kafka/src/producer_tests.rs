//! A producer that hit a fatal error is replaced, once, and sends again
//! (against a real broker: `KAFKA_URL`); so is one whose records the
//! broker refused as fenced.

use bytes::Bytes;
use multiagents_core::conformance::{backend_url, unique};
use rdkafka::producer::Producer as _;

use super::Producer;
use crate::KafkaConfig;
use crate::transport::produce::{Record, send_all};

/// Makes librdkafka raise a fatal error on `producer`, as a broker fencing
/// it would (librdkafka's own test hook; this crate has no other way).
#[allow(unsafe_code)]
fn fence(producer: &rdkafka::producer::FutureProducer) {
    let reason = std::ffi::CString::new("fenced by the test").expect("a C string");
    // SAFETY: the client pointer is live (the producer is borrowed), and
    // the reason a NUL-terminated string that outlives the call.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_test_fatal_error(
            producer.client().native_ptr(),
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
            reason.as_ptr(),
        )
    };
    assert_eq!(
        err,
        rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_is_replaced_and_the_retry_is_sent() {
    let Some(url) = backend_url("KAFKA_URL") else {
        return;
    };
    let config = KafkaConfig::from_url(&url).expect("KAFKA_URL is a kafka:// URL");
    let topic = unique("fenced").replace('.', "_");
    crate::topics::Topics::new(&config)
        .expect("an admin client")
        .ensure(&[&topic])
        .await
        .expect("the topic");
    let producer = Producer::new(&config).expect("a producer");
    let record = Record {
        topic: topic.clone(),
        key: "k".into(),
        value: Bytes::from_static(b"v"),
        headers: Vec::new(),
    };
    send_all(&producer, std::slice::from_ref(&record), "test")
        .await
        .expect("sent");

    let fenced = producer.get();
    fence(&fenced);
    let failed = send_all(&producer, std::slice::from_ref(&record), "test")
        .await
        .expect_err("a fenced producer sends nothing");
    assert!(failed.is_retryable(), "{failed}");
    // The failed send replaced it.
    assert_eq!(producer.replaced(), 1);
    assert!(producer.get().client().fatal_error().is_none());
    // Another sender that saw the old one fail replaces nothing more.
    producer.failed(fenced, false);
    assert_eq!(producer.replaced(), 1);

    send_all(&producer, std::slice::from_ref(&record), "test")
        .await
        .expect("the retry goes out on the new producer");
    // A healthy producer's failure replaces nothing.
    producer.failed(producer.get(), false);
    assert_eq!(producer.replaced(), 1);

    // Fenced again at once: replaced only after a pause.
    fence(&producer.get());
    let again = send_all(&producer, std::slice::from_ref(&record), "test").await;
    assert!(again.is_err());
    assert_eq!(producer.replaced(), 1, "within a second of the last replacement");
    tokio::time::sleep(super::REPLACE_EVERY).await;
    let _ = send_all(&producer, std::slice::from_ref(&record), "test").await;
    assert_eq!(producer.replaced(), 2);
    send_all(&producer, std::slice::from_ref(&record), "test")
        .await
        .expect("sent on the third producer");
}

#[tokio::test]
async fn a_producer_whose_record_was_refused_as_fenced_is_replaced() {
    // No broker needed: a client is made without connecting, and the
    // refusal is the send's own answer.
    let config = KafkaConfig::from_url("kafka://127.0.0.1:1").expect("a kafka:// URL");
    let producer = Producer::new(&config).expect("a producer");
    let refused = |code| {
        let producer = &producer;
        async move {
            producer
                .send(|_used| async move {
                    Err::<(), _>((rdkafka::error::KafkaError::MessageProduction(code), ()))
                })
                .await
        }
    };
    use rdkafka::types::RDKafkaErrorCode as Code;
    // Another refusal replaces nothing.
    let _ = refused(Code::LeaderNotAvailable).await;
    assert_eq!(producer.replaced(), 0);
    let _ = refused(Code::ProducerFenced).await;
    assert_eq!(producer.replaced(), 1, "the fenced producer is replaced");
    // Through a core error too (the store's and the transport's sends).
    tokio::time::sleep(super::REPLACE_EVERY).await;
    let _ = producer
        .send(|_used| async move {
            Err::<(), _>(crate::error::kafka(
                "test",
                rdkafka::error::KafkaError::MessageProduction(Code::InvalidProducerEpoch),
            ))
        })
        .await;
    assert_eq!(producer.replaced(), 2);
}

#[test]
fn a_fenced_refusal_before_a_record_failed_to_enqueue_is_the_one_reported() {
    use rdkafka::error::KafkaError::MessageProduction as Refused;
    use rdkafka::types::RDKafkaErrorCode as Code;
    let now = || Refused(Code::MessageSizeTooLarge);
    // Earlier records refused as fenced: that refusal gets the producer replaced.
    let e = super::refused(Err(Refused(Code::ProducerFenced)), now());
    assert!(crate::error::is_fenced(&e), "{e}");
    // Earlier records stored, or refused otherwise: the immediate failure.
    let e = super::refused(Ok(vec![1, 2]), now());
    assert_eq!(e, now());
    let e = super::refused(Err(Refused(Code::LeaderNotAvailable)), now());
    assert_eq!(e, now());
    // Both fenced: the immediate one.
    let e = super::refused(
        Err(Refused(Code::ProducerFenced)),
        Refused(Code::InvalidProducerEpoch),
    );
    assert_eq!(e, Refused(Code::InvalidProducerEpoch));
}
