//! A page of many checks: groups folded on `/`, a page per group, and
//! `/api/v1/status` by group and by page, in both databases. The fixture's
//! four public checks stand for many: the fold is set to start above three.

use crate::fixture::{Db, IMG};
use crate::get;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

/// The id of the fixture's second group, `Edge "><img src=x onerror=alert(1)>`.
const EDGE: &str = "edge-img-src-x-onerror-alert-1";

crate::both!(
    over_the_limit_groups_fold_open_where_a_check_is_in_trouble,
    each_group_has_a_page_of_its_own_with_the_bars,
    the_api_answers_a_group_or_a_page_and_says_which_part_it_is,
    bad_group_page_and_limit_get_a_clear_refusal_and_lose_nothing,
);

fn folding(db: &Db) -> dashboard::AppState {
    let mut state = db.state(TTL);
    let mut site = (*state.site).clone();
    site.collapse_over = 3;
    state.site = Arc::new(site);
    state
}

async fn over_the_limit_groups_fold_open_where_a_check_is_in_trouble(db: Db) {
    // Four public checks, at the limit of four: every bar, no fold.
    let mut at_limit = db.state(TTL);
    let mut site = (*at_limit.site).clone();
    site.collapse_over = 4;
    at_limit.site = Arc::new(site);
    let b = get(&at_limit, "/").await.body;
    assert!(!b.contains("<details"), "{b}");
    assert_eq!(b.matches("<rect ").count(), 4 * 90);

    // Five and more: folded, each group open since each has a check in
    // trouble (web down, db degraded). A group all up folds shut: the
    // model's tests show it.
    let state = folding(&db);
    let page = get(&state, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let b = &page.body;
    assert_eq!(
        b.matches("<details class=\"group collapsed\"").count(),
        2,
        "{b}"
    );
    assert!(
        b.contains("<details class=\"group collapsed\" open><summary><h2>Core</h2><span class=\"pill down\">Down</span><span class=\"group-count\">2 checks · 1 down</span></summary>"),
        "{b}"
    );
    assert!(
        b.contains("<details class=\"group collapsed\" open><summary><h2>Edge &quot;&gt;&lt;img src=x onerror=alert(1)&gt;</h2><span class=\"pill degraded\">Degraded</span><span class=\"group-count\">2 checks · 1 degraded</span></summary>"),
        "{b}"
    );
    // No bar on the folded page; each check named with its status, and each
    // group's page linked.
    assert_eq!(b.matches("<rect ").count(), 0);
    assert!(
        b.contains("<a href=\"/checks/web\">Website</a> <span class=\"pill down\">Down</span>")
    );
    assert!(b.contains("href=\"/groups/core\""));
    assert!(b.contains(&format!("href=\"/groups/{EDGE}\"")));
    // The private check is neither shown nor counted.
    assert!(!b.contains("Hidden backend"));
    assert!(!b.contains(IMG), "escaped everywhere");
    // The banner and the incidents are the whole page's, as before.
    assert!(b.contains("Partial outage"));
    assert!(b.contains("Website is down"));
}

async fn each_group_has_a_page_of_its_own_with_the_bars(db: Db) {
    let state = folding(&db);
    let core = get(&state, "/groups/core").await;
    assert_eq!(core.status, StatusCode::OK);
    let b = &core.body;
    assert!(b.contains("<title>Core"), "{b}");
    assert!(
        b.contains("<h1>Core</h1><span class=\"pill down\">Down</span>"),
        "{b}"
    );
    assert!(b.contains("2 checks · 1 down"));
    assert!(
        b.contains("What customers touch &lt;first&gt;"),
        "the description"
    );
    assert_eq!(b.matches("<rect ").count(), 2 * 90, "api's and web's bars");
    assert!(b.contains("Public API") && b.contains("Website"));
    assert!(!b.contains("Database port"), "another group's check");
    assert!(!b.contains("nav class=\"pager\""), "one page");

    let edge = get(&state, &format!("/groups/{EDGE}")).await;
    assert_eq!(edge.status, StatusCode::OK);
    assert!(
        !edge.body.contains(IMG) && !edge.body.contains("<img"),
        "{}",
        edge.body
    );
    assert!(edge.body.contains("2 checks · 1 degraded"), "{}", edge.body);
    assert!(!edge.body.contains("Hidden backend"));

    // Unknown groups and pages past the last are 404s; a bad page a 400.
    for path in ["/groups/nope", "/groups/core?page=2", "/groups/"] {
        assert_eq!(
            get(&state, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let bad = get(&state, "/groups/core?page=0").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("`page` must be a whole number from 1"),
        "{}",
        bad.body
    );
}

async fn the_api_answers_a_group_or_a_page_and_says_which_part_it_is(db: Db) {
    let state = folding(&db);
    // Without parameters, as before: every public check, no pagination,
    // each check with its group's id.
    let all = get(&state, "/api/v1/status").await.json();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&all), ["api", "web", "db", "xss"]);
    assert!(all.get("pagination").is_none() && all.get("group").is_none());
    assert_eq!(all["checks"][0]["group_id"], "core");
    assert_eq!(all["checks"][2]["group_id"], EDGE);

    let core = get(&state, "/api/v1/status?group=core").await;
    assert_eq!(core.status, StatusCode::OK);
    assert_eq!(core.header("access-control-allow-origin"), "*");
    let core = core.json();
    assert_eq!(ids(&core), ["api", "web"]);
    assert_eq!(
        core["group"],
        serde_json::json!({"id": "core", "name": "Core", "status": "down"})
    );
    assert_eq!(
        core["pagination"],
        serde_json::json!({"page": 1, "limit": 100, "total": 2, "pages": 1})
    );
    assert_eq!(core["status"], "partial_outage", "the whole page's status");

    let second = get(&state, "/api/v1/status?page=2&limit=3").await.json();
    assert_eq!(ids(&second), ["xss"]);
    assert_eq!(
        second["pagination"],
        serde_json::json!({"page": 2, "limit": 3, "total": 4, "pages": 2})
    );
    let edge = get(
        &state,
        &format!("/api/v1/status?group={EDGE}&limit=1&page=2"),
    )
    .await;
    assert_eq!(ids(&edge.json()), ["xss"]);
}

async fn bad_group_page_and_limit_get_a_clear_refusal_and_lose_nothing(db: Db) {
    let state = folding(&db);
    let cases = [
        (
            "limit=0",
            StatusCode::BAD_REQUEST,
            "`limit` must be a whole number from 1 to 1000.",
        ),
        (
            "limit=1001",
            StatusCode::BAD_REQUEST,
            "`limit` must be a whole number from 1 to 1000.",
        ),
        (
            "limit=ten",
            StatusCode::BAD_REQUEST,
            "`limit` must be a whole number from 1 to 1000.",
        ),
        (
            "page=-1",
            StatusCode::BAD_REQUEST,
            "`page` must be a whole number from 1 to 100000.",
        ),
        (
            "group=",
            StatusCode::BAD_REQUEST,
            "`group` must be a group's id, of 1 to 200 bytes.",
        ),
        (
            "group=nope",
            StatusCode::NOT_FOUND,
            "No public group has the id \"nope\".",
        ),
        (
            "group=Core",
            StatusCode::NOT_FOUND,
            "No public group has the id \"Core\".",
        ),
        (
            "group=%00%FF",
            StatusCode::NOT_FOUND,
            "No public group has the id \"\\0\u{fffd}\".",
        ),
        (
            "page=2",
            StatusCode::NOT_FOUND,
            "Page 2 is past the last page, 1 (4 checks, 100 a page).",
        ),
        (
            "group=core&page=3&limit=1",
            StatusCode::NOT_FOUND,
            "Page 3 is past the last page, 2 (2 checks, 1 a page).",
        ),
    ];
    for (query, status, why) in cases {
        let got = get(&state, &format!("/api/v1/status?{query}")).await;
        assert_eq!(got.status, status, "{query}: {}", got.body);
        assert_eq!(got.json()["error"], why, "{query}");
        assert_eq!(got.header("cache-control"), "no-store", "{query}");
    }
    // Nothing was lost: the whole answer and every group's page still stand.
    let all = get(&state, "/api/v1/status").await.json();
    assert_eq!(all["checks"].as_array().unwrap().len(), 4);
    assert_eq!(get(&state, "/groups/core").await.status, StatusCode::OK);
}
