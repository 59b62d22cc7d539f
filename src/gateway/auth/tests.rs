//! Client config validation, constant-time authentication, roles and client quota scopes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use crate::quota::{Dimension, ScopeId};
use crate::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};

const ALICE_KEY: &str = "alice-key-0123456789";
const BOB_KEY: &str = "bob-key-abcdefghijkl";

fn raw(name: &str, key: &str) -> RawClient {
    RawClient {
        name: Some(name.to_owned()),
        key: Some(key.to_owned()),
        ..RawClient::default()
    }
}

fn yaml(text: &str) -> Vec<RawClient> {
    serde_yaml::from_str(text).unwrap()
}

fn table() -> ClientTable {
    let mut alice = raw("alice", ALICE_KEY);
    alice.role = Some("admin".to_owned());
    let bob = RawClient {
        name: Some("bob".to_owned()),
        key_sha256: Some(hash_key_hex(BOB_KEY).to_uppercase()),
        ..RawClient::default()
    };
    ClientTable::from_raw(&[alice, bob]).unwrap()
}

fn headers(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

fn error_of(raw: &[RawClient]) -> String {
    ClientTable::from_raw(raw).unwrap_err().to_string()
}

#[test]
fn the_clients_section_parses_from_yaml() {
    let clients = yaml(
        r#"
- name: ci-bot
  key_sha256: "0000000000000000000000000000000000000000000000000000000000000000"
  role: admin
  quota: {rpm: 2, tpm: 1000, rpd: 50, per_day_usd: 1.5}
- {name: demo, key: demo-client-key}
"#,
    );
    let t = ClientTable::from_raw(&clients).unwrap();
    assert!(t.is_enabled() && !t.requires_loopback());
    let ci = t.get("ci-bot").unwrap();
    assert!(ci.is_admin());
    assert_eq!(ci.quota().rpm.map(|n| n.get()), Some(2));
    assert_eq!(ci.quota().per_day_usd, Some(1.5));
    assert_eq!(ci.scopes(), vec![ScopeId::new("client:ci-bot")]);
    assert_eq!(ci.requester(), "client:ci-bot");
    let demo = t.get("demo").unwrap();
    assert_eq!(demo.role(), Role::User);
    assert!(demo.scopes().is_empty(), "no quota: no scope");
    // Unknown keys are refused by the raw type.
    let e = serde_yaml::from_str::<Vec<RawClient>>("- {name: a, key: abcdefgh, rol: admin}")
        .unwrap_err();
    assert!(e.to_string().contains("rol"), "{e}");
}

#[test]
fn mistakes_name_their_key_path() {
    let mut bad_hex = raw("a", "x");
    bad_hex.key = None;
    bad_hex.key_sha256 = Some("abc".to_owned());
    let cases: Vec<(Vec<RawClient>, &str)> = vec![
        (
            vec![raw("a", ALICE_KEY), bad_hex.clone()],
            "clients[1].key_sha256: not 64 hex digits",
        ),
        (
            vec![RawClient {
                key_sha256: Some("g".repeat(64)),
                ..bad_hex.clone()
            }],
            "clients[0].key_sha256: not 64 hex digits",
        ),
        (
            vec![RawClient {
                key: Some(ALICE_KEY.to_owned()),
                ..bad_hex.clone()
            }],
            "clients[0]: give either `key` or `key_sha256`, not both",
        ),
        (
            vec![RawClient {
                name: Some("a".to_owned()),
                ..RawClient::default()
            }],
            "clients[0]: missing key",
        ),
        (
            vec![RawClient {
                key: Some(ALICE_KEY.to_owned()),
                ..RawClient::default()
            }],
            "clients[0].name: missing",
        ),
        (
            vec![raw("a b", ALICE_KEY)],
            "clients[0].name: may hold only",
        ),
        (vec![raw("", ALICE_KEY)], "clients[0].name: empty"),
        (vec![raw("a", "short")], "clients[0].key: too short"),
        (
            vec![raw("a", "has a space in it")],
            "clients[0].key: may hold only visible",
        ),
        (
            vec![raw("a", ALICE_KEY), raw("a", BOB_KEY)],
            "clients[1].name: the name `a` is already used by clients[0]",
        ),
        (
            vec![raw("a", ALICE_KEY), raw("b", BOB_KEY), raw("c", ALICE_KEY)],
            "clients[2]: the same key as clients[0]",
        ),
        (
            vec![RawClient {
                role: Some("root".to_owned()),
                ..raw("a", ALICE_KEY)
            }],
            "clients[0].role: unknown role `root`; valid roles: admin, user",
        ),
        (
            vec![RawClient {
                quota: Some(RawClientQuota {
                    rpm: Some(0),
                    ..RawClientQuota::default()
                }),
                ..raw("a", ALICE_KEY)
            }],
            "clients[0].quota.rpm: 0 is not a valid rpm",
        ),
        (
            vec![RawClient {
                quota: Some(RawClientQuota {
                    per_day_usd: Some(f64::NAN),
                    ..RawClientQuota::default()
                }),
                ..raw("a", ALICE_KEY)
            }],
            "clients[0].quota.per_day_usd: NaN is not a valid budget",
        ),
        (
            vec![RawClient {
                quota: Some(RawClientQuota::default()),
                ..raw("a", ALICE_KEY)
            }],
            "clients[0].quota: empty quota",
        ),
    ];
    for (clients, want) in cases {
        let got = error_of(&clients);
        assert!(got.starts_with(want), "want `{want}`, got `{got}`");
        assert!(!got.contains(ALICE_KEY) && !got.contains(BOB_KEY), "{got}");
    }
    // The same key given as `key` and as `key_sha256` is the same key.
    let twice = [
        raw("a", ALICE_KEY),
        RawClient {
            name: Some("b".to_owned()),
            key_sha256: Some(hash_key_hex(ALICE_KEY)),
            ..RawClient::default()
        },
    ];
    assert!(error_of(&twice).starts_with("clients[1]: the same key as clients[0]"));
    let e = ClientTable::from_raw(&[bad_hex])
        .unwrap_err()
        .in_file("gateway.yaml");
    assert_eq!(e.path(), "clients[0].key_sha256");
    assert!(
        e.to_string()
            .starts_with("gateway.yaml: clients[0].key_sha256: not 64")
    );
}

#[test]
fn hash_key_hex_matches_sha256sum() {
    // printf %s abc | sha256sum
    assert_eq!(
        hash_key_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_right_key_names_its_client_and_any_other_is_refused() {
    let t = table();
    let alice = t
        .authenticate(&headers("authorization", &format!("Bearer {ALICE_KEY}")))
        .unwrap();
    assert_eq!(alice.name(), "alice");
    // key_sha256 given in upper case, scheme in lower case.
    let bob = t
        .authenticate(&headers("authorization", &format!("bearer {BOB_KEY}")))
        .unwrap();
    assert_eq!(bob.name(), "bob");
    let by_header = t.authenticate(&headers("x-api-key", BOB_KEY)).unwrap();
    assert_eq!(by_header.name(), "bob");
    // Authorization wins over x-api-key.
    let mut both = headers("authorization", &format!("Bearer {ALICE_KEY}"));
    both.insert("x-api-key", HeaderValue::from_static("wrong-key-123"));
    assert_eq!(t.authenticate(&both).unwrap().name(), "alice");
    for wrong in [
        format!("Bearer {ALICE_KEY}x"),
        format!("Bearer {}", &ALICE_KEY[1..]),
        format!("Bearer {}", hash_key_hex(ALICE_KEY)),
        "Bearer anonymous".to_owned(),
    ] {
        assert_eq!(
            t.authenticate(&headers("authorization", &wrong))
                .unwrap_err(),
            AuthError::Invalid,
            "{wrong}"
        );
    }
    assert_eq!(
        t.authenticate(&headers("x-api-key", "not-a-client-key"))
            .unwrap_err(),
        AuthError::Invalid
    );
    assert_eq!(
        t.authenticate(&HeaderMap::new()).unwrap_err(),
        AuthError::Missing
    );
    let basic = t
        .authenticate(&headers("authorization", "Basic YTpi"))
        .unwrap_err();
    assert!(matches!(basic, AuthError::Malformed(_)), "{basic:?}");
}

#[test]
fn with_no_clients_auth_is_off_and_loopback_only() {
    let t = ClientTable::from_raw(&[]).unwrap();
    assert!(!t.is_enabled() && t.requires_loopback());
    let anyone = t.authenticate(&HeaderMap::new()).unwrap();
    assert_eq!(anyone.name(), ANONYMOUS);
    assert!(anyone.is_admin() && anyone.scopes().is_empty());
    assert!(t.check_listen(&"127.0.0.1:8080".parse().unwrap()).is_ok());
    assert!(t.check_listen(&"[::1]:8080".parse().unwrap()).is_ok());
    let e = t
        .check_listen(&"0.0.0.0:8080".parse().unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    assert!(
        table()
            .check_listen(&"0.0.0.0:8080".parse().unwrap())
            .is_ok()
    );
}

#[tokio::test]
async fn errors_render_as_openai_errors() {
    let r = AuthError::Invalid.into_response();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid API key")
    );
    let r = AuthError::Forbidden.into_response();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers().get("www-authenticate").is_none());
}

fn quota_client(rpm: i64) -> ClientTable {
    ClientTable::from_raw(&[RawClient {
        quota: Some(RawClientQuota {
            rpm: Some(rpm),
            tpm: Some(10_000),
            ..RawClientQuota::default()
        }),
        ..raw("ci", ALICE_KEY)
    }])
    .unwrap()
}

#[test]
fn a_client_quota_is_a_scope_spec_built_like_a_limits_entry() {
    let t = quota_client(2);
    let spec = t.get("ci").unwrap().quota().scope_spec().unwrap();
    let got: Vec<(Dimension, u64, Duration)> = spec
        .limits
        .iter()
        .map(|l| (l.dimension, l.amount.get(), l.period))
        .collect();
    assert_eq!(
        got,
        vec![
            (Dimension::Requests, 2, Duration::from_secs(60)),
            (Dimension::Tokens, 10_000, Duration::from_secs(60)),
        ]
    );
    assert_eq!(spec.window_guard, crate::config::DEFAULT_WINDOW_GUARD);
}

#[test]
fn client_scopes_join_every_alternative_once() {
    let t = quota_client(2);
    let mut candidates = vec![
        vec![ScopeId::new("openai/m/key:1")],
        vec![ScopeId::new("openai/m/key:2"), ScopeId::new("client:ci")],
    ];
    t.get("ci").unwrap().add_scopes(&mut candidates);
    assert_eq!(
        candidates,
        vec![
            vec![ScopeId::new("openai/m/key:1"), ScopeId::new("client:ci")],
            vec![ScopeId::new("openai/m/key:2"), ScopeId::new("client:ci")],
        ]
    );
    let none = ClientTable::from_raw(&[raw("plain", BOB_KEY)]).unwrap();
    let mut c = vec![vec![ScopeId::new("x")]];
    none.get("plain").unwrap().add_scopes(&mut c);
    assert_eq!(c, vec![vec![ScopeId::new("x")]]);
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_client_scope_with_rpm_2_makes_the_third_permit_wait() {
    let q = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    let t = quota_client(2);
    let registered = register_client_scopes(&q, &t).await.unwrap();
    assert_eq!(registered, vec![ScopeId::new("client:ci")]);
    // A model scope with room to spare: the client's own limit is what holds.
    q.register_scope(ScopeId::new("simulated/m"), Default::default())
        .await
        .unwrap();
    let client = t.get("ci").unwrap();
    let ask = || {
        let mut req =
            AcquireRequest::new(vec![ScopeId::new("simulated/m")], 10, client.requester());
        client.add_scopes(&mut req.candidates);
        req.deadline = Some(Duration::from_secs(600));
        req
    };
    let a = q.acquire(ask()).await.unwrap();
    let b = q.acquire(ask()).await.unwrap();
    let start = tokio::time::Instant::now();
    let third = tokio::spawn({
        let q = q.clone();
        let req = ask();
        async move { q.acquire(req).await.map(|_| tokio::time::Instant::now()) }
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !third.is_finished(),
        "the third permit waits for the client's minute"
    );
    drop((a, b));
    let granted = third.await.unwrap().unwrap();
    assert!(
        granted - start >= Duration::from_secs(60),
        "granted after {:?}",
        granted - start
    );
    // Another client, or the model scope alone, is not held by this client's limit.
    let mut other = AcquireRequest::new(vec![ScopeId::new("simulated/m")], 10, "client:other");
    other.deadline = Some(Duration::from_secs(10));
    assert!(q.acquire(other).await.is_ok());
}
