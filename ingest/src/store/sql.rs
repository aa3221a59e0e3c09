//! One SQL text for both databases, shared by ingest and the dashboard.
//!
//! Instants travel as integer milliseconds: a parameter becomes a timestamp
//! through [`Dialect::at`], a column is read back through [`Dialect::ms`], so
//! Rust code sees one time representation whatever the database stores
//! (timestamps in PostgreSQL, milliseconds in SQLite). Lists travel as a JSON
//! array in text ([`Dialect::list`]). Where the dialects really differ (row
//! locks, advisory locks, binary `COPY`, partitions) the caller matches on
//! [`Tx`] and names the part for what it does.

use sqlx::{
    FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, postgres::PgRow,
    sqlite::SqliteRow,
};

/// How long any database call may take, on both sides of the wire.
///
/// The client-side deadline is the one that counts when the database hangs
/// (a half-open connection: the server never sees the query, so its own
/// timeouts never fire). The server-side ones are the second line: they end
/// a statement, a lock wait or an abandoned transaction whose client is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Each store write, leader step and dashboard read, client side.
    pub deadline: std::time::Duration,
    /// PostgreSQL's `statement_timeout`.
    pub statement_timeout: std::time::Duration,
    /// PostgreSQL's `lock_timeout`.
    pub lock_timeout: std::time::Duration,
    /// PostgreSQL's `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        use std::time::Duration;
        Limits {
            deadline: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// How long returning a connection to the pool may take: sqlx pings it on
/// the way back without a deadline of its own (launchbadge/sqlx#4349), so a
/// connection dropped under a deadline on a black-holed socket would hold its
/// pool slot forever. This bounded ping runs first and closes it instead.
const RELEASE_PING: std::time::Duration = std::time::Duration::from_secs(2);

/// A lazily connecting PostgreSQL pool named `app`, with `limits` set as
/// session parameters of every connection, acquiring within the deadline
/// (at most 5 s), and a bounded ping on release (see [`RELEASE_PING`]).
pub fn pg_pool(
    url: &str,
    max_connections: u32,
    app: &str,
    limits: Limits,
) -> Result<PgPool, sqlx::Error> {
    use std::str::FromStr;
    let ms = |d: std::time::Duration| format!("{}ms", d.as_millis().max(1));
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?
        .application_name(app)
        .options([
            ("statement_timeout", ms(limits.statement_timeout)),
            ("lock_timeout", ms(limits.lock_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(limits.idle_in_transaction_timeout),
            ),
        ]);
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(limits.deadline.min(std::time::Duration::from_secs(5)))
        .after_release(|conn, _| {
            Box::pin(async move {
                use sqlx::Connection;
                match tokio::time::timeout(RELEASE_PING, conn.ping()).await {
                    Ok(Ok(())) => Ok(true),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(sqlx::Error::PoolTimedOut),
                }
            })
        })
        .connect_lazy_with(options))
}

/// No answer within the deadline.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("no answer from the database within {after:?} ({what})")]
pub struct Deadline {
    /// What was waited for.
    pub what: &'static str,
    /// The deadline.
    pub after: std::time::Duration,
}

/// Runs `work` within `after`: the client-side deadline of one database
/// call. Whatever it held is dropped on expiry, and each pooled connection
/// it dropped is closed within [`RELEASE_PING`] rather than kept.
pub async fn within<T, E: From<Deadline>>(
    after: std::time::Duration,
    what: &'static str,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match tokio::time::timeout(after, work).await {
        Ok(r) => r,
        Err(_) => Err(Deadline { what, after }.into()),
    }
}

/// Which SQL the text is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// Parameter `n`.
    pub fn p(self, n: u8) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// The instant in integer parameter `n` (milliseconds).
    pub fn at(self, n: u8) -> String {
        self.instant(&self.p(n))
    }

    /// The instant of integer expression `ms` (milliseconds).
    pub fn instant(self, ms: &str) -> String {
        match self {
            Dialect::Postgres => format!("to_timestamp(({ms})::int8 / 1000.0)"),
            Dialect::Sqlite => ms.to_string(),
        }
    }

    /// The rows of the JSON array of integer tuples in parameter `n` (see
    /// [`Arg::tuples`]), as a subquery whose columns are `names`.
    pub fn tuples(self, n: u8, names: &[&str]) -> String {
        let cols: Vec<(&str, Field)> = names.iter().map(|&name| (name, Field::Int)).collect();
        self.records(n, &cols)
    }

    /// The rows of the JSON array of arrays in parameter `n` (see
    /// [`Arg::records`]), as a subquery whose columns are `cols`, each read
    /// as its kind (a JSON `null` is NULL).
    pub fn records(self, n: u8, cols: &[(&str, Field)]) -> String {
        let columns: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, (name, field))| match (self, field) {
                (Dialect::Postgres, Field::Int) => format!("(e.v->>{i})::int8 AS {name}"),
                (Dialect::Postgres, Field::Text) => format!("(e.v->>{i}) AS {name}"),
                (Dialect::Postgres, Field::Bool) => format!("(e.v->>{i})::boolean AS {name}"),
                (Dialect::Sqlite, _) => format!("json_extract(e.value, '$[{i}]') AS {name}"),
            })
            .collect();
        match self {
            Dialect::Postgres => format!(
                "SELECT {} FROM json_array_elements(${n}::json) AS e(v)",
                columns.join(", ")
            ),
            Dialect::Sqlite => format!("SELECT {} FROM json_each(?{n}) AS e", columns.join(", ")),
        }
    }

    /// The rows of the JSON array of text pairs in parameter `n` (see
    /// [`Arg::text_pairs`]), as a subquery whose columns are `a` and `b`.
    pub fn text_pairs(self, n: u8, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!(
                "SELECT e.v->>0 AS {a}, e.v->>1 AS {b} FROM json_array_elements(${n}::json) AS e(v)"
            ),
            Dialect::Sqlite => format!(
                "SELECT json_extract(e.value, '$[0]') AS {a}, json_extract(e.value, '$[1]') AS {b}
                 FROM json_each(?{n}) AS e"
            ),
        }
    }

    /// Column (or expression) `col`, an instant, as integer milliseconds.
    pub fn ms(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("(extract(epoch FROM {col}) * 1000)::int8"),
            Dialect::Sqlite => col.to_string(),
        }
    }

    /// `col` (an integer or boolean) as a 64-bit integer.
    pub fn int(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("({col})::int8"),
            Dialect::Sqlite => format!("({col})"),
        }
    }

    /// The rows of the JSON array of text in parameter `n`, as a subquery
    /// (`x IN (...)`).
    pub fn list(self, n: u8) -> String {
        match self {
            Dialect::Postgres => format!("SELECT json_array_elements_text(${n}::json)"),
            Dialect::Sqlite => format!("SELECT value FROM json_each(?{n})"),
        }
    }

    /// The rows of the JSON array of integers in parameter `n`, as a subquery.
    pub fn int_list(self, n: u8) -> String {
        match self {
            Dialect::Postgres => format!("SELECT json_array_elements_text(${n}::json)::int8"),
            Dialect::Sqlite => format!("SELECT value FROM json_each(?{n})"),
        }
    }

    /// The JSON array of text in parameter `n`, as a value to store in a
    /// list column (`text[]` in PostgreSQL, JSON text in SQLite).
    pub fn list_value(self, n: u8) -> String {
        match self {
            Dialect::Postgres => format!("ARRAY({})", self.list(n)),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// A list column, as a JSON array in text.
    pub fn json_list(self, col: &str) -> String {
        match self {
            Dialect::Postgres => format!("array_to_json({col})::text"),
            Dialect::Sqlite => col.to_string(),
        }
    }

    /// Whether list column `col` holds the text `item`.
    pub fn contains(self, col: &str, item: &str) -> String {
        match self {
            Dialect::Postgres => format!("{item} = ANY({col})"),
            Dialect::Sqlite => {
                format!("EXISTS (SELECT 1 FROM json_each({col}) WHERE value = {item})")
            }
        }
    }

    /// The larger of two values.
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("GREATEST({a}, {b})"),
            Dialect::Sqlite => format!("max({a}, {b})"),
        }
    }

    /// The smaller of two values.
    pub fn least(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("LEAST({a}, {b})"),
            Dialect::Sqlite => format!("min({a}, {b})"),
        }
    }

    /// `a` differs from `b`, NULL being a value like any other.
    pub fn differs(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Postgres => format!("{a} IS DISTINCT FROM {b}"),
            Dialect::Sqlite => format!("{a} IS NOT {b}"),
        }
    }

    /// A query answering whether table `name` (a literal, never input) exists.
    pub fn has_table(self, name: &str) -> String {
        match self {
            Dialect::Postgres => format!("SELECT to_regclass('{name}') IS NOT NULL"),
            Dialect::Sqlite => format!(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{name}')"
            ),
        }
    }

    /// `FOR UPDATE SKIP LOCKED` where the database has row locks: rows
    /// another worker holds are passed over rather than waited for.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        }
    }

    /// `FOR UPDATE` where the database has row locks (SQLite's write
    /// transactions hold the whole file).
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }
}

/// The kind of a column of [`Dialect::records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// An integer (64 bits).
    Int,
    /// Text.
    Text,
    /// A boolean.
    Bool,
}

/// One value bound to a statement.
#[derive(Clone, Debug)]
pub enum Arg {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    MaybeInt(Option<i64>),
    /// Text.
    Text(String),
    /// Text or NULL.
    MaybeText(Option<String>),
    /// A boolean.
    Bool(bool),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Arg {
    /// A list, as the JSON array in text that [`Dialect::list`] reads.
    pub fn list<S: AsRef<str>>(items: &[S]) -> Arg {
        let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        Arg::Text(serde_json::Value::from(items).to_string())
    }

    /// Tuples of integers, as the JSON array that [`Dialect::tuples`] reads.
    pub fn tuples<const N: usize>(items: impl IntoIterator<Item = [i64; N]>) -> Arg {
        let items: Vec<Vec<i64>> = items.into_iter().map(|t| t.to_vec()).collect();
        Arg::Text(serde_json::Value::from(items).to_string())
    }

    /// Rows, each a JSON array of its fields in the order of the columns
    /// given to [`Dialect::records`], as the JSON array it reads.
    pub fn records(rows: Vec<serde_json::Value>) -> Arg {
        Arg::Text(serde_json::Value::Array(rows).to_string())
    }

    /// Pairs of texts, as the JSON array that [`Dialect::text_pairs`] reads.
    pub fn text_pairs<A: AsRef<str>, B: AsRef<str>>(items: &[(A, B)]) -> Arg {
        let items: Vec<[&str; 2]> = items
            .iter()
            .map(|(a, b)| [a.as_ref(), b.as_ref()])
            .collect();
        Arg::Text(serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()))
    }

    /// Integers, as the JSON array that [`Dialect::int_list`] reads.
    pub fn ints<I: Into<i64> + Copy>(items: &[I]) -> Arg {
        let items: Vec<i64> = items.iter().map(|i| (*i).into()).collect();
        Arg::Text(serde_json::Value::from(items).to_string())
    }
}

/// `sql` marked as written through this module. sqlx caches prepared
/// statements by their text: a statement of the same text that other code
/// prepared with `int4` parameters must never be reused for these `int8` ones.
fn marked(sql: &str) -> String {
    format!("/* both */ {sql}")
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::MaybeInt(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::MaybeText(v) => q.bind(v.clone()),
                Arg::Bool(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

/// A pool of either database.
#[derive(Clone, Debug)]
pub enum Pool {
    /// PostgreSQL.
    Pg(PgPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

impl Pool {
    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Pool::Pg(_) => Dialect::Postgres,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Rows of a query, each on a connection of the pool.
    pub async fn rows<T>(&self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = marked(sql);
        match self {
            Pool::Pg(pool) => bind_all!(sqlx::query_as(&sql), args).fetch_all(pool).await,
            Pool::Sqlite(pool) => bind_all!(sqlx::query_as(&sql), args).fetch_all(pool).await,
        }
    }

    /// Runs a statement; returns the rows it touched.
    pub async fn exec(&self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        let sql = marked(sql);
        Ok(match self {
            Pool::Pg(pool) => bind_all!(sqlx::query(&sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => bind_all!(sqlx::query(&sql), args)
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }

    /// Begins a transaction (SQLite's `IMMEDIATE`: it holds the write lock
    /// from the start, so two writers never deadlock upgrading).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Pg(p) => Tx::Pg(p.begin().await?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
        })
    }
}

/// A transaction on either database.
#[derive(Debug)]
pub enum Tx {
    /// PostgreSQL.
    Pg(sqlx::Transaction<'static, Postgres>),
    /// SQLite, begun `IMMEDIATE`.
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Pg(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The transaction's connection, for statements.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Pg(tx) => Conn::Pg(tx),
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    /// Runs a statement; returns the rows it touched.
    pub async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        self.conn().exec(sql, args).await
    }

    /// Rows of a query.
    pub async fn rows<T>(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        self.conn().rows(sql, args).await
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// A connection of either database, borrowed (from a transaction, most often).
#[derive(Debug)]
pub enum Conn<'a> {
    /// PostgreSQL.
    Pg(&'a mut PgConnection),
    /// SQLite.
    Sqlite(&'a mut SqliteConnection),
}

impl Conn<'_> {
    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Pg(_) => Dialect::Postgres,
            Conn::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a statement; returns the rows it touched.
    pub async fn exec(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        let sql = marked(sql);
        Ok(match self {
            Conn::Pg(c) => bind_all!(sqlx::query(&sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::Sqlite(c) => bind_all!(sqlx::query(&sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    /// Rows of a query.
    pub async fn rows<T>(&mut self, sql: &str, args: &[Arg]) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = marked(sql);
        match self {
            Conn::Pg(c) => {
                bind_all!(sqlx::query_as(&sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
            Conn::Sqlite(c) => {
                bind_all!(sqlx::query_as(&sql), args)
                    .fetch_all(&mut **c)
                    .await
            }
        }
    }
}
