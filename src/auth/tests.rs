use std::time::{Duration, SystemTime};

use super::token::{Access, Claims, TokenError, TokenKey};
use super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn claims(now: SystemTime, ttl: Duration) -> Claims {
    Claims::new(
        &Principal::named("alice"),
        vec![Access::pull("library/alpine")],
        now,
        ttl,
    )
}

#[test]
fn token_round_trip_and_scope() {
    let key = TokenKey::new(KEY);
    let now = SystemTime::now();
    let token = key.sign(&claims(now, Duration::from_secs(300)));
    let back = key.verify(&token, now).unwrap();
    assert_eq!(back.sub, "alice");
    assert!(back.grants_pull("library/alpine"));
    assert!(!back.grants_pull("library/nginx"));
}

#[test]
fn token_expired_and_bad_signature() {
    let key = TokenKey::new(KEY);
    let now = SystemTime::now();
    let token = key.sign(&claims(now, Duration::from_secs(5)));
    let later = now + Duration::from_secs(6);
    assert_eq!(key.verify(&token, later), Err(TokenError::Expired));
    let other = TokenKey::new(b"another key, also thirty-two bytes");
    assert_eq!(other.verify(&token, now), Err(TokenError::BadSignature));
    // A changed payload with the old signature.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD_ENCODE(br#"{"sub":"root"}"#);
    parts[1] = &forged;
    assert_eq!(
        key.verify(&parts.join("."), now),
        Err(TokenError::BadSignature)
    );
    assert_eq!(key.verify("a.b", now), Err(TokenError::Malformed));
}

/// A caller with `headers` and `certificate`, from no address.
fn at<'a>(headers: &'a HeaderMap, certificate: Option<&'a ClientCertificate>) -> Caller<'a> {
    Caller {
        headers: Some(headers),
        certificate,
        remote: None,
    }
}

#[allow(non_snake_case)]
fn URL_SAFE_NO_PAD_ENCODE(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn scopes_from_the_query() {
    let access = requested_access(
        "service=trustgate&scope=repository%3Alibrary%2Falpine%3Apull&scope=repository:a/b:push\
         &scope=repository:x:pull,push+registry:catalog:*&account=alice",
    );
    let names: Vec<&str> = access.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["library/alpine", "x"]);
}

#[test]
fn htpasswd_bcrypt_only_and_no_secret_in_debug() {
    let hash = bcrypt::hash_with_salt("s3cret", 4, [7; 16])
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let auth = Auth::new(false, false)
        .with_htpasswd(&format!("# users\nalice:{hash}\n"))
        .unwrap()
        .with_token("ci", Secret::new("ci-token-value"))
        .with_token_key(TokenKey::new(KEY), Duration::from_secs(60));
    let debug = format!("{auth:?}");
    assert!(
        !debug.contains(&hash) && !debug.contains("ci-token-value"),
        "{debug}"
    );
    let err = Auth::new(false, false)
        .with_htpasswd("bob:{SHA}abc=\n")
        .unwrap_err();
    assert!(err.contains("line 1") && !err.contains("abc"), "{err}");
}

#[tokio::test]
async fn basic_bearer_and_anonymous() {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let auth = Arc::new(
        Auth::new(false, false)
            .with_htpasswd(&format!("alice:{hash}"))
            .unwrap()
            .with_token("ci", Secret::new("ci-token-value"))
            .with_token_key(TokenKey::new(KEY), Duration::from_secs(60)),
    );
    let req = |value: Option<String>| -> HeaderMap {
        let mut b = Request::get("/v2/library/alpine/manifests/latest");
        if let Some(v) = value {
            b = b.header(header::AUTHORIZATION, v);
        }
        b.body(()).unwrap().headers().clone()
    };
    let basic = |u: &str, p: &str| {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ))
    };
    let repo = Some("library/alpine");
    assert_eq!(
        auth.authenticate(&at(&req(basic("alice", "s3cret")), None), repo)
            .await
            .unwrap()
            .name,
        "alice"
    );
    assert_eq!(
        auth.authenticate(&at(&req(basic("alice", "nope")), None), repo)
            .await,
        Err(Failure::BadPassword)
    );
    assert_eq!(
        auth.authenticate(&at(&req(basic("mallory", "s3cret")), None), repo)
            .await,
        Err(Failure::UnknownUser)
    );
    assert_eq!(
        auth.authenticate(&at(&req(None), None), repo).await,
        Err(Failure::MissingCredentials)
    );
    assert_eq!(
        auth.authenticate(&at(&req(Some("Bearer ci-token-value".into())), None), repo)
            .await
            .unwrap()
            .name,
        "ci"
    );
    let token = auth
        .key
        .as_ref()
        .unwrap()
        .sign(&claims(SystemTime::now(), Duration::from_secs(60)));
    let bearer = Some(format!("Bearer {token}"));
    assert!(auth
        .authenticate(&at(&req(bearer.clone()), None), repo)
        .await
        .is_ok());
    assert_eq!(
        auth.authenticate(&at(&req(bearer), None), Some("library/nginx"))
            .await,
        Err(Failure::InsufficientScope)
    );
    let open = Arc::new(Auth::new(true, false));
    assert_eq!(
        open.authenticate(&at(&req(None), None), repo)
            .await
            .unwrap(),
        Principal::anonymous()
    );
}

#[test]
fn challenge_names_the_realm_and_scope() {
    let auth = Auth::new(false, true).with_token_key(TokenKey::new(KEY), Duration::from_secs(60));
    assert_eq!(
        auth.challenge(Some("mirror.example:5000"), Some("library/alpine")),
        "Bearer realm=\"https://mirror.example:5000/token\",service=\"trustgate\",\
         scope=\"repository:library/alpine:pull\""
    );
    let req = Request::get("/v2/")
        .header(header::HOST, "a\"b")
        .body(())
        .unwrap();
    assert_eq!(host(req.headers(), None), None);
}

#[test]
fn access_rules_grant_by_principal_group_and_pattern() {
    let rule = |principals: &[&str], groups: &[&str], pull: &[&str]| AccessRule {
        principals: principals.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        pull: pull.iter().map(|p| p.parse().unwrap()).collect(),
    };
    let groups = [("dev".to_owned(), vec!["alice".to_owned()])].into();
    let auth = Auth::new(false, false).with_access(
        groups,
        Some(vec![
            rule(&[], &["dev"], &["docker.io/library/*"]),
            rule(&["ci"], &[], &["docker.io/**"]),
            rule(&["*"], &[], &["docker.io/public/**"]),
        ]),
    );
    let alice = auth.grant(Principal::named("alice"));
    assert_eq!(alice.principal.groups, ["dev"]);
    assert!(alice.may_pull("docker.io", "library/nginx"));
    assert!(!alice.may_pull("docker.io", "bitnami/redis"));
    assert!(!alice.may_pull("quay.io", "library/nginx"));
    assert!(auth
        .grant(Principal::named("ci"))
        .may_pull("docker.io", "bitnami/redis"));
    let anonymous = auth.grant(Principal::anonymous());
    assert!(anonymous.may_pull("docker.io", "public/x"));
    assert!(!anonymous.may_pull("docker.io", "library/nginx"));
    let open = Auth::new(true, false).grant(Principal::anonymous());
    assert!(open.may_pull("quay.io", "anything"));
}

#[tokio::test]
async fn a_verified_certificate_is_its_principal_and_wins_over_headers() {
    let ci = Principal {
        name: "ci".into(),
        groups: vec!["builders".into()],
    };
    let auth = Arc::new(
        Auth::new(true, true)
            .with_token("bot", Secret::new("bot-token"))
            .with_certificate("CN=ci-runner,O=Example", ci.clone()),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer bot-token"),
    );
    let cert = |s: &str| ClientCertificate {
        subject: s.to_owned(),
    };
    let mapped = cert("CN=ci-runner,O=Example");
    assert_eq!(
        auth.authenticate(&at(&headers, Some(&mapped)), None).await,
        Ok(ci)
    );
    // Unmapped (and undecodable) subjects are refused, not served as anonymous or by the
    // bearer token.
    for subject in ["CN=someone-else,O=Example", ""] {
        assert_eq!(
            auth.authenticate(&at(&headers, Some(&cert(subject))), None)
                .await,
            Err(Failure::UnknownCertificate)
        );
    }
    // Without a certificate, the header decides.
    assert_eq!(
        auth.authenticate(&at(&headers, None), None)
            .await
            .unwrap()
            .name,
        "bot"
    );
    assert_eq!(Failure::UnknownCertificate.as_str(), "unknown_certificate");
    assert!(!format!("{auth:?}").contains("bot-token"));
}

fn rule(principals: &[&str], groups: &[&str], pull: &[&str]) -> AccessRule {
    AccessRule {
        principals: principals.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        pull: pull.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

fn basic_headers(user: &str, password: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    headers.insert(header::AUTHORIZATION, value.parse().unwrap());
    headers
}

/// alice (group dev) may pull Docker Hub's official images; ci `team/**` on registry.test.
fn scoped_auth() -> Auth {
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    Auth::new(false, false)
        .with_htpasswd(&format!("alice:{hash}"))
        .unwrap()
        .with_token_key(TokenKey::new(KEY), Duration::from_secs(60))
        .with_registries(["docker.io".to_owned(), "registry.test".to_owned()])
        .with_access(
            [("dev".to_owned(), vec!["alice".to_owned()])].into(),
            Some(vec![
                rule(&[], &["dev"], &["docker.io/library/*"]),
                rule(&["ci"], &[], &["registry.test/team/**"]),
            ]),
        )
}

#[test]
fn may_pull_anywhere_maps_names_as_the_proxy_does() {
    let auth = scoped_auth();
    let registries = &auth.registries;
    let alice = auth.grant(Principal::named("alice"));
    // `alpine` is `library/alpine` on Docker Hub.
    assert!(alice.may_pull_anywhere(registries, "alpine"));
    assert!(alice.may_pull_anywhere(registries, "library/nginx"));
    assert!(!alice.may_pull_anywhere(registries, "bitnami/redis"));
    // Not under an upstream that is not configured.
    assert!(!alice.may_pull_anywhere(&["registry.test".to_owned()], "library/nginx"));
    let ci = auth.grant(Principal::named("ci"));
    assert!(ci.may_pull_anywhere(registries, "team/app"));
    assert!(!ci.may_pull_anywhere(&["docker.io".to_owned()], "team/app"));
    // Without access rules every name is granted, upstreams or not.
    let open = Auth::new(true, false).grant(Principal::anonymous());
    assert!(open.may_pull_anywhere(&[], "anything"));
}

#[tokio::test]
async fn tokens_carry_only_the_scopes_the_principal_may_pull() {
    let auth = scoped_auth();
    let metrics = crate::metrics::Metrics::new();
    let headers = basic_headers("alice", "s3cret");
    let response = auth
        .issue(
            &at(&headers, None),
            "service=trustgate&scope=repository:alpine:pull\
             &scope=repository:bitnami/redis:pull+repository:library/nginx:pull",
            metrics.http(),
        )
        .await;
    // Denied scopes are left out, the token is still issued.
    let (token, claims) = issued(&auth, response).await;
    let token = token.as_str();
    let names: Vec<&str> = claims.access.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alpine", "library/nginx"]);

    // With that token: a scope it lacks but could get is a 401 insufficient_scope; a
    // repository alice may pull from no upstream passes on as alice, for the handler's
    // access check to answer 403 DENIED.
    let mut bearer = HeaderMap::new();
    bearer.insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let caller = at(&bearer, None);
    assert_eq!(
        auth.authenticate(&caller, Some("alpine"))
            .await
            .unwrap()
            .name,
        "alice"
    );
    assert_eq!(
        auth.authenticate(&caller, Some("library/busybox")).await,
        Err(Failure::InsufficientScope)
    );
    let passed = auth
        .authenticate(&caller, Some("bitnami/redis"))
        .await
        .unwrap();
    assert_eq!(passed.name, "alice");
    assert!(!auth.grant(passed).may_pull("docker.io", "bitnami/redis"));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address_without_bcrypt() {
    let auth = scoped_auth().with_login_failures(1, 3);
    let headers = basic_headers("alice", "wrong");
    let from = |ip: &str| Caller {
        headers: Some(&headers),
        certificate: None,
        remote: Some(ip.parse().unwrap()),
    };
    let checks = || {
        auth.passwords
            .checks
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    for _ in 0..3 {
        assert_eq!(
            auth.authenticate(&from("192.0.2.1"), None).await,
            Err(Failure::BadPassword)
        );
    }
    assert_eq!(checks(), 3);
    let throttled = auth.authenticate(&from("192.0.2.1"), None).await;
    let Err(failure @ Failure::LoginThrottled { retry_after }) = throttled else {
        panic!("{throttled:?}");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
    // No bcrypt check for a throttled attempt, even with the right password.
    let right = basic_headers("alice", "s3cret");
    let caller = Caller {
        headers: Some(&right),
        certificate: None,
        remote: Some("192.0.2.1".parse().unwrap()),
    };
    assert!(matches!(
        auth.authenticate(&caller, None).await,
        Err(Failure::LoginThrottled { .. })
    ));
    assert_eq!(checks(), 3);
    // Another address has its own bucket.
    assert_eq!(
        auth.authenticate(&from("192.0.2.2"), None).await,
        Err(Failure::BadPassword)
    );
    assert_eq!(checks(), 4);
    // The answer: 429 TOOMANYREQUESTS with Retry-After, counted as login_throttled.
    let metrics = crate::metrics::Metrics::new();
    let response = auth.refuse(failure, None, None, Some(metrics.http()));
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get(header::RETRY_AFTER).is_some());
    assert_eq!(failure.as_str(), "login_throttled");
    assert!(metrics
        .render()
        .contains("trustgate_auth_failures_total{reason=\"login_throttled\"} 1"));
}

#[tokio::test]
async fn successful_logins_do_not_count_against_the_limit() {
    let auth = scoped_auth()
        .with_login_failures(1, 2)
        .with_password_cache(Duration::ZERO);
    let bad = basic_headers("alice", "wrong");
    let good = basic_headers("alice", "s3cret");
    let caller = |headers| Caller {
        headers: Some(headers),
        certificate: None,
        remote: Some("2001:db8::1".parse().unwrap()),
    };
    assert!(auth.authenticate(&caller(&bad), None).await.is_err());
    for _ in 0..5 {
        assert!(auth.authenticate(&caller(&good), None).await.is_ok());
    }
    assert_eq!(
        auth.authenticate(&caller(&bad), None).await,
        Err(Failure::BadPassword)
    );
    // An address in the same /64 shares the bucket, now empty.
    let neighbour = Caller {
        remote: Some("2001:db8::ffff:1".parse().unwrap()),
        ..caller(&good)
    };
    assert!(matches!(
        auth.authenticate(&neighbour, None).await,
        Err(Failure::LoginThrottled { .. })
    ));
}

#[tokio::test]
async fn many_logins_at_once_from_one_address_are_not_throttled_for_succeeding() {
    // A CI fleet behind one address, all logging in at once before any is cached: only
    // failures count, so none is refused however many are in flight.
    let auth = scoped_auth()
        .with_login_failures(1, 2)
        .with_password_cache(Duration::ZERO);
    let good = basic_headers("alice", "s3cret");
    let caller = Caller {
        headers: Some(&good),
        certificate: None,
        remote: Some("192.0.2.9".parse().unwrap()),
    };
    let all =
        futures_util::future::join_all((0..8).map(|_| auth.authenticate(&caller, None))).await;
    assert!(all.iter().all(Result::is_ok), "{all:?}");
}

#[tokio::test]
async fn unknown_users_pay_the_same_bcrypt_check() {
    let auth = scoped_auth();
    let checks = || {
        auth.passwords
            .checks
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let unknown = basic_headers("mallory", "s3cret");
    assert_eq!(
        auth.authenticate(&at(&unknown, None), None).await,
        Err(Failure::UnknownUser)
    );
    assert_eq!(checks(), 1);
    let wrong = basic_headers("alice", "nope");
    assert_eq!(
        auth.authenticate(&at(&wrong, None), None).await,
        Err(Failure::BadPassword)
    );
    assert_eq!(checks(), 2);
    // The same words for both.
    assert_eq!(
        Failure::UnknownUser.message(),
        Failure::BadPassword.message()
    );
}

#[tokio::test]
async fn a_verified_certificate_gets_a_token() {
    let ci = Principal::named("ci");
    let auth = scoped_auth().with_certificate("CN=ci-runner,O=Example", ci);
    let metrics = crate::metrics::Metrics::new();
    let headers = basic_headers("alice", "wrong");
    let cert = |s: &str| ClientCertificate {
        subject: s.to_owned(),
    };
    let mapped = cert("CN=ci-runner,O=Example");
    // The certificate wins over the (wrong) Basic credentials.
    let response = auth
        .issue(
            &at(&headers, Some(&mapped)),
            "scope=repository:team/app:pull&scope=repository:alpine:pull",
            metrics.http(),
        )
        .await;
    let (_, claims) = issued(&auth, response).await;
    assert_eq!(claims.sub, "ci");
    let names: Vec<&str> = claims.access.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["team/app"]);
    assert_eq!(
        auth.passwords
            .checks
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    let unknown = cert("CN=someone-else,O=Example");
    let response = auth
        .issue(&at(&headers, Some(&unknown)), "", metrics.http())
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The token a `200` from `/token` carries, and its verified claims.
async fn issued(auth: &Auth, response: Response<Body>) -> (String, Claims) {
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = json["token"].as_str().unwrap().to_owned();
    let claims = auth
        .key
        .as_ref()
        .unwrap()
        .verify(&token, SystemTime::now())
        .unwrap();
    (token, claims)
}
