//! The dead-letter hook ([`SubscribeOptions::on_dead_letter`]): not in the
//! suite every backend runs (it needs a transport built with
//! `max_deliveries = 1`, and backends without dead letters never call
//! hooks), but one check every backend with dead letters runs the same way.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::conformance::util::{expect_quiet, must, recv};
use crate::conformance::{Settings, unique};
use crate::envelope::{Envelope, EnvelopeId};
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{DeadLetter, DeadLetterHook, SubscribeMode, SubscribeOptions, Transport};

/// On a transport with `max_deliveries = 1`: a message whose first delivery
/// is dropped unsettled (one strike) is dead-lettered, and the hook is told
/// with its envelope before the original is settled. The hook fails the
/// first time: the message is not settled, strikes out again (within
/// `redelivery`), and the hook is told again; it succeeds, and nothing more
/// happens. The subscriber never sees the message again, and the topic's
/// dead letters (read with `dead_letters(topic)`: the backend's own
/// listing) hold it once. Returns them (`None` when skipped).
pub async fn struck_out_messages_tell_the_hook_until_it_succeeds<T, F, Fut>(
    t: &T,
    s: &Settings,
    dead_letters: F,
) -> Option<Vec<DeadLetter>>
where
    T: Transport + ?Sized,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<DeadLetter>>>,
{
    let caps = t.capabilities();
    if !caps.queue {
        crate::conformance::skip(
            "struck_out_messages_tell_the_hook_until_it_succeeds",
            caps.name,
            "queue",
        );
        return None;
    }
    let topic = unique("dlhook");
    let told: Arc<Mutex<Vec<EnvelopeId>>> = Arc::default();
    let record = told.clone();
    let hook = DeadLetterHook::new(move |e: Envelope, _deliveries: u32| {
        let first = record
            .lock()
            .map(|mut told| {
                told.push(e.id);
                told.len() == 1
            })
            .unwrap_or(false);
        async move {
            if first {
                Err(Error::new(
                    ErrorKind::Unavailable,
                    "the hook refuses its first call",
                ))
            } else {
                Ok(())
            }
        }
    });
    let options = SubscribeOptions::max_in_flight(1).with_dead_letter_hook(hook);
    let mut sub = must(
        s,
        "subscribe with a dead-letter hook",
        t.subscribe(&topic, SubscribeMode::queue(unique("g")), options),
    )
    .await;
    let sent = Envelope::new(&topic, "k", &b"struck"[..]);
    must(s, "publish", t.publish(sent.clone())).await;
    drop(recv(&mut sub, s.patience, "the first delivery").await);
    let told_now = || told.lock().map(|t| t.clone()).unwrap_or_default();
    let deadline = Instant::now() + s.patience + s.redelivery * 2;
    while told_now().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the hook was told {} time(s) within {:?}, not twice (the first call fails)",
            told_now().len(),
            s.patience + s.redelivery * 2
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    expect_quiet(&mut sub, s.quiet, "the dead-lettered message").await;
    assert_eq!(
        told_now(),
        vec![sent.id, sent.id],
        "the hook is told of the message, once more after it failed, then never again"
    );
    let letters = must(s, "read the dead letters", dead_letters(topic)).await;
    assert_eq!(letters.len(), 1, "one dead letter is kept: {letters:?}");
    assert_eq!(
        letters[0].envelope.as_ref().map(|e| e.id),
        Some(sent.id),
        "{letters:?}"
    );
    Some(letters)
}
