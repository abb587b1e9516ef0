//! The `verify` validator through the real HTTP server: every published vector of
//! ../shared/reference/signatures.md, the rejection cases listed there for each timestamped
//! preset, rotation, and config errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_testkit::recorder::Sink;
use webhook_testkit::{TestResponse, TestServer};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Wait until a second has just begun, so `now()` and the server's receive time agree.
async fn start_of_second() -> u64 {
    loop {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if t.subsec_millis() < 300 {
            return t.as_secs();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn webhook(sink: &str, verify: &str) -> String {
    format!(
        r#"{{"w": {{"data_type": "blob", "module": "test_recorder", "module-config": {{"sink": "{sink}"}},
                  "verify": {verify}}}}}"#
    )
}

async fn server(sink: &str, verify: &str) -> TestServer {
    TestServer::start(&webhook(sink, verify)).await
}

fn assert_rejected(r: &TestResponse, expected_signatures: &[&str], case: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}: {}", r.text());
    for signature in expected_signatures {
        assert!(
            !r.text().contains(signature),
            "{case}: the answer reveals the signature"
        );
    }
}

// --- published vectors: in webhook-validators' tests/it/vectors.rs -------------------------

// --- the rejection cases, per timestamped preset ---------------------------------------

/// How each timestamped preset lays out a signature made at `t` over `body`.
fn signed_headers(provider: &str, secret: &str, t: &str, body: &[u8]) -> Vec<(String, String)> {
    match provider {
        "stripe" => {
            let sig = hex::encode(hmac256(secret.as_bytes(), &[t.as_bytes(), b".", body]));
            vec![(
                "Stripe-Signature".into(),
                format!("t={t},v1={sig},v0=deadbeef"),
            )]
        }
        "slack" => {
            let sig = hex::encode(hmac256(
                secret.as_bytes(),
                &[b"v0:", t.as_bytes(), b":", body],
            ));
            vec![
                ("X-Slack-Signature".into(), format!("v0={sig}")),
                ("X-Slack-Request-Timestamp".into(), t.into()),
            ]
        }
        "paddle" => {
            let sig = hex::encode(hmac256(secret.as_bytes(), &[t.as_bytes(), b":", body]));
            vec![("Paddle-Signature".into(), format!("ts={t};h1={sig}"))]
        }
        "zoom" => {
            let sig = hex::encode(hmac256(
                secret.as_bytes(),
                &[b"v0:", t.as_bytes(), b":", body],
            ));
            vec![
                ("x-zm-signature".into(), format!("v0={sig}")),
                ("x-zm-request-timestamp".into(), t.into()),
            ]
        }
        "standard-webhooks" => {
            let key = BASE64.decode(secret.trim_start_matches("whsec_")).unwrap();
            let id = "msg_1";
            let sig = BASE64.encode(hmac256(
                &key,
                &[id.as_bytes(), b".", t.as_bytes(), b".", body],
            ));
            vec![
                ("webhook-id".into(), id.into()),
                ("webhook-timestamp".into(), t.into()),
                ("webhook-signature".into(), format!("v1,{sig}")),
            ]
        }
        other => panic!("{other}"),
    }
}

async fn send(s: &TestServer, headers: &[(String, String)], body: &[u8]) -> TestResponse {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    s.post("w", &h, body.to_vec()).await
}

#[tokio::test]
async fn timestamped_presets_reject_every_listed_case() {
    let body: &[u8] = br#"{"id": "evt_1", "type": "invoice.paid"}"#;
    for (provider, secret, tolerance) in [
        ("stripe", "whsec_test_literal_secret", 300u64),
        ("slack", "8f742231b10e8888abcd99yyyzzz85a5", 300),
        ("paddle", "pdl_ntfset_secret", 5),
        ("zoom", "zoom-secret-token", 300),
        (
            "standard-webhooks",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            300,
        ),
    ] {
        let sink = format!("cases_{provider}");
        let recorded = Sink::named(&sink);
        let s = server(
            &sink,
            &format!(r#"{{"provider": "{provider}", "secret": "{secret}"}}"#),
        )
        .await;
        let t = start_of_second().await;
        let good = signed_headers(provider, secret, &t.to_string(), body);
        let r = send(&s, &good, body).await;
        assert_eq!(r.status, StatusCode::OK, "{provider}: {}", r.text());

        // Hex in upper case is the same signature.
        if provider != "standard-webhooks" {
            let upper: Vec<(String, String)> = good
                .iter()
                .map(|(n, v)| {
                    let v = match v.rsplit_once('=') {
                        Some((head, sig)) if sig.len() >= 40 => {
                            format!("{head}={}", sig.to_uppercase())
                        }
                        _ => match v.split_once(",v0=") {
                            Some((head, tail)) => {
                                let (k, sig) = head.rsplit_once('=').unwrap();
                                format!("{k}={},v0={tail}", sig.to_uppercase())
                            }
                            None => v.clone(),
                        },
                    };
                    (n.clone(), v)
                })
                .collect();
            let r = send(&s, &upper, body).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{provider} upper-case hex: {upper:?}"
            );
        }

        // Exactly at the boundary: accepted; one second beyond, past or future: refused.
        for (case, at, accepted) in [
            ("boundary past", t - tolerance, true),
            ("boundary future", t + tolerance, true),
            ("one second too old", t - tolerance - 1, false),
            ("one second in the future", t + tolerance + 1, false),
        ] {
            let t_now = start_of_second().await;
            let at = at + (t_now - t);
            let headers = signed_headers(provider, secret, &at.to_string(), body);
            let r = send(&s, &headers, body).await;
            if accepted {
                assert_eq!(r.status, StatusCode::OK, "{provider} {case}: {}", r.text());
            } else {
                assert_rejected(&r, &[], &format!("{provider} {case}"));
            }
        }

        let expected: Vec<String> = good.iter().map(|(_, v)| v.clone()).collect();
        let mut flipped = body.to_vec();
        flipped[3] ^= 0x01;
        let r = send(&s, &good, &flipped).await;
        assert_rejected(&r, &[], &format!("{provider} flipped byte"));

        let wrong = signed_headers(
            provider,
            if provider == "standard-webhooks" {
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            } else {
                "wrong"
            },
            &t.to_string(),
            body,
        );
        let r = send(&s, &wrong, body).await;
        assert_rejected(&r, &[], &format!("{provider} wrong secret"));

        for missing in 0..good.len() {
            let mut headers = good.clone();
            headers.remove(missing);
            let r = send(&s, &headers, body).await;
            assert_rejected(&r, &[], &format!("{provider} without {}", good[missing].0));
        }

        for bad_t in ["", "abc", "16e8", "-5"] {
            let headers = signed_headers(provider, secret, bad_t, body);
            let r = send(&s, &headers, body).await;
            assert_rejected(&r, &[], &format!("{provider} timestamp {bad_t:?}"));
        }

        // A truncated signature: the first half of the bytes.
        let truncated: Vec<(String, String)> = good
            .iter()
            .map(|(n, v)| {
                if n.to_ascii_lowercase().contains("sig") {
                    (n.clone(), v[..v.len() / 2 + 4].to_owned())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect();
        let r = send(&s, &truncated, body).await;
        assert_rejected(&r, &[], &format!("{provider} truncated"));

        for value in &expected {
            assert!(!r.text().contains(value.as_str()));
        }
        // good + upper-case hex (hex presets) + the two boundary cases
        let accepted = if provider == "standard-webhooks" {
            3
        } else {
            4
        };
        assert_eq!(
            recorded.bodies().len(),
            accepted,
            "{provider}: only the accepted ones delivered"
        );
    }
}

#[tokio::test]
async fn stripe_only_v0_and_later_v1_entries() {
    let secret = "whsec_literal";
    let s = server(
        "stripe_lists",
        &format!(r#"{{"provider": "stripe", "secret": "{secret}"}}"#),
    )
    .await;
    let body: &[u8] = br#"{"id": "evt_2"}"#;
    let t = now().to_string();
    let sig = hex::encode(hmac256(secret.as_bytes(), &[t.as_bytes(), b".", body]));
    let header = |v: String| vec![("Stripe-Signature".to_owned(), v)];
    let r = send(&s, &header(format!("t={t},v0={sig}")), body).await;
    assert_rejected(&r, &[&sig], "only v0");
    let r = send(&s, &header(format!("t={t},v1={}", "0".repeat(64))), body).await;
    assert_rejected(&r, &[&sig], "no v1 matches");
    let r = send(
        &s,
        &header(format!("t={t},v1={},v1={sig}", "0".repeat(64))),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "a later v1 matches");
    let r = send(&s, &header(format!("t={t},v1=")), body).await;
    assert_rejected(&r, &[&sig], "empty v1");
}

#[tokio::test]
async fn rotation_accepts_any_configured_secret() {
    let s = server(
        "rotation",
        r#"{"provider": "shopify", "secrets": ["new-secret", "old-secret"]}"#,
    )
    .await;
    let body: &[u8] = br#"{"id": 1}"#;
    for (secret, ok) in [("new-secret", true), ("old-secret", true), ("other", false)] {
        let sig = BASE64.encode(hmac256(secret.as_bytes(), &[body]));
        let r = send(
            &s,
            &[("X-Shopify-Hmac-Sha256".to_owned(), sig.clone())],
            body,
        )
        .await;
        if ok {
            assert_eq!(r.status, StatusCode::OK, "{secret}");
        } else {
            assert_rejected(&r, &[&sig], secret);
        }
    }
}

#[tokio::test]
async fn gitlab_token_and_a_custom_scheme() {
    let s = server("gitlab", r#"{"provider": "gitlab", "secret": "glt-token"}"#).await;
    let ok = send(&s, &[("X-Gitlab-Token".into(), "glt-token".into())], b"{}").await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = send(&s, &[("X-Gitlab-Token".into(), "glt-toke".into())], b"{}").await;
    assert_rejected(&bad, &["glt-token"], "gitlab wrong token");

    let s = server(
        "custom",
        r#"{"scheme": {"signature_header": "X-Sig", "signature_prefix": "sha512=", "algorithm": "sha512",
                       "encoding": "base64", "timestamp_header": "X-Time", "signed": "{t}|{body}"},
            "secret": "k", "tolerance": 60}"#,
    )
    .await;
    let t = now().to_string();
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(b"k").unwrap();
    mac.update(format!("{t}|").as_bytes());
    mac.update(b"payload");
    let sig = BASE64.encode(mac.finalize().into_bytes());
    let r = send(
        &s,
        &[
            ("X-Sig".into(), format!("sha512={sig}")),
            ("X-Time".into(), t),
        ],
        b"payload",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn config_errors_name_the_key() {
    for (verify, expected) in [
        (
            r#"{"provider": "bitbucket", "secret": "s"}"#,
            "w.verify.provider",
        ),
        (r#"{"provider": "stripe"}"#, "w.verify.secret"),
        (
            r#"{"provider": "twilio", "secret": "s"}"#,
            "w.verify.public_url",
        ),
        (
            r#"{"provider": "github", "secret": "s", "tolerance": 10}"#,
            "w.verify.tolerance",
        ),
        (
            r#"{"provider": "standard-webhooks", "secret": "whsec_!!"}"#,
            "w.verify.secret",
        ),
        (
            r#"{"provider": "stripe", "secrets": ["a", ""]}"#,
            "w.verify.secrets[1]",
        ),
        (
            r#"{"scheme": {"signature_header": "X", "signed": "{t}.{body}"}, "secret": "s"}"#,
            "w.verify.scheme.signed",
        ),
        (
            r#"{"provider": "stripe", "secret": "s", "extra": 1}"#,
            "w.verify",
        ),
    ] {
        let err = TestServer::builder(&webhook("cfg", verify))
            .config_error()
            .await;
        assert!(err.contains(expected), "{verify}: {err}");
        assert!(
            !err.contains("whsec_!!") || expected.contains("secret"),
            "{err}"
        );
    }
}

// --- cross-checks against the providers' own SDKs (PyPI) ---------------------------------

fn sdk_headers(provider: &str, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    use webhook_testkit::interop::{python, scripts_dir};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    let output = std::process::Command::new(python())
        .arg(scripts_dir().join("sdk_sign.py"))
        .args([provider, secret, file.to_str().unwrap()])
        .output()
        .expect("python with the provider SDKs (bash .ci/test installs them)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).unwrap();
    map.into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn the_providers_sdks_sign_and_we_accept() {
    let body = "{\"id\": \"evt_sdk\", \"data\": {\"text\": \"caf\u{e9}\"}}".as_bytes();
    for (provider, secret) in [
        ("stripe", "whsec_sdk_literal_secret"),
        (
            "standard-webhooks",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("svix", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("slack", "8f742231b10e8888abcd99yyyzzz85a5"),
    ] {
        let sink = format!("sdk_{provider}");
        let recorded = Sink::named(&sink);
        let s = server(
            &sink,
            &format!(r#"{{"provider": "{provider}", "secret": "{secret}"}}"#),
        )
        .await;
        let headers = sdk_headers(provider, secret, body);
        let r = send(&s, &headers, body).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{provider} SDK: {headers:?} {}",
            r.text()
        );
        let mut tampered = body.to_vec();
        tampered[8] ^= 0x20;
        let r = send(&s, &headers, &tampered).await;
        assert_rejected(&r, &[], &format!("{provider} SDK, tampered body"));
        assert_eq!(recorded.bodies(), vec![bytes::Bytes::from_static(body)]);
    }
}

// --- handshakes and de-duplication -----------------------------------------------------

#[tokio::test]
async fn slack_and_zoom_handshakes_only_after_the_signature() {
    let recorded = Sink::named("handshake");
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let s = server(
        "handshake",
        &format!(r#"{{"provider": "slack", "secret": "{secret}"}}"#),
    )
    .await;
    let body = br#"{"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}"#;
    let headers = signed_headers("slack", secret, &now().to_string(), body);
    let r = send(&s, &headers, body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    let unsigned = send(
        &s,
        &signed_headers("slack", "wrong", &now().to_string(), body),
        body,
    )
    .await;
    assert_rejected(&unsigned, &["3eZbrw1a"], "unsigned handshake");

    let secret = "zoom-secret-token";
    let s = server(
        "handshake",
        &format!(r#"{{"provider": "zoom", "secret": "{secret}"}}"#),
    )
    .await;
    let body = br#"{"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680, "event": "endpoint.url_validation"}"#;
    let r = send(
        &s,
        &signed_headers("zoom", secret, &now().to_string(), body),
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let expected = hex::encode(hmac256(secret.as_bytes(), &[b"qgg8vlvZRS6UYooatFL8Aw"]));
    assert_eq!(
        r.json(),
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected})
    );
    assert!(recorded.bodies().is_empty(), "handshakes are not delivered");
}

#[tokio::test]
async fn duplicates_are_answered_200_and_delivered_once() {
    let recorded = Sink::named("dedup_gh");
    let secret = "It's a Secret to Everybody";
    let s = server(
        "dedup_gh",
        &format!(r#"{{"provider": "github", "secret": "{secret}", "dedup": true}}"#),
    )
    .await;
    let body: &[u8] = b"{\"zen\": \"Keep it logically awesome.\"}";
    let sig = format!(
        "sha256={}",
        hex::encode(hmac256(secret.as_bytes(), &[body]))
    );
    let headers = |id: &str| {
        vec![
            ("X-Hub-Signature-256".to_owned(), sig.clone()),
            ("X-GitHub-Delivery".to_owned(), id.to_owned()),
        ]
    };
    let first = send(&s, &headers("d-1"), body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["duplicate"], serde_json::Value::Null);
    let second = send(&s, &headers("d-1"), body).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json()["duplicate"], true);
    assert_eq!(send(&s, &headers("d-2"), body).await.status, StatusCode::OK);
    assert_eq!(recorded.bodies().len(), 2, "d-1 once, d-2 once");
    let stats = s.get("/stats").await.json();
    assert_eq!(stats["w"]["duplicates"], 1, "{stats}");
    assert_eq!(stats["w"]["total"], 2, "{stats}");

    // A delivery that failed is not remembered: the sender's retry is delivered.
    recorded.fail_next(1);
    assert_eq!(
        send(&s, &headers("d-3"), body).await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(send(&s, &headers("d-3"), body).await.status, StatusCode::OK);
    assert_eq!(
        send(&s, &headers("d-3"), body).await.json()["duplicate"],
        true
    );
    assert_eq!(recorded.bodies().len(), 3);

    // A forged duplicate (bad signature) is still refused, not answered 200.
    let forged = vec![
        (
            "X-Hub-Signature-256".to_owned(),
            format!("sha256={}", "0".repeat(64)),
        ),
        ("X-GitHub-Delivery".to_owned(), "d-1".to_owned()),
    ];
    assert_eq!(
        send(&s, &forged, body).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn stripe_dedup_by_event_id_in_the_body() {
    let recorded = Sink::named("dedup_stripe");
    let secret = "whsec_dedup";
    let s = server(
        "dedup_stripe",
        &format!(r#"{{"provider": "stripe", "secret": "{secret}", "dedup": {{"window": 600}}}}"#),
    )
    .await;
    for (body, t) in [
        (&br#"{"id": "evt_1", "n": 1}"#[..], now()),
        (&br#"{"id": "evt_1", "n": 1}"#[..], now() + 1),
        (&br#"{"id": "evt_2", "n": 2}"#[..], now()),
    ] {
        let r = send(
            &s,
            &signed_headers("stripe", secret, &t.to_string(), body),
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(recorded.bodies().len(), 2);

    let err = TestServer::builder(&webhook(
        "cfg",
        r#"{"provider": "stripe", "secret": "s", "dedup": {"window": 10}}"#,
    ))
    .config_error()
    .await;
    assert!(err.contains("w.verify.dedup.window"), "{err}");
    let err = TestServer::builder(&webhook(
        "cfg",
        r#"{"provider": "zoom", "secret": "s", "dedup": true}"#,
    ))
    .config_error()
    .await;
    assert!(err.contains("w.verify.dedup"), "{err}");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn two_instances_share_the_dedup_window_through_redis() {
    use webhook_testkit::interop::{host_port, require_tcp, service_url, unique};
    let url = service_url("redis", "redis://127.0.0.1:6379/0");
    let (host, port) = host_port(&url);
    require_tcp("redis", &host, port);

    let recorded = Sink::named("dedup_redis");
    let secret = "shpss_shared";
    let prefix = unique("dedup-test");
    let verify = format!(
        r#"{{"provider": "shopify", "secret": "{secret}", "dedup": {{"redis_url": "{url}", "key_prefix": "{prefix}", "window": 60}}}}"#
    );
    let a = server("dedup_redis", &verify).await;
    let b = server("dedup_redis", &verify).await;
    let body: &[u8] = br#"{"id": 820982911946154508, "email": "jon@example.com"}"#;
    let sig = BASE64.encode(hmac256(secret.as_bytes(), &[body]));
    let headers = |id: &str| {
        vec![
            ("X-Shopify-Hmac-Sha256".to_owned(), sig.clone()),
            ("X-Shopify-Webhook-Id".to_owned(), id.to_owned()),
        ]
    };
    let first = send(&a, &headers("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"), body).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let again = send(&b, &headers("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"), body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.json()["duplicate"],
        true,
        "instance b saw a's delivery"
    );
    let other = send(&b, &headers("another-id"), body).await;
    assert_eq!(other.json()["duplicate"], serde_json::Value::Null);
    assert_eq!(
        send(&a, &headers("another-id"), body).await.json()["duplicate"],
        true
    );
    assert_eq!(
        recorded.bodies().len(),
        2,
        "each id delivered once across both instances"
    );

    // Redis is the window: the key exists with the configured expiry.
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &url, "ttl", &format!("{prefix}:w:another-id")])
        .output()
        .unwrap();
    let ttl: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
}
