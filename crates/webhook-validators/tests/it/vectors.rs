//! The providers' published signature vectors (../shared/reference/signatures.md), checked
//! against the `verify` validator itself, at the vector's own time of receipt. (The
//! server's tests send signed requests through the real server; these pin the scheme.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use webhook_core::{Check, Rejection, RequestView, Validator};
use webhook_validators::{HmacConfig, HmacSignature, Verify, VerifyConfig};

fn verify(config: &str) -> Verify {
    let config: VerifyConfig = serde_json::from_str(config).unwrap();
    Verify::build(config).unwrap()
}

/// Run `validator` on a POST to `uri` received at Unix second `at`.
fn check<V: Validator>(
    validator: &V,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    at: u64,
) -> Result<(), Rejection> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let peer: SocketAddr = "127.0.0.1:1234".parse().unwrap();
    let uri: Uri = uri.parse().unwrap();
    let body = bytes::Bytes::copy_from_slice(body);
    let view = RequestView {
        webhook_id: "w",
        method: &Method::POST,
        uri: &uri,
        headers: &map,
        peer,
        client_ip: peer.ip(),
        body: &body,
        received_at: UNIX_EPOCH + Duration::from_secs(at),
    };
    match validator.check(&view) {
        Check::Pass => Ok(()),
        Check::Reject(rejection) => Err(rejection),
        Check::Answer(_) | Check::Pending(_) => panic!("a signature check only passes or rejects"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn github() {
    let sig = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let v = verify(r#"{"provider": "github", "secret": "It's a Secret to Everybody"}"#);
    for value in [
        format!("sha256={sig}"),
        format!("sha256={}", sig.to_uppercase()),
    ] {
        let headers = [("X-Hub-Signature-256", value.as_str())];
        assert!(check(&v, "/webhook/w", &headers, b"Hello, World!", now()).is_ok());
    }
    let headers = [("X-Hub-Signature-256", &*format!("sha256={sig}"))];
    let tampered = check(&v, "/webhook/w", &headers, b"Hello, World?", now());
    assert_eq!(tampered.unwrap_err().reason, "signature_mismatch");
    let missing = check(&v, "/webhook/w", &[], b"Hello, World!", now());
    assert_eq!(missing.unwrap_err().reason, "signature_missing");

    // the plain `hmac` validator runs the same check over the same vector
    let hmac = HmacSignature::build(
        serde_json::from_str::<HmacConfig>(
            r#"{"secret": "It's a Secret to Everybody", "header": "X-Hub-Signature-256"}"#,
        )
        .unwrap(),
    )
    .unwrap();
    for value in [sig.to_owned(), format!("sha256={sig}")] {
        let headers = [("X-Hub-Signature-256", value.as_str())];
        assert!(check(&hmac, "/webhook/w", &headers, b"Hello, World!", now()).is_ok());
    }
}

#[test]
fn slack() {
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let v = verify(r#"{"provider": "slack", "secret": "8f742231b10e8888abcd99yyyzzz85a5"}"#);
    let headers = [
        (
            "X-Slack-Signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ),
        ("X-Slack-Request-Timestamp", "1531420618"),
    ];
    assert!(check(&v, "/webhook/w", &headers, body.as_bytes(), 1_531_420_618).is_ok());
    // the same request six minutes later is outside the default 300 s tolerance
    let late = check(
        &v,
        "/webhook/w",
        &headers,
        body.as_bytes(),
        1_531_420_618 + 360,
    );
    assert_eq!(late.unwrap_err().reason, "timestamp_out_of_tolerance");
}

#[test]
fn standard_webhooks_and_svix() {
    let body = br#"{"test": 2432232314}"#;
    let sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    for (provider, prefix) in [("standard-webhooks", "webhook"), ("svix", "svix")] {
        let v = verify(&format!(
            r#"{{"provider": "{provider}", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}"#
        ));
        let (id, ts, signature) = (
            format!("{prefix}-id"),
            format!("{prefix}-timestamp"),
            format!("{prefix}-signature"),
        );
        let headers = |sig: &'static str| {
            vec![
                (id.clone(), "msg_p5jXN8AQM9LWM0D4loKWxJek"),
                (ts.clone(), "1614265330"),
                (signature.clone(), sig),
            ]
        };
        let run = |h: Vec<(String, &str)>, body: &[u8]| {
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), *b)).collect();
            check(&v, "/webhook/w", &h, body, 1_614_265_330)
        };
        assert!(run(headers(sig), body).is_ok(), "{provider}");
        let list = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(
            run(headers(list), body).is_ok(),
            "{provider}: a later entry matches"
        );
        assert!(
            run(headers(sig), br#"{"test": 2432232315}"#).is_err(),
            "{provider}: flipped byte"
        );
        assert!(run(headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlN"), body).is_err());
    }
}

#[test]
fn twilio_with_the_public_url() {
    let body = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";
    let v = verify(
        r#"{"provider": "twilio", "secret": "12345", "public_url": "https://mycompany.com/myapp.php"}"#,
    );
    let headers = |sig: &'static str| {
        [
            ("X-Twilio-Signature", sig),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ]
    };
    let good = headers("GvWf1cFY/Q7PnoempGyD5oXAezc=");
    assert!(check(&v, "/webhook/w?foo=1&bar=2", &good, body, now()).is_ok());
    assert!(
        check(&v, "/webhook/w?foo=1&bar=3", &good, body, now()).is_err(),
        "other URL"
    );
    let case = headers("gvWf1cFY/Q7PnoempGyD5oXAezc=");
    assert!(
        check(&v, "/webhook/w?foo=1&bar=2", &case, body, now()).is_err(),
        "base64 is exact"
    );
}
