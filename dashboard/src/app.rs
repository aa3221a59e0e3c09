//! The public router: the pages and the v1 API (`routes`), what other sites
//! embed (`embed`) and the admin API, behind the security headers. It is the
//! one module that knows all three, so none of them imports another.

use crate::AppState;
use crate::routes::{
    api_check, api_incidents, api_status, check_page, fallback, group_page, home_page,
    incident_list, incident_page, security_headers, style,
};
use crate::{admin, embed, subscribe};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

/// The public router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home_page))
        .route("/checks/{id}", get(check_page))
        .route("/groups/{id}", get(group_page))
        .route("/incidents", get(incident_list))
        .route("/incidents/{id}", get(incident_page))
        .route("/api/v1/status", get(api_status))
        .route("/api/v1/checks/{id}", get(api_check))
        .route("/api/v1/incidents", get(api_incidents))
        .route("/assets/style.css", get(style))
        .route("/api/v2/summary.json", get(embed::summary))
        .route("/badge/{id}/status.svg", get(embed::status_badge))
        .route("/badge/{id}/uptime/{file}", get(embed::uptime_badge))
        .route("/feed.atom", get(embed::feed))
        .merge(admin::routes(&state))
        .merge(
            Router::new()
                .route(
                    "/subscribe",
                    get(subscribe::form).post(subscribe::subscribe),
                )
                .route(
                    "/subscribe/{purpose}/{token}",
                    get(subscribe::link_page).post(subscribe::link_post),
                )
                .layer(DefaultBodyLimit::max(subscribe::MAX_BODY)),
        )
        .fallback(fallback)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}
