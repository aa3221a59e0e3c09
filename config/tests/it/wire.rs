//! The SQS message body: round trips, tolerance of newer agents, caps, encodings.

use chrono::{TimeZone, Utc};
use config::wire::*;

fn sample() -> ResultBatch {
    let scheduled = Timestamp::new(Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap());
    let mut result = ProbeResult {
        id: ProbeResult::make_id("website-homepage", "node-a", scheduled),
        check: "website-homepage".into(),
        config_hash: "0123456789abcdef".into(),
        scheduled_at: scheduled,
        started_at: Timestamp::from_unix_ms(scheduled.unix_ms() + 3).unwrap(),
        interval_us: 30_000_000,
        assigned: 3,
        duration_us: 123_456,
        outcome: Outcome::Down,
        reason: Reason::HttpStatus,
        message: String::new(),
        phases: Phases {
            dns_us: Some(1_000),
            connect_us: Some(2_000),
            tls_us: Some(30_000),
            ttfb_us: Some(80_000),
            transfer_us: None,
        },
        facts: Facts {
            http_status: Some(503),
            ..Facts::default()
        },
        assertions: vec![Assertion::new("status in [2xx]", false, "503")],
    };
    result.set_message("expected status 2xx, got 503");
    ResultBatch {
        v: VERSION,
        agent: AgentInfo {
            id: "node-a".into(),
            zone: "eu-west-1a".into(),
            region: "eu-west-1".into(),
            label: String::new(),
        },
        sent_at: Timestamp::from_unix_ms(scheduled.unix_ms() + 500).unwrap(),
        results: vec![result],
    }
}

#[test]
fn a_batch_round_trips_through_json() {
    let batch = sample();
    let json = serde_json::to_string(&batch).unwrap();
    assert_eq!(serde_json::from_str::<ResultBatch>(&json).unwrap(), batch);
}

#[test]
fn timestamps_are_utc_with_milliseconds_and_durations_integer_microseconds() {
    let value = serde_json::to_value(sample()).unwrap();
    let r = &value["results"][0];
    assert_eq!(r["scheduled_at"], "2026-12-01T02:00:00.000Z");
    assert_eq!(r["started_at"], "2026-12-01T02:00:00.003Z");
    assert_eq!(r["duration_us"], 123_456);
    assert_eq!(r["interval_us"], 30_000_000);
    assert_eq!(r["outcome"], "down");
    assert_eq!(r["reason"], "http_status");
    assert!(
        r["phases"].get("transfer_us").is_none(),
        "a phase that did not happen is absent, not 0"
    );
    let offset: Timestamp = serde_json::from_str("\"2026-12-01T03:00:00.123456+01:00\"").unwrap();
    assert_eq!(offset.to_string(), "2026-12-01T02:00:00.123Z");
}

#[test]
fn the_result_id_is_deterministic_and_parses_back() {
    let batch = sample();
    let r = &batch.results[0];
    assert_eq!(
        r.id,
        format!("website-homepage/node-a/{}", r.scheduled_at.unix_ms())
    );
    assert_eq!(
        ProbeResult::make_id(&r.check, "node-a", r.scheduled_at),
        r.id
    );
    let parsed = ResultId::parse(&r.id).unwrap();
    assert_eq!(
        (
            parsed.check.as_str(),
            parsed.agent.as_str(),
            parsed.scheduled_at
        ),
        ("website-homepage", "node-a", r.scheduled_at)
    );
    for bad in ["", "a/b", "a//1", "/b/1", "a/b/x", "a/b/1/2"] {
        assert_eq!(ResultId::parse(bad), None, "{bad}");
    }
}

#[test]
fn fields_and_enum_values_from_a_newer_agent_are_tolerated() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["shiny_new_batch_field"] = serde_json::json!({"x": 1});
    value["agent"]["k8s_node_pool"] = "spot".into();
    value["results"][0]["quic_us"] = 42.into();
    value["results"][0]["outcome"] = "flapping".into();
    value["results"][0]["reason"] = "quic_handshake".into();
    value["results"][0]["phases"]["quic_us"] = 7.into();
    let batch: ResultBatch = serde_json::from_value(value).unwrap();
    assert_eq!(batch.results[0].outcome, Outcome::Other("flapping".into()));
    assert_eq!(
        batch.results[0].reason,
        Reason::Other("quic_handshake".into())
    );
    assert_eq!(
        serde_json::to_value(&batch.results[0].reason).unwrap(),
        "quic_handshake"
    );
}

#[test]
fn every_documented_reason_round_trips() {
    for text in Reason::KNOWN {
        let reason = Reason::parse(text);
        assert!(!matches!(reason, Reason::Other(_)), "{text}");
        assert_eq!(reason.as_str(), *text);
    }
    assert_eq!(Reason::KNOWN.len(), 17);
}

#[test]
fn message_and_actual_are_capped_even_from_a_hostile_sender() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["results"][0]["message"] = "m".repeat(10_000).into();
    value["results"][0]["assertions"][0]["actual"] = "é".repeat(10_000).into();
    let batch: ResultBatch = serde_json::from_value(value).unwrap();
    assert_eq!(batch.results[0].message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(batch.results[0].message.ends_with('…'));
    assert_eq!(
        batch.results[0].assertions[0].actual.chars().count(),
        MAX_ACTUAL_CHARS
    );
    let mut r = sample().results.remove(0);
    r.set_message(&"x".repeat(600));
    assert_eq!(r.message.chars().count(), MAX_MESSAGE_CHARS);
}

#[test]
fn both_encodings_decode_to_the_same_batch() {
    let batch = sample();
    let plain = encode(&batch, false).unwrap();
    assert_eq!(plain.encoding, None);
    let packed = encode(&batch, true).unwrap();
    assert_eq!(packed.encoding, Some(GZIP_BASE64));
    assert_eq!(ENCODING_ATTRIBUTE, "statuspage-encoding");
    assert_eq!(
        decode(&plain.body, None, DEFAULT_MAX_MESSAGE_BYTES).unwrap(),
        batch
    );
    assert_eq!(
        decode(&packed.body, packed.encoding, DEFAULT_MAX_MESSAGE_BYTES).unwrap(),
        batch
    );
}

#[test]
fn a_heartbeat_is_a_batch_without_results() {
    let batch: ResultBatch = serde_json::from_str(
        r#"{"v":1,"agent":{"id":"node-a","zone":"a","region":"r"},"sent_at":"2026-12-01T02:00:00.000Z"}"#,
    )
    .unwrap();
    assert!(batch.results.is_empty());
}

#[test]
fn bad_bodies_get_clear_errors() {
    let err = |body: &str, enc: Option<&str>| decode(body, enc, 1024).unwrap_err().to_string();
    assert_eq!(
        err("{}", Some("brotli")),
        "unknown encoding \"brotli\": expected none or \"gzip+base64\""
    );
    assert!(err("!!!", Some(GZIP_BASE64)).starts_with("the body is not valid base64"));
    assert!(err("aGVsbG8=", Some(GZIP_BASE64)).starts_with("the body is not valid gzip"));
    assert!(
        err("{\"v\":1}", None).starts_with("the body is not a result batch: missing field `agent`")
    );
    assert_eq!(
        err(&"x".repeat(2000), None),
        "the body decompresses to more than 1024 bytes"
    );
}

#[test]
fn a_message_may_decompress_to_sixteen_times_its_cap() {
    assert_eq!(
        config::wire::decompressed_cap(DEFAULT_MAX_MESSAGE_BYTES),
        4 << 20
    );
    assert_eq!(config::wire::decompressed_cap(usize::MAX), usize::MAX);
}

#[test]
fn a_gzip_bomb_is_cut_at_the_cap() {
    // 10 MiB of zeros compresses to a few KiB; decoding must stop at the cap.
    let mut big = sample();
    big.results[0].config_hash = "0".repeat(10 << 20);
    let packed = encode(&big, true).unwrap();
    assert!(packed.body.len() < 100_000);
    let err = decode(&packed.body, packed.encoding, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
    assert!(
        matches!(err, WireError::TooLarge(DEFAULT_MAX_MESSAGE_BYTES)),
        "{err}"
    );
}

#[test]
fn control_characters_from_a_target_are_made_visible() {
    assert_eq!(visible("gre\0et\u{fffd}\n"), "gre␀et\u{fffd}␊");
    assert_eq!(visible("tab\there\x7f\u{85}"), "tab␉here␡\u{fffd}");
    assert!(matches!(
        visible("plain ünïcode"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn every_free_text_field_of_a_result_is_made_visible() {
    let mut batch = sample();
    let r = &mut batch.results[0];
    r.message = "a\0b".into();
    r.config_hash = "h\0".into();
    r.reason = Reason::Other("new\0reason".into());
    r.assertions = vec![Assertion::new("reply\x01", false, "a\0b\u{fffd}")];
    r.facts.cert_subject = Some("CN=\0evil".into());
    r.facts.dns_answers = Some(vec!["txt\0record".into()]);
    r.make_visible();
    let json = serde_json::to_string(&batch).unwrap();
    assert!(!json.contains("\\u0000"), "{json}");
    let r = &batch.results[0];
    assert_eq!(r.message, "a␀b");
    assert_eq!(r.config_hash, "h␀");
    assert_eq!(r.reason.as_str(), "new␀reason");
    assert_eq!(r.assertions[0].name, "reply␁");
    assert_eq!(r.assertions[0].actual, "a␀b\u{fffd}");
    assert_eq!(r.facts.cert_subject.as_deref(), Some("CN=␀evil"));
    assert_eq!(r.facts.dns_answers.as_ref().unwrap()[0], "txt␀record");
}
