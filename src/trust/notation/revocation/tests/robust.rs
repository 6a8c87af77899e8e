//! Hostile bytes never panic the readers: CRLs, OCSP responses, distribution points, and
//! cache files, random or mutated from valid ones.

use proptest::prelude::*;

use super::support::*;
use crate::trust::notation::revocation::{
    chain::Cert,
    crl::{distribution_point_urls, file_crls, Crl},
    ocsp,
};

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for (at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] ^= value;
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut % 8));
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_refused_quietly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Crl::parse(bytes.clone());
        let _ = distribution_point_urls(&bytes);
        let _ = file_crls(&bytes);
        let _ = Cert::parse(&bytes, 1);
    }

    #[test]
    fn mutated_crls_and_ocsp_responses_do_not_panic(
        edits in proptest::collection::vec((any::<usize>(), 1u8..), 1..4),
        cut in any::<usize>(),
    ) {
        let root = Ca::root("root");
        let leaf = root.issue("leaf", &Spec { serial: Some(9), ..Spec::default() });
        let crl = make_crl(&root, &root, &CrlSpec {
            entries: vec![Revoked { reason: Some(6), ..Revoked::serial(9) }],
            extensions: vec![ext("2.5.29.46", false, dp_der(&["http://x/d.crl"]))],
            ..CrlSpec::default()
        });
        if let Ok(parsed) = Crl::parse(mutate(crl, &edits, cut)) {
            let issuer = Cert::parse(&root.der, 2).unwrap();
            let _ = parsed.validate(&issuer, time::OffsetDateTime::now_utc());
        }
        let response = make_ocsp(&root, &root, &[&root.der], &OcspSpec::good(9));
        let (cert, issuer) = (Cert::parse(&leaf.der, 1).unwrap(), Cert::parse(&root.der, 2).unwrap());
        let _ = ocsp::judge(
            &mutate(response, &edits, cut),
            &cert,
            &issuer,
            time::OffsetDateTime::now_utc(),
            None,
        );
    }
}
