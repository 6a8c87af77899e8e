//! The parts of `notation verify` that are not the verifier's: references and arguments.

use super::{envelope_type, layout::parse_reference, layout::Target, user_metadata};
use crate::trust::notation::envelope;

#[test]
fn layout_references_split_as_notation_splits_them() {
    let digest = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
    let (dir, target) = parse_reference(&format!("./a:b/layout@{digest}")).unwrap();
    assert_eq!(dir.to_str(), Some("./a:b/layout"));
    assert!(matches!(target, Target::Digest(d) if d.as_str() == digest));
    let (dir, target) = parse_reference("/tmp/layout:v1").unwrap();
    assert_eq!(dir.to_str(), Some("/tmp/layout"));
    assert_eq!(target, Target::Tag("v1".into()));
    for bad in ["/tmp/layout", "host:5000/dir", "dir@sha256:00", ":v1"] {
        assert!(parse_reference(bad).is_err(), "{bad}");
    }
}

#[test]
fn user_metadata_is_key_equals_value() {
    let pairs = user_metadata(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap();
    assert_eq!(pairs["a"], "1");
    assert_eq!(pairs["b"], "x=y");
    assert_eq!(pairs["c"], "");
    assert!(user_metadata(&["novalue".into()]).is_err());
    assert!(user_metadata(&["=v".into()]).is_err());
}

#[test]
fn detached_envelope_types_are_told_by_their_first_byte() {
    assert_eq!(envelope_type(b"  {\"payload\":1}"), envelope::JWS);
    assert_eq!(envelope_type(&[0xd2, 0x84]), envelope::COSE);
    assert_eq!(envelope_type(b""), envelope::COSE);
}
