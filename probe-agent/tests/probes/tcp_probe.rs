//! TCP: connect, send, and a reply regex within the deadline.

use crate::targets::*;
use crate::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_banner_matches_and_a_sent_line_comes_back() {
    let target = banner_target().await;
    let p = prober();
    let r = run(
        &p,
        &check(
            "2s",
            &format!(
                "tcp: {{ host: 127.0.0.1, port: {}, expect: {{ reply_matches: '^220 ' }} }}",
                target.port()
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    assert_assertion(&r, "reply matches", true);
    let r = run(&p, &check("2s", &format!("tcp: {{ host: 127.0.0.1, port: {}, send: \"PING\\r\\n\", expect: {{ reply_matches: 'PING' }} }}", target.port()))).await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let r = run(
        &p,
        &check(
            "2s",
            &format!(
                "tcp: {{ host: 127.0.0.1, port: {}, expect: {{ reply_matches: '^554 ' }} }}",
                target.port()
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::Assertion);
    assert_assertion(&r, "reply matches", false);
}

#[tokio::test]
async fn a_plain_connect_is_up_and_a_silent_reply_times_out() {
    let silent = silent_target().await;
    let p = prober();
    let r = run(
        &p,
        &check(
            "1s",
            &format!("tcp: {{ host: localhost, port: {} }}", silent.port()),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Up, Reason::Ok);
    let started = Instant::now();
    let r = run(
        &p,
        &check(
            "1s",
            &format!(
                "tcp: {{ host: 127.0.0.1, port: {}, expect: {{ reply_matches: . }} }}",
                silent.port()
            ),
        ),
    )
    .await;
    assert_outcome(&r, Outcome::Down, Reason::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}
