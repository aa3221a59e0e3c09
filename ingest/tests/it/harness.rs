//! Smoke tests proving the test services are real: a PostgreSQL server and an
//! SQS-protocol server (moto), both started by `scripts/test`. They fail, never
//! skip, when a service is missing.

use crate::support::sqs_client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

#[sqlx::test(migrations = false)]
async fn postgres_is_a_real_server_with_transactions(pool: PgPool) {
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        version.split('.').next().unwrap().parse::<u32>().unwrap() >= 13,
        "{version}"
    );

    sqlx::query("CREATE TABLE probe (id bigint PRIMARY KEY, note text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO probe SELECT * FROM UNNEST($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(vec![1_i64, 2, 2])
    .bind(vec!["a", "b", "b-again"])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM probe")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "a rolled-back transaction leaves nothing");

    let inserted = sqlx::query(
        "INSERT INTO probe SELECT * FROM UNNEST($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
    )
    .bind(vec![1_i64, 2, 2])
    .bind(vec!["a", "b", "b-again"])
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(inserted, 2, "the duplicate key is skipped, not an error");
}

#[tokio::test]
async fn sqs_round_trip_through_a_real_queue() {
    let sqs = sqs_client().await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let queue = sqs
        .create_queue()
        .queue_name(format!("harness-{nanos}"))
        .send()
        .await
        .expect("create a fresh, shallow queue")
        .queue_url
        .unwrap();

    let gzip = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("gzip+base64")
        .build()
        .unwrap();
    let entries: Vec<_> = (0..3)
        .map(|i| {
            let mut e = SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(format!("{{\"n\":{i}}}"));
            if i == 2 {
                e = e.message_attributes("statuspage-encoding", gzip.clone());
            }
            e.build().unwrap()
        })
        .collect();
    let sent = sqs
        .send_message_batch()
        .queue_url(&queue)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.successful.len(), 3);
    assert!(sent.failed.is_empty());

    let mut bodies = BTreeSet::new();
    let mut receipts = Vec::new();
    let mut encoded = 0;
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for m in got.messages.unwrap_or_default() {
            if m.message_attributes
                .as_ref()
                .and_then(|a| a.get("statuspage-encoding"))
                .and_then(|v| v.string_value())
                == Some("gzip+base64")
            {
                encoded += 1;
            }
            bodies.insert(m.body.unwrap());
            receipts.push(m.receipt_handle.unwrap());
        }
        if bodies.len() == 3 {
            break;
        }
    }
    assert_eq!(
        bodies,
        BTreeSet::from([
            "{\"n\":0}".to_string(),
            "{\"n\":1}".into(),
            "{\"n\":2}".into()
        ])
    );
    assert_eq!(encoded, 1, "message attributes survive the round trip");

    let deletes: Vec<_> = receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(r)
                .build()
                .unwrap()
        })
        .collect();
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&queue)
        .set_entries(Some(deletes))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.successful.len(), 3);

    let left = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    assert!(
        left.messages.unwrap_or_default().is_empty(),
        "deleted messages never come back"
    );
    sqs.delete_queue().queue_url(&queue).send().await.unwrap();
}
