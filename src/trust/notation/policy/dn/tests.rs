//! DNs as notation-go reads them: go-ldap v3.4.11 parsing and the Notary Project rules
//! (`internal/pkix/pkix_test.go`), and certificate subjects written as Go writes them, each
//! rule shown on a certificate made for it.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::super::tests::{identity_statement, trusts};
use super::super::Dn;
use super::*;

/// notation-go `TestParseDistinguishedName` and go-ldap v3.4.11 behaviour.
#[test]
fn distinguished_names() {
    let ok = |s: &str| parse_distinguished_name(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    let map = |pairs: &[(&str, &str)]| -> Dn {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        ok("C=US,ST=California,O=Notary Project"),
        map(&[("C", "US"), ("ST", "California"), ("O", "Notary Project")])
    );
    assert_eq!(ok("C=US,S=California,O=Notary Project")["ST"], "California");
    // Spaces around types and values go; escaped ones stay; `;` separates too.
    assert_eq!(
        ok(" C = US ;ST=WA, O=\\ lead and trail\\ ,CN=\\2C\\41"),
        map(&[
            ("C", "US"),
            ("ST", "WA"),
            ("O", " lead and trail "),
            ("CN", ",A")
        ])
    );
    // An `=` in a value is part of it; an attribute first given empty may come again.
    assert_eq!(ok("C=US,ST=WA,O=a=b,CN=,CN=x")["O"], "a=b");
    assert_eq!(ok("C=US,ST=WA,O=a,CN=,CN=x")["CN"], "x");
    // Types are case-sensitive: `c` is not `C`.
    assert!(parse_distinguished_name("c=US,ST=WA,O=x")
        .unwrap_err()
        .contains("has no mandatory RDN attribute for \"C\""));
    for (bad, why) in [
        (
            "C=US,ST=California",
            "has no mandatory RDN attribute for \"O\"",
        ),
        (
            "C=US,O=Notary Project",
            "has no mandatory RDN attribute for \"ST\"",
        ),
        (
            "invalid",
            "failed with err: DN ended with incomplete type, value pair",
        ),
        (
            "C=US,ST=California,O=Notary Project,S=California",
            "has duplicate RDN attribute for \"ST\"",
        ),
        (
            "C=US,ST=California,O=Notary Project=#",
            "notation does not support x509.subject identities containing \"=#\"",
        ),
        (
            "OU=Sales+CN=J.  Smith,DC=example,DC=net",
            "has multi-valued RDN attributes",
        ),
        ("C=US,ST=WA,O=x\\", "got corrupted escaped character: 'x\\'"),
        (
            "C=US,ST=WA,O=\\4",
            "failed to decode escaped character: encoding/hex: invalid byte: 4",
        ),
        (
            "C=US,ST=WA,O=\\4g",
            "failed to decode escaped character: encoding/hex: invalid byte: U+0067 'g'",
        ),
        ("C=US,ST=WA,O=\\ff", "not UTF-8"),
        ("C=US,ST=WA,O=", "has no mandatory RDN attribute for \"O\""),
        ("   ", "has no mandatory RDN attribute for \"C\""),
        ("=x,C=US", "incomplete type, value pair"),
    ] {
        let e = parse_distinguished_name(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    assert!(is_subset(
        &map(&[("C", "US")]),
        &map(&[("C", "US"), ("O", "x")])
    ));
    assert!(!is_subset(
        &map(&[("C", "US"), ("CN", "n")]),
        &map(&[("C", "US")])
    ));
    // An empty value matches an absent attribute (Go's map lookup).
    assert!(is_subset(
        &map(&[("C", "US"), ("OU", "")]),
        &map(&[("C", "US")])
    ));
}

/// A self-signed certificate with the subject attributes `attrs`, in order.
fn leaf_with(attrs: Vec<(rcgen::DnType, rcgen::DnValue)>) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    let mut name = rcgen::DistinguishedName::new();
    for (t, v) in attrs {
        name.push(t, v);
    }
    params.distinguished_name = name;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn leaf_subjects_map_as_go_writes_them() {
    use rcgen::{DnType, DnValue};
    let utf8 = |s: &str| DnValue::Utf8String(s.to_owned());
    let oid = |o: &[u64]| DnType::CustomDnType(o.to_vec());
    let base = || {
        vec![
            (
                DnType::CountryName,
                DnValue::PrintableString("US".try_into().unwrap()),
            ),
            (DnType::StateOrProvinceName, utf8("WA")),
            (DnType::OrganizationName, utf8("Org")),
        ]
    };
    let subject = |attrs| {
        let der = leaf_with(attrs);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        (
            go_name_string(cert.subject()),
            subject_dn(cert.subject()),
            der,
        )
    };
    let org = identity_statement(&["x509.subject:C=US,ST=WA,O=Org"]);

    // Go's order, whatever the certificate's, and every named attribute.
    let mut attrs = base();
    attrs.insert(0, (DnType::CommonName, utf8("cn")));
    attrs.push((DnType::LocalityName, utf8("Seattle")));
    attrs.push((DnType::OrganizationalUnitName, utf8("ou")));
    attrs.push((oid(&[2, 5, 4, 5]), utf8("42")));
    attrs.push((oid(&[2, 5, 4, 9]), utf8("1 Main St")));
    attrs.push((oid(&[2, 5, 4, 17]), utf8("98101")));
    let (text, parsed, der) = subject(attrs);
    assert_eq!(
        text.unwrap(),
        "SERIALNUMBER=42,CN=cn,OU=ou,O=Org,POSTALCODE=98101,STREET=1 Main St,L=Seattle,ST=WA,C=US"
    );
    assert_eq!(parsed.unwrap()["STREET"], "1 Main St");
    assert!(trusts(&org, &der));
    assert!(trusts(
        &identity_statement(&["x509.subject:C=US,S=WA,O=Org,SERIALNUMBER=42,POSTALCODE=98101"]),
        &der
    ));
    assert!(
        !trusts(
            &identity_statement(&["x509.subject:C=US,ST=WA,O=org"]),
            &der
        ),
        "values are case-sensitive"
    );
    assert!(
        !trusts(
            &identity_statement(&["x509.subject:C=US,ST=WA,O=Org,cn=cn"]),
            &der
        ),
        "types too"
    );

    // Values with characters RFC 4514 escapes round-trip.
    let mut attrs = base();
    attrs.push((DnType::CommonName, utf8(" #lead, a+b;\"q\" <x> \\ trail ")));
    let (text, parsed, der) = subject(attrs);
    assert_eq!(
        text.unwrap(),
        "CN=\\ #lead\\, a\\+b\\;\\\"q\\\" \\<x\\> \\\\ trail\\ ,O=Org,ST=WA,C=US"
    );
    assert_eq!(parsed.unwrap()["CN"], " #lead, a+b;\"q\" <x> \\ trail ");
    assert!(trusts(
        &identity_statement(&[
            "x509.subject:C=US,ST=WA,O=Org,CN=\\ #lead\\, a\\+b\\;\"q\" <x> \\\\ trail\\ "
        ]),
        &der
    ));

    // Another attribute (emailAddress) is written as `OID=#hex`, which Go's rules refuse.
    let mut attrs = base();
    attrs.push((
        oid(&[1, 2, 840, 113549, 1, 9, 1]),
        DnValue::Ia5String("a@b.c".try_into().unwrap()),
    ));
    let (text, parsed, der) = subject(attrs);
    assert_eq!(
        text.unwrap(),
        "O=Org,ST=WA,C=US,1.2.840.113549.1.9.1=#0c056140622e63"
    );
    assert!(parsed.unwrap_err().contains("=#"));
    assert!(!trusts(&org, &der));
    assert!(trusts(&identity_statement(&["*"]), &der));

    // CN given twice: Go keeps the last. OU twice: one multi-valued RDN, refused.
    let mut attrs = base();
    attrs.push((DnType::CommonName, utf8("first")));
    attrs.push((oid(&[2, 5, 4, 3]), utf8("second")));
    let (text, _, der) = subject(attrs);
    assert_eq!(text.unwrap(), "CN=second,O=Org,ST=WA,C=US");
    assert!(trusts(
        &identity_statement(&["x509.subject:C=US,ST=WA,O=Org,CN=second"]),
        &der
    ));
    assert!(!trusts(
        &identity_statement(&["x509.subject:C=US,ST=WA,O=Org,CN=first"]),
        &der
    ));
    let mut attrs = base();
    attrs.push((DnType::OrganizationalUnitName, utf8("a")));
    attrs.push((oid(&[2, 5, 4, 11]), utf8("b")));
    let (text, parsed, der) = subject(attrs);
    assert_eq!(text.unwrap(), "OU=a+OU=b,O=Org,ST=WA,C=US");
    assert!(parsed.unwrap_err().contains("multi-valued"));
    assert!(!trusts(&org, &der));

    // A subject without ST parses to nothing notation accepts, whatever the identity.
    let (_, parsed, der) = subject(vec![
        (DnType::CountryName, utf8("US")),
        (DnType::OrganizationName, utf8("Org")),
    ]);
    assert!(parsed
        .unwrap_err()
        .contains("mandatory RDN attribute for \"ST\""));
    assert!(!trusts(&org, &der));

    // A value containing "=#" (bad-cert's way), and string types Go decodes.
    let mut attrs = base();
    attrs.push((DnType::CommonName, utf8("x=#y")));
    assert!(!trusts(&org, &subject(attrs).2));
    let mut attrs = base();
    attrs.push((
        DnType::LocalityName,
        DnValue::BmpString("Zürich".try_into().unwrap()),
    ));
    let (_, parsed, der) = subject(attrs);
    assert_eq!(parsed.unwrap()["L"], "Zürich");
    assert!(trusts(
        &identity_statement(&["x509.subject:C=US,ST=WA,O=Org,L=Zürich"]),
        &der
    ));
    // UniversalString: Go does not decode it (it refuses the certificate).
    let mut attrs = base();
    attrs.push((
        DnType::LocalityName,
        DnValue::UniversalString("x".try_into().unwrap()),
    ));
    let (text, _, der) = subject(attrs);
    assert!(text.unwrap_err().contains("unsupported string type"));
    assert!(!trusts(&org, &der));
}
