//! Public email subscriptions (DESIGN §10): the form, and the pages behind
//! the signed links of subscriber mail.
//!
//! - **CSRF.** Every POST but the one-click unsubscribe must come from the
//!   page itself: its `Origin` (or, without one, its `Referer`) must be
//!   `--public-url`. No cookie is used. The one-click unsubscribe carries its
//!   own proof (the signed token) and comes from mail providers, who send
//!   neither header.
//! - **No oracle.** `POST /subscribe` answers the same bytes for a new, a
//!   pending, a confirmed and a suppressed address, and for one that has
//!   had its mails for the day; only the echoed address differs.
//! - **Limits.** Each replica counts POSTs per client IP in memory (a
//!   minute's window); the client IP is the peer's address, or the
//!   `--trusted-proxy-header`'s value behind a CDN. Mails per address per
//!   day are counted in the database, silently.
//! - Writes go through `--subscriptions-database-url`, a role that may only
//!   write subscriptions and insert outbox events.

use crate::AppState;
use crate::admin::write::Writer;
use crate::pages::subscribe::{self as page, Choice};
use axum::Extension;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ingest::notify::token::{self, Purpose, Refused};
use ingest::store::StoreError;
use ingest::store::subscriptions::{self as store, Limits, Subscribed, SubscriptionRow};
use maud::Markup;
use metrics::counter;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Requests by action and outcome.
pub const REQUESTS: &str = "statuspage_subscription_requests_total";

/// The largest form body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// Everything the subscription routes share.
pub struct Subscriptions {
    /// The section of the config: keys and limits.
    pub config: config::notify::Subscriptions,
    /// The subscription role's connection.
    pub writer: Writer,
    /// POSTs per client IP.
    pub limiter: Limiter,
    /// Where the client IP comes from behind a CDN (its last value).
    pub trusted_proxy_header: Option<HeaderName>,
    /// Wakes the mail worker in this process (standalone); another
    /// process's worker polls.
    pub wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Subscriptions {
    /// The routes' state over `config`, writing through `writer`.
    pub fn new(
        config: config::notify::Subscriptions,
        writer: Writer,
        trusted_proxy_header: Option<HeaderName>,
        wake: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> Subscriptions {
        Subscriptions {
            limiter: Limiter::new(config.requests_per_minute),
            config,
            writer,
            trusted_proxy_header,
            wake,
        }
    }
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A fixed window of requests per client IP, in memory (moka bounds it).
pub struct Limiter {
    per_minute: u32,
    windows: moka::sync::Cache<IpAddr, Arc<Mutex<(Instant, u32)>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    const WINDOW: Duration = Duration::from_secs(60);

    /// `per_minute` requests a minute per address.
    pub fn new(per_minute: u32) -> Limiter {
        Limiter {
            per_minute,
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Self::WINDOW)
                .build(),
        }
    }

    /// Counts a request from `ip`: `Err(wait)` once over the limit.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let window = self.windows.get_with(ip, || Arc::new(Mutex::new((now, 0))));
        let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
        if now.duration_since(w.0) >= Self::WINDOW {
            *w = (now, 0);
        }
        if w.1 >= self.per_minute {
            return Err(Self::WINDOW.saturating_sub(now.duration_since(w.0)));
        }
        w.1 += 1;
        Ok(())
    }
}

fn count(action: &'static str, outcome: &'static str) {
    counter!(REQUESTS, "action" => action, "outcome" => outcome).increment(1);
}

fn html(status: StatusCode, m: Markup) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response();
    // Personal, and some carry a token: never stored by a CDN or browser.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn off(s: &AppState) -> Response {
    html(
        StatusCode::NOT_FOUND,
        page::message(
            &s.site,
            "Not found",
            &["Email subscriptions are not offered here."],
        ),
    )
}

fn off_path(s: &AppState) -> Response {
    html(
        StatusCode::NOT_FOUND,
        page::message(&s.site, "Not found", &["There is no such page."]),
    )
}

fn unavailable(s: &AppState, action: &'static str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(event = "subscription_failed", action, error = %e);
    count(action, "error");
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::message(
            &s.site,
            "Please try again",
            &[
                "Your request could not be saved just now. Nothing was changed; please try again in a minute.",
            ],
        ),
    )
}

/// Whether the request comes from the page itself: its `Origin`, or
/// without one its `Referer`, is `public_url`.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Ok(ours) = url::Url::parse(public_url) else {
        return false;
    };
    let theirs = match headers.get(header::ORIGIN) {
        Some(o) => o.to_str().ok().and_then(|o| url::Url::parse(o).ok()),
        None => headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok()),
    };
    theirs.is_some_and(|t| t.origin() == ours.origin())
}

/// An address as a proxy header gives it: `ip`, `ip:port` (CloudFront's
/// `CloudFront-Viewer-Address`, IPv6 unbracketed) or `[ip]:port`.
fn ip_of(v: &str) -> Option<IpAddr> {
    v.parse::<IpAddr>()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| v.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

/// The client's address: the trusted proxy header's last value when one
/// is configured and parses, else the peer's.
fn client(
    sub: &Subscriptions,
    headers: &HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> IpAddr {
    let proxied = sub.trusted_proxy_header.as_ref().and_then(|name| {
        headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| ip_of(v.trim()))
    });
    proxied
        .or(peer.map(|Extension(ConnectInfo(a))| a.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// The form's fields: `email`, and repeated `check` and `group`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fields {
    email: String,
    checks: Vec<String>,
    groups: Vec<String>,
    one_click: bool,
}

fn fields(headers: &HeaderMap, body: &[u8]) -> Result<Fields, String> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form && !body.is_empty() {
        return Err("Send the form as application/x-www-form-urlencoded.".into());
    }
    let mut f = Fields::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "email" => f.email = v.trim().to_string(),
            "check" if f.checks.len() < 1000 => f.checks.push(v.into_owned()),
            "group" if f.groups.len() < 1000 => f.groups.push(v.into_owned()),
            "List-Unsubscribe" => f.one_click = v == "One-Click",
            _ => {}
        }
    }
    Ok(f)
}

/// The public checks by group, as the form offers them.
async fn offered(s: &AppState) -> Result<Vec<Choice>, String> {
    let checks = tokio::time::timeout(s.deadline, s.reader.public_checks())
        .await
        .map_err(|_| "no answer from the database in time".to_string())?
        .map_err(|e| e.to_string())?;
    let mut out: Vec<Choice> = Vec::new();
    for c in checks {
        match out.iter_mut().find(|g| g.group == c.group) {
            Some(g) => g.checks.push((c.slug, c.name)),
            None => out.push(Choice {
                group: c.group,
                checks: vec![(c.slug, c.name)],
            }),
        }
    }
    Ok(out)
}

/// Keeps the choices that name a public check or group; `Err` names the
/// first that does not.
fn chosen(all: &[Choice], f: &Fields) -> Result<(Vec<String>, Vec<String>), String> {
    let mut checks = Vec::new();
    for c in &f.checks {
        if !all.iter().any(|g| g.checks.iter().any(|(id, _)| id == c)) {
            return Err("One of the chosen checks is not on this page any more. Reload the form and choose again.".into());
        }
        if !checks.contains(c) {
            checks.push(c.clone());
        }
    }
    let mut groups = Vec::new();
    for g in &f.groups {
        if g.is_empty() || !all.iter().any(|x| &x.group == g) {
            return Err("One of the chosen groups is not on this page any more. Reload the form and choose again.".into());
        }
        if !groups.contains(g) {
            groups.push(g.clone());
        }
    }
    Ok((checks, groups))
}

fn bad(s: &AppState, action: &'static str, why: &str) -> Response {
    count(action, "refused");
    html(
        StatusCode::BAD_REQUEST,
        page::message(&s.site, "Please check the form", &[why]),
    )
}

fn cross_site(s: &AppState, action: &'static str) -> Response {
    count(action, "cross_site");
    html(
        StatusCode::FORBIDDEN,
        page::message(
            &s.site,
            "Not sent from this page",
            &[
                "This form must be sent from the status page itself. Open the page and send it again.",
            ],
        ),
    )
}

fn limited(s: &AppState, action: &'static str, wait: Duration) -> Response {
    count(action, "rate_limited");
    let mut r = html(
        StatusCode::TOO_MANY_REQUESTS,
        page::message(
            &s.site,
            "Too many requests",
            &["Too many requests came from your address. Please wait a minute and try again."],
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The refusal of a POST that does not come from the page (CSRF) or whose
/// client is past the per-IP limit; `None` when it may go on.
fn refusal(
    s: &AppState,
    sub: &Subscriptions,
    headers: &HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    action: &'static str,
) -> Option<Response> {
    if !same_origin(headers, &s.site.public_url) {
        return Some(cross_site(s, action));
    }
    sub.limiter
        .take(client(sub, headers, peer))
        .err()
        .map(|wait| limited(s, action, wait))
}

/// `GET /subscribe`.
pub async fn form(State(s): State<AppState>) -> Response {
    if s.subscriptions.is_none() {
        return off(&s);
    }
    match offered(&s).await {
        Ok(all) => html(StatusCode::OK, page::form(&s.site, &all)),
        Err(e) => unavailable(&s, "form", e),
    }
}

/// `POST /subscribe`.
pub async fn subscribe(
    State(s): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ACTION: &str = "subscribe";
    let Some(sub) = s.subscriptions.clone() else {
        return off(&s);
    };
    if let Some(refused) = refusal(&s, &sub, &headers, peer, ACTION) {
        return refused;
    }
    let f = match fields(&headers, &body) {
        Ok(f) => f,
        Err(why) => return bad(&s, ACTION, &why),
    };
    if !config::notify::is_address(&f.email) {
        return bad(
            &s,
            ACTION,
            "Enter one email address, such as name@example.com (at most 254 characters).",
        );
    }
    let all = match offered(&s).await {
        Ok(all) => all,
        Err(e) => return unavailable(&s, ACTION, e),
    };
    let (checks, groups) = match chosen(&all, &f) {
        Ok(c) => c,
        Err(why) => return bad(&s, ACTION, &why),
    };
    let nonce = match token::nonce() {
        Ok(n) => n,
        Err(e) => return unavailable(&s, ACTION, e),
    };
    let limits = Limits {
        max_subscriptions: sub.config.max_subscribers,
        mails_per_day: sub.config.confirmations_per_day,
    };
    let now = (s.clock)();
    let write = async {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut tx = sub.writer.begin().await.map_err(StoreError::Db)?;
            match store::subscribe(&mut tx, &f.email, &checks, &groups, &nonce, limits, now).await {
                Ok(done) => {
                    tx.commit().await.map_err(StoreError::Db)?;
                    return Ok(done);
                }
                Err(StoreError::Raced(_)) if tries < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(s.deadline, write).await {
        Ok(Ok(Subscribed::Full)) => {
            count(ACTION, "full");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                page::message(
                    &s.site,
                    "Subscriptions are full",
                    &[
                        "This status page is not taking new subscriptions at the moment. The Atom feed carries every public incident and maintenance window.",
                    ],
                ),
            )
        }
        Ok(Ok(done)) => {
            count(
                ACTION,
                if done == Subscribed::Mailed {
                    "mailed"
                } else {
                    "silent"
                },
            );
            if let Some(wake) = &sub.wake {
                wake();
            }
            html(
                StatusCode::OK,
                page::check_inbox(&s.site, &f.email.to_lowercase()),
            )
        }
        Ok(Err(e)) => unavailable(&s, ACTION, e),
        Err(_) => unavailable(&s, ACTION, "no answer from the database in time"),
    }
}

fn purpose(name: &str) -> Option<Purpose> {
    Purpose::ALL.into_iter().find(|p| p.as_str() == name)
}

/// The subscriptions and the purpose a link's path names, or the 404.
fn link_of(s: &AppState, name: &str) -> Result<(Arc<Subscriptions>, Purpose), Box<Response>> {
    let sub = s.subscriptions.clone().ok_or_else(|| Box::new(off(s)))?;
    let p = purpose(name).ok_or_else(|| Box::new(off_path(s)))?;
    Ok((sub, p))
}

fn refused(s: &AppState, action: &'static str, why: Refused) -> Response {
    count(action, "bad_link");
    let status = match why {
        Refused::Invalid | Refused::WrongPurpose => StatusCode::BAD_REQUEST,
        Refused::Expired | Refused::Gone => StatusCode::GONE,
    };
    html(
        status,
        page::message(&s.site, "This link cannot be used", &[&why.to_string()]),
    )
}

/// The subscription a link is for, once its token verifies for `purpose`.
async fn verified(
    s: &AppState,
    sub: &Subscriptions,
    purpose: Purpose,
    token: &str,
) -> Result<Result<SubscriptionRow, Refused>, StoreError> {
    let parsed = match token::parse(token) {
        Ok(p) => p,
        Err(why) => return Ok(Err(why)),
    };
    let read = async {
        let mut tx = sub.writer.begin().await.map_err(StoreError::Db)?;
        store::by_id(&mut tx.conn(), parsed.id).await
    };
    let row = tokio::time::timeout(s.deadline, read)
        .await
        .map_err(|_| StoreError::Corrupt("no answer from the database in time".into()))??;
    let Some(row) = row.filter(|r| r.state != "suppressed") else {
        return Ok(Err(Refused::Gone));
    };
    let now_s = (s.clock)() / 1000;
    Ok(token::verify(&sub.config.keys, purpose, &parsed, &row.nonce, now_s).map(|()| row))
}

fn action_of(p: Purpose) -> &'static str {
    match p {
        Purpose::Confirm => "confirm",
        Purpose::Unsubscribe => "unsubscribe",
        Purpose::Preferences => "preferences",
    }
}

fn signed(s: &AppState, sub: &Subscriptions, p: Purpose, row: &SubscriptionRow) -> String {
    let key = sub.config.keys.first().map_or(&[][..], Vec::as_slice);
    format!(
        "/subscribe/{}/{}",
        p.as_str(),
        token::sign(key, p, row.id, &row.nonce, (s.clock)() / 1000)
    )
}

/// `GET /subscribe/{purpose}/{token}`: a page with a button (or the
/// preferences form); nothing changes on a GET.
pub async fn link_page(
    State(s): State<AppState>,
    Path((name, token)): Path<(String, String)>,
) -> Response {
    let (sub, p) = match link_of(&s, &name) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    let action = action_of(p);
    let row = match verified(&s, &sub, p, &token).await {
        Ok(Ok(row)) => row,
        Ok(Err(why)) => return refused(&s, action, why),
        Err(e) => return unavailable(&s, action, e),
    };
    let here = format!("/subscribe/{name}/{token}");
    match p {
        Purpose::Confirm if row.state == "confirmed" => html(
            StatusCode::OK,
            page::message(
                &s.site,
                "Already confirmed",
                &["This subscription is confirmed: mail is on its way when something happens."],
            ),
        ),
        Purpose::Confirm => html(StatusCode::OK, page::confirm(&s.site, &row.email, &here)),
        Purpose::Unsubscribe => html(
            StatusCode::OK,
            page::unsubscribe(&s.site, &row.email, &here),
        ),
        Purpose::Preferences => {
            let all = match offered(&s).await {
                Ok(all) => all,
                Err(e) => return unavailable(&s, action, e),
            };
            let (checks, groups) = row.choices();
            let unsubscribe = signed(&s, &sub, Purpose::Unsubscribe, &row);
            html(
                StatusCode::OK,
                page::preferences(
                    &s.site,
                    &row.email,
                    &all,
                    (&checks, &groups),
                    &here,
                    &unsubscribe,
                ),
            )
        }
    }
}

/// `POST /subscribe/{purpose}/{token}`: confirms, saves the choices, or
/// unsubscribes (RFC 8058's one-click POST: no `Origin` needed, 200).
pub async fn link_post(
    State(s): State<AppState>,
    Path((name, token)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (sub, p) = match link_of(&s, &name) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    let action = action_of(p);
    if p != Purpose::Unsubscribe
        && let Some(refused) = refusal(&s, &sub, &headers, peer, action)
    {
        return refused;
    }
    let f = match fields(&headers, &body) {
        Ok(f) => f,
        Err(why) => return bad(&s, action, &why),
    };
    let row = match verified(&s, &sub, p, &token).await {
        Ok(Ok(row)) => row,
        // Unsubscribing what is already gone is done: a mail provider's
        // retry, or a second click.
        Ok(Err(Refused::Gone)) if p == Purpose::Unsubscribe && token::parse(&token).is_ok() => {
            count(action, "done");
            return html(StatusCode::OK, unsubscribed(&s));
        }
        Ok(Err(why)) => return refused(&s, action, why),
        Err(e) => return unavailable(&s, action, e),
    };
    let now = (s.clock)();
    let all = if p == Purpose::Preferences {
        match offered(&s).await {
            Ok(all) => all,
            Err(e) => return unavailable(&s, action, e),
        }
    } else {
        Vec::new()
    };
    let choices = if p == Purpose::Preferences {
        match chosen(&all, &f) {
            Ok(c) => Some(c),
            Err(why) => return bad(&s, action, &why),
        }
    } else {
        None
    };
    let write = async {
        let mut tx = sub.writer.begin().await.map_err(StoreError::Db)?;
        let done = {
            let mut conn = tx.conn();
            match (p, &choices) {
                (Purpose::Confirm, _) => store::confirm(&mut conn, row.id, &row.nonce, now).await?,
                (Purpose::Preferences, Some((checks, groups))) => {
                    store::set_choices(&mut conn, row.id, &row.nonce, checks, groups).await?
                }
                (Purpose::Preferences, None) => false,
                (Purpose::Unsubscribe, _) => {
                    store::unsubscribe(&mut conn, row.id, &row.nonce).await?;
                    true
                }
            }
        };
        tx.commit().await.map_err(StoreError::Db)?;
        Ok::<bool, StoreError>(done)
    };
    match tokio::time::timeout(s.deadline, write).await {
        Ok(Ok(true)) => {
            count(action, "done");
            match p {
                Purpose::Confirm => {
                    tracing::info!(event = "subscription_confirmed", subscription = row.id);
                    let preferences = signed(&s, &sub, Purpose::Preferences, &row);
                    html(StatusCode::OK, confirmed(&s, &preferences))
                }
                Purpose::Preferences => html(
                    StatusCode::OK,
                    page::message(&s.site, "Saved", &["Your choices are saved."]),
                ),
                Purpose::Unsubscribe => {
                    tracing::info!(
                        event = "subscription_deleted",
                        subscription = row.id,
                        one_click = f.one_click
                    );
                    html(StatusCode::OK, unsubscribed(&s))
                }
            }
        }
        Ok(Ok(false)) => refused(&s, action, Refused::Gone),
        Ok(Err(e)) => unavailable(&s, action, e),
        Err(_) => unavailable(&s, action, "no answer from the database in time"),
    }
}

fn confirmed(s: &AppState, preferences: &str) -> Markup {
    use maud::html;
    crate::pages::timeless(
        &s.site,
        "Subscribed",
        html! {
            h1 { "You are subscribed" }
            p { "You will get an email when an incident opens, is updated or resolved, and for maintenance. Every mail has a link to unsubscribe." }
            p { a href=(preferences) { "Change what you receive" } }
            p { a href="/" { "Back to the status page" } }
        },
    )
}

fn unsubscribed(s: &AppState) -> Markup {
    page::message(
        &s.site,
        "Unsubscribed",
        &[
            "This address is unsubscribed and forgotten: nothing more will be sent to it. You can subscribe again from the status page at any time.",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_or_else_the_referer_must_be_the_page() {
        let page = "https://status.example.com";
        let with = |k: HeaderName, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                k,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
            h
        };
        assert!(same_origin(
            &with(header::ORIGIN, "https://status.example.com"),
            page
        ));
        assert!(same_origin(
            &with(header::REFERER, "https://status.example.com/subscribe"),
            page
        ));
        assert!(!same_origin(
            &with(header::ORIGIN, "https://evil.example"),
            page
        ));
        assert!(!same_origin(
            &with(header::ORIGIN, "http://status.example.com"),
            page
        ));
        assert!(!same_origin(&with(header::ORIGIN, "null"), page));
        assert!(!same_origin(
            &with(header::REFERER, "https://status.example.com.evil.example/"),
            page
        ));
        assert!(!same_origin(&HeaderMap::new(), page));
    }

    #[test]
    fn a_window_lets_so_many_through_then_says_how_long_to_wait() {
        let l = Limiter::new(3);
        let ip: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..3 {
            assert!(l.take(ip).is_ok());
        }
        let wait = l.take(ip).err().unwrap_or_default();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(
            l.take([192, 0, 2, 2].into()).is_ok(),
            "another address has its own window"
        );
    }

    #[test]
    fn a_proxy_header_gives_an_address_with_or_without_its_port() {
        assert_eq!(ip_of("198.51.100.10"), Some([198, 51, 100, 10].into()));
        assert_eq!(
            ip_of("198.51.100.10:46532"),
            Some([198, 51, 100, 10].into())
        );
        assert_eq!(ip_of("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(ip_of("2001:db8::1:46532"), "2001:db8::1".parse().ok());
        assert_eq!(ip_of("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(ip_of("unknown"), None);
    }

    #[test]
    fn the_form_is_read_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let f = fields(
            &h,
            b"email=+A%40b.example+&check=api&check=web&group=Core&x=1",
        )
        .unwrap_or_default();
        assert_eq!(f.email, "A@b.example");
        assert_eq!(f.checks, ["api", "web"]);
        assert_eq!(f.groups, ["Core"]);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(fields(&h, b"{}").is_err());
    }
}
