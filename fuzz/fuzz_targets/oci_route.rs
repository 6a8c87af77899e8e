//! The request parser: any method, path and query. It must never panic, and whatever it
//! accepts must be exactly what it says it is: the route's own path parses back to the same
//! route, and holds nothing that could escape a directory or smuggle a separator.
//!
//! Found by this target (now in `tests/hostile.rs`, `fuzz::found_by_cargo_fuzz`): a tag such
//! as `66..b__6` is valid and holds `..`, so the check is on whole path segments.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let method = Method::from_bytes(METHODS[usize::from(selector) % METHODS.len()].as_bytes())
        .expect("a known method");
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    let Ok(route) = trustgate::oci::parse(&method, path, query) else {
        return;
    };
    let rebuilt = route.path();
    // `..` may sit inside a tag (`v1..2` is one), never as a path segment of its own.
    assert!(rebuilt
        .split('/')
        .all(|segment| segment != ".." && segment != "."));
    assert!(!rebuilt.contains('%') && !rebuilt.contains("//"));
    assert!(rebuilt.is_ascii() && !rebuilt.contains('\\'));
    let again = trustgate::oci::parse(&method, &rebuilt, query).expect("a route's path parses");
    assert_eq!(again, route);
});
