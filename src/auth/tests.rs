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
        auth.authenticate(&req(basic("alice", "s3cret")), None, repo)
            .await
            .unwrap()
            .name,
        "alice"
    );
    assert_eq!(
        auth.authenticate(&req(basic("alice", "nope")), None, repo)
            .await,
        Err(Failure::BadPassword)
    );
    assert_eq!(
        auth.authenticate(&req(basic("mallory", "s3cret")), None, repo)
            .await,
        Err(Failure::UnknownUser)
    );
    assert_eq!(
        auth.authenticate(&req(None), None, repo).await,
        Err(Failure::MissingCredentials)
    );
    assert_eq!(
        auth.authenticate(&req(Some("Bearer ci-token-value".into())), None, repo)
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
        .authenticate(&req(bearer.clone()), None, repo)
        .await
        .is_ok());
    assert_eq!(
        auth.authenticate(&req(bearer), None, Some("library/nginx"))
            .await,
        Err(Failure::InsufficientScope)
    );
    let open = Arc::new(Auth::new(true, false));
    assert_eq!(
        open.authenticate(&req(None), None, repo).await.unwrap(),
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
        auth.authenticate(&headers, Some(&mapped), None).await,
        Ok(ci)
    );
    // Unmapped (and undecodable) subjects are refused, not served as anonymous or by the
    // bearer token.
    for subject in ["CN=someone-else,O=Example", ""] {
        assert_eq!(
            auth.authenticate(&headers, Some(&cert(subject)), None)
                .await,
            Err(Failure::UnknownCertificate)
        );
    }
    // Without a certificate, the header decides.
    assert_eq!(
        auth.authenticate(&headers, None, None).await.unwrap().name,
        "bot"
    );
    assert_eq!(Failure::UnknownCertificate.as_str(), "unknown_certificate");
    assert!(!format!("{auth:?}").contains("bot-token"));
}
