//! The admin endpoints through the auth middleware, driven with `oneshot` and on a real
//! socket: masked listing, disable / enable / forced rest seen by a key pool, 404 and 400
//! answers, users refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::router;
use crate::gateway::auth::{ClientTable, RawClient, require_client};
use crate::keys::{ApiKey, KeyPool, KeyRegistry};
use crate::quota::ScopeKind;
use crate::system::ActorSystem;

const ADMIN: &str = "admin-client-key-01";
const USER: &str = "user-client-key-002";
const SECRET_A: &str = "sk-provider-secret-aaaa1111";
const SECRET_B: &str = "sk-provider-secret-bbbb2222";

fn client(name: &str, key: &str, role: &str) -> RawClient {
    RawClient {
        name: Some(name.to_owned()),
        key: Some(key.to_owned()),
        role: Some(role.to_owned()),
        ..RawClient::default()
    }
}

/// A registry with two provider keys in one pool, and the gateway's router over it.
fn setup() -> (KeyRegistry, KeyPool, Router) {
    let registry = KeyRegistry::new(&ActorSystem::current().unwrap());
    let pool = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![
            ApiKey::new(SECRET_A, "env OPENAI_API_KEY"),
            ApiKey::new(SECRET_B, "gateway.yaml keys[1]"),
        ],
        ScopeKind::PerKey,
        None,
    );
    let table =
        ClientTable::from_raw(&[client("ops", ADMIN, "admin"), client("app", USER, "user")])
            .unwrap();
    let app = Router::new().merge(router::<()>(registry.clone())).layer(
        axum::middleware::from_fn_with_state(Arc::new(table), require_client),
    );
    (registry, pool, app)
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        !text.contains("secret-aaaa") && !text.contains("secret-bbbb"),
        "{text}"
    );
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn id_of(secret: &str) -> String {
    ApiKey::new(secret, "t").short_id()
}

#[actix_rt::test]
async fn the_listing_masks_every_key_to_its_last_four_characters() {
    let (_registry, pool, app) = setup();
    pool.keys()[0]
        .record_success(Some(crate::provider::Usage::new(12, 3)))
        .await;
    let (s, v) = call(&app, "GET", "/admin/keys", ADMIN, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["key"], "…1111");
    assert_eq!(keys[1]["key"], "…2222");
    assert_eq!(keys[0]["id"], id_of(SECRET_A));
    assert_eq!(keys[0]["origin"], "env OPENAI_API_KEY");
    assert_eq!(keys[0]["usable"], true);
    assert_eq!(keys[0]["circuit"], "closed");
    assert_eq!(keys[0]["health"]["state"], "healthy");
    assert_eq!(keys[0]["usage"]["calls"], 1);
    assert_eq!(keys[0]["usage"]["input_tokens"], 12);
    assert_eq!(keys[1]["usage"]["calls"], 0);
    // A user may not see them.
    let (s, v) = call(&app, "GET", "/admin/keys", USER, "").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_permissions");
    let (s, _) = call(&app, "GET", "/admin/keys", "not-a-client-key", "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[actix_rt::test]
async fn disable_and_enable_change_what_the_pool_picks() {
    let (_registry, pool, app) = setup();
    let a = id_of(SECRET_A);
    let (s, v) = call(&app, "POST", &format!("/admin/keys/{a}/disable"), ADMIN, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["keys"][0]["disabled"], true);
    assert_eq!(v["keys"][0]["usable"], false);
    for _ in 0..4 {
        let c = pool.candidates();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key.as_ref().unwrap().key().expose(), SECRET_B);
    }
    // A user cannot undo it.
    let (s, _) = call(&app, "POST", &format!("/admin/keys/{a}/enable"), USER, "").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(pool.candidates().len(), 1);
    let (s, v) = call(&app, "POST", &format!("/admin/keys/{a}/enable"), ADMIN, "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["keys"][0]["usable"], true);
    assert_eq!(pool.candidates().len(), 2);
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_forced_cooldown_rests_the_key_for_its_seconds() {
    let (_registry, pool, app) = setup();
    let b = id_of(SECRET_B);
    let path = format!("/admin/keys/{b}/cooldown");
    let (s, v) = call(&app, "POST", &path, ADMIN, r#"{"seconds": 90}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["keys"][0]["usable"], false);
    assert!(
        v["keys"][0]["cooling_until"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{v}"
    );
    assert_eq!(pool.candidates().len(), 1);
    tokio::time::sleep(Duration::from_secs(89)).await;
    assert_eq!(pool.candidates().len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.candidates().len(), 2, "the rest ended by itself");
    let (_, v) = call(&app, "GET", "/admin/keys", ADMIN, "").await;
    assert_eq!(v["keys"][1]["cooling_until"], Value::Null);
}

#[actix_rt::test]
async fn unknown_ids_are_404_and_bad_bodies_400() {
    let (_registry, pool, app) = setup();
    for path in [
        "/admin/keys/00000000/disable",
        "/admin/keys/zzzz/enable",
        "/admin/keys/00000000/cooldown",
    ] {
        let (s, v) = call(&app, "POST", path, ADMIN, r#"{"seconds": 5}"#).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "key_not_found", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GET /admin/keys")
        );
    }
    // A long or odd id is not echoed back.
    let long = format!("/admin/keys/{}/disable", "%3Cscript%3E".repeat(50));
    let (s, v) = call(&app, "POST", &long, ADMIN, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!v.to_string().contains("script"), "{v}");
    let path = format!("/admin/keys/{}/cooldown", id_of(SECRET_A));
    for body in [
        "",
        "{",
        "[]",
        r#"{"seconds": "ten"}"#,
        r#"{"seconds": 0}"#,
        r#"{"seconds": -5}"#,
        r#"{"seconds": 1e300}"#,
        r#"{"seconds": 604801}"#,
        r#"{"seconds": 5, "extra": 1}"#,
        "\u{0}\u{1}",
    ] {
        let (s, v) = call(&app, "POST", &path, ADMIN, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body:?}: {v}");
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("\"seconds\"")
        );
    }
    assert_eq!(pool.candidates().len(), 2, "nothing changed");
    // Wrong methods are refused by the router.
    let (s, _) = call(&app, "GET", &path, ADMIN, "").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_rt::test]
async fn the_admin_router_alone_refuses_everyone() {
    // Mounted without the auth middleware in front, nothing gets through.
    let registry = KeyRegistry::new(&ActorSystem::current().unwrap());
    let app: Router = router(registry);
    let (s, v) = call(&app, "GET", "/admin/keys", ADMIN, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
}

#[actix_rt::test]
async fn admin_endpoints_on_a_real_listener() {
    let (_registry, pool, app) = setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = actix_rt::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = format!("http://{addr}");
    let list = http
        .get(format!("{base}/admin/keys"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let v: Value = list.json().await.unwrap();
    assert_eq!(v["keys"].as_array().unwrap().len(), 2);
    let a = id_of(SECRET_A);
    let r = http
        .post(format!("{base}/admin/keys/{a}/disable"))
        .header("x-api-key", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pool.candidates().len(), 1);
    let r = http
        .post(format!("{base}/admin/keys/{a}/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        pool.candidates().len(),
        1,
        "a refused request changed nothing"
    );
    server.abort();
}
