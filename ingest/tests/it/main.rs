//! Ingest against real services: PostgreSQL (`#[sqlx::test]` makes a fresh
//! database per test) and the moto SQS server, both started by
//! `scripts/test`. These fail, never skip, when a service is missing.

mod consumer;
mod ddl;
mod harness;
mod hostile;
mod leader;
mod outage;
mod outbox;
mod store;
mod support;
mod sync;
mod upgrade;
