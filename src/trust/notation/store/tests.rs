//! The trust store against notation-go's test stores (`verifier/truststore/truststore_test.go`;
//! the conformance corpus README §3.2 rows S01–S09), notation-core-go's certificate file
//! vectors (C03, C04), the e2e configurations, and stores built here for the cases the corpus
//! cannot hold (real symlinks, sub-directories, bounds).

use std::path::{Path, PathBuf};

use super::*;

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/notation");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no conformance data at {}", dir.display());
        None
    }
}

/// notation-go's `verifier/testdata`, a notation configuration directory.
fn ngo(dir: &Path) -> TrustStore {
    TrustStore::new(&dir.join("notation-go/verifier/testdata"))
}

fn message(r: Result<Vec<Vec<u8>>, StoreError>) -> String {
    match r {
        Ok(certs) => panic!("loaded {} certificates", certs.len()),
        Err(e) => e.0,
    }
}

/// A trust store directory (holding `x509/`) in a temporary directory.
fn temp_store() -> (tempfile::TempDir, TrustStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    (tmp, store)
}

fn store_dir(tmp: &tempfile::TempDir, kind: StoreKind, name: &str) -> PathBuf {
    let dir = tmp.path().join("x509").join(kind.as_str()).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn s01_s02_s06_s09_valid_stores() {
    let Some(dir) = corpus() else { return };
    let store = ngo(&dir);
    // S01: GlobalSign (DER and PEM), NotationTestRoot, and three self-signed leaves.
    assert_eq!(
        store
            .certificates(StoreKind::Ca, "valid-trust-store")
            .unwrap()
            .len(),
        6
    );
    // S02
    assert_eq!(
        store
            .certificates(StoreKind::Ca, "valid-trust-store-self-signed")
            .unwrap()
            .len(),
        1
    );
    // S06
    assert_eq!(
        store
            .certificates(StoreKind::Tsa, "test-timestamp")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .certificates(StoreKind::Tsa, "test-mismatch")
            .unwrap()
            .len(),
        1
    );
    // S09: signingAuthority stores are their own directories.
    let sa = store
        .certificates(StoreKind::SigningAuthority, "valid-trust-store")
        .unwrap();
    assert_eq!(sa.len(), 3);
    assert_eq!(
        store
            .certificates(StoreKind::Ca, "valid-trust-store-2")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .certificates(StoreKind::SigningAuthority, "valid-trust-store-2")
            .unwrap()
            .len(),
        2
    );
    // The same store read through the directory that holds `x509/`.
    let direct = TrustStore::new(&dir.join("notation-go/verifier/testdata/truststore"));
    assert_eq!(
        direct
            .certificates(StoreKind::Ca, "valid-trust-store")
            .unwrap(),
        store
            .certificates(StoreKind::Ca, "valid-trust-store")
            .unwrap()
    );
    // Certificates come in file-name order, each file's in its order: GlobalSign.der,
    // GlobalSignRootCA.crt (the same certificate), NotationTestRoot.pem, ...
    let certs = store
        .certificates(StoreKind::Ca, "valid-trust-store")
        .unwrap();
    assert_eq!(certs[0], certs[1]);
}

#[test]
fn s03_s04_s05_invalid_ca_stores() {
    let Some(dir) = corpus() else { return };
    let store = ngo(&dir);
    let e = message(store.certificates(StoreKind::Ca, "trust-store-with-invalid-certs"));
    assert!(
        e.starts_with("failed to read the trusted certificate invalid in trust store trust-store-with-invalid-certs of type ca: "),
        "{e}"
    );
    let e = message(store.certificates(StoreKind::Ca, "trust-store-with-leaf-certs"));
    assert_eq!(
        e,
        "failed to validate the trusted certificate non-ca.crt in trust store trust-store-with-leaf-certs of type ca: certificate with subject \"CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US\" is not a CA certificate or self-signed signing certificate"
    );
    let e =
        message(store.certificates(StoreKind::Ca, "trust-store-with-leaf-certs-in-single-file"));
    assert!(
        e.starts_with("failed to validate the trusted certificate RootAndLeafCerts.crt in trust store trust-store-with-leaf-certs-in-single-file of type ca: ")
            && e.ends_with("is not a CA certificate or self-signed signing certificate"),
        "{e}"
    );
    // The corpus keeps upstream's symlink as a regular file holding the link text.
    let e = message(store.certificates(StoreKind::Ca, "valid-trust-store_SYMLINK"));
    assert!(
        e.starts_with("failed to read the trusted certificate valid-trust-store_SYMLINK"),
        "{e}"
    );
}

#[test]
fn s07_s08_tsa_stores_hold_root_cas_only() {
    let Some(dir) = corpus() else { return };
    let store = ngo(&dir);
    let e = message(store.certificates(StoreKind::Tsa, "test-nonCA"));
    assert_eq!(
        e,
        "trusted certificate wabbit-networks.io.crt in trust store test-nonCA of type tsa is invalid: certificate with subject \"CN=wabbit-networks.io,O=Notary,L=Seattle,ST=WA,C=US\" is not a root CA certificate: x509: invalid signature: parent certificate cannot sign this kind of certificate"
    );
    let e = message(store.certificates(StoreKind::Tsa, "test-nonSelfIssued"));
    assert_eq!(
        e,
        "trusted certificate nonSelfIssued.crt in trust store test-nonSelfIssued of type tsa is invalid: certificate with subject \"CN=Notation Test Revokable RSA Chain Cert 2,O=Notary,L=Seattle,ST=WA,C=US\" is not a root CA certificate: issuer (CN=Notation Test Revokable RSA Chain Cert Root,O=Notary,L=Seattle,ST=WA,C=US) and subject (CN=Notation Test Revokable RSA Chain Cert 2,O=Notary,L=Seattle,ST=WA,C=US) are not the same"
    );
    // The same certificates are fine in a ca store.
    let (tmp, temp) = temp_store();
    let ca = store_dir(&tmp, StoreKind::Ca, "s");
    let tsa = dir.join("notation-go/verifier/testdata/truststore/x509/tsa");
    std::fs::copy(
        tsa.join("test-nonSelfIssued/nonSelfIssued.crt"),
        ca.join("a.crt"),
    )
    .unwrap();
    std::fs::copy(
        tsa.join("test-nonCA/wabbit-networks.io.crt"),
        ca.join("b.crt"),
    )
    .unwrap();
    assert_eq!(temp.certificates(StoreKind::Ca, "s").unwrap().len(), 2);
}

/// notation's `cert add --type tsa` negatives (`config/timestamp/`), put in a tsa store.
#[test]
fn e2e_tsa_negatives_are_refused() {
    let Some(dir) = corpus() else { return };
    let timestamp = dir.join("notation/test/e2e/testdata/config/timestamp");
    let cases = [
        (
            "CertChain.pem",
            "is not a CA certificate or self-signed signing certificate",
        ),
        ("intermediate.pem", "is not a root CA certificate"),
        ("notSelfIssued.crt", "are not the same"),
        (
            "invalid.crt",
            "failed to read the trusted certificate invalid.crt",
        ),
        ("Empty.txt", "input certs cannot be empty"),
    ];
    for (file, expected) in cases {
        let (tmp, store) = temp_store();
        let tsa = store_dir(&tmp, StoreKind::Tsa, "t");
        std::fs::copy(timestamp.join(file), tsa.join(file)).unwrap();
        let e = message(store.certificates(StoreKind::Tsa, "t"));
        assert!(e.contains(expected), "{file}: {e}");
    }
    for file in ["globalsignTSARoot.cer", "DigiCertTSARootSHA384.cer"] {
        let (tmp, store) = temp_store();
        let tsa = store_dir(&tmp, StoreKind::Tsa, "t");
        std::fs::copy(timestamp.join(file), tsa.join(file)).unwrap();
        assert_eq!(
            store.certificates(StoreKind::Tsa, "t").unwrap().len(),
            1,
            "{file}"
        );
    }
}

#[test]
fn e2e_configurations_and_missing_stores() {
    let Some(dir) = corpus() else { return };
    let config = |name: &str| TrustStore::new(&dir.join("assembled/configs").join(name));
    assert_eq!(
        config("e2e")
            .certificates(StoreKind::Ca, "e2e")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        config("e2e-multi")
            .certificates(StoreKind::Ca, "e2e")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        config("e2e-multi")
            .certificates(StoreKind::Ca, "e2e-new")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        config("e2e-tsa")
            .certificates(StoreKind::Tsa, "e2e")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        config("crl")
            .certificates(StoreKind::Ca, "e2e")
            .unwrap()
            .len(),
        1
    );
    // P10, T08.
    assert_eq!(
        message(config("e2e").certificates(StoreKind::Ca, "invalid_store")),
        "the trust store \"invalid_store\" of type \"ca\" does not exist"
    );
    assert_eq!(
        message(ngo(&dir).certificates(StoreKind::Tsa, "does-not-exist")),
        "the trust store \"does-not-exist\" of type \"tsa\" does not exist"
    );
    assert_eq!(
        message(config("e2e").certificates(StoreKind::SigningAuthority, "e2e")),
        "the trust store \"e2e\" of type \"signingAuthority\" does not exist"
    );
}

/// notation-core-go `x509/cert_test.go`: one or more certificates, PEM or DER.
#[test]
fn c03_c04_certificate_files() {
    let Some(dir) = corpus() else { return };
    let testdata = dir.join("notation-core-go/x509/testdata");
    let read = |f: &str| parse_certificates(&std::fs::read(testdata.join(f)).unwrap());
    assert_eq!(read("pem.crt").unwrap().len(), 1);
    assert_eq!(read("multi-pem.crt").unwrap().len(), 2);
    assert_eq!(read("der.der").unwrap().len(), 1);
    assert_eq!(read("multi-der.der").unwrap().len(), 2);
    assert!(read("invalid").is_err());
    assert_eq!(read("pem.crt").unwrap(), read("der.der").unwrap());
    // GlobalSign.der and GlobalSignRootCA.crt are one certificate in two encodings.
    let store = dir.join("notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store");
    let der = parse_certificates(&std::fs::read(store.join("GlobalSign.der")).unwrap()).unwrap();
    let pem =
        parse_certificates(&std::fs::read(store.join("GlobalSignRootCA.crt")).unwrap()).unwrap();
    assert_eq!(der, pem);
}

#[test]
fn pem_reading_follows_go() {
    let Some(dir) = corpus() else { return };
    let pem = std::fs::read_to_string(dir.join("notation-core-go/x509/testdata/pem.crt")).unwrap();
    let one = parse_certificates(pem.as_bytes()).unwrap();
    // Text around and between blocks, CRLF line ends, trailing spaces on the lines.
    let crlf = pem.replace('\n', " \r\n");
    let text = format!("a comment\n{crlf}\nmore text\n{pem}trailer");
    assert_eq!(
        parse_certificates(text.as_bytes()).unwrap(),
        [one.clone(), one.clone()].concat()
    );
    // Every PEM block is a certificate, whatever its label.
    let key = "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
    assert!(parse_certificates(format!("{pem}{key}").as_bytes()).is_err());
    let relabelled = pem.replace("CERTIFICATE", "TRUSTED CERTIFICATE");
    assert_eq!(parse_certificates(relabelled.as_bytes()).unwrap(), one);
    // A block whose base64 or end line is wrong is passed over; with no good block at all
    // the data is read as DER, and fails.
    let broken = pem.replacen("MII", "M!I", 1);
    assert!(parse_certificates(broken.as_bytes()).is_err());
    assert_eq!(
        parse_certificates(format!("{broken}{pem}").as_bytes()).unwrap(),
        one
    );
    let mismatched = pem.replace("-----END CERTIFICATE-----", "-----END CERT-----");
    assert!(parse_certificates(mismatched.as_bytes()).is_err());
    // DER certificates one after another: a byte after the last is not a certificate.
    let mut der = one[0].clone();
    der.push(0);
    assert!(parse_certificates(&der).is_err());
    assert_eq!(parse_certificates(b"").unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn symlinks_directories_and_empty_stores_are_refused() {
    let Some(dir) = corpus() else { return };
    let root = dir.join(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/GlobalSignRootCA.crt",
    );
    let (tmp, store) = temp_store();

    // A store that is a symlink to a good store.
    let good = store_dir(&tmp, StoreKind::Ca, "good");
    std::fs::copy(&root, good.join("root.crt")).unwrap();
    assert_eq!(store.certificates(StoreKind::Ca, "good").unwrap().len(), 1);
    std::os::unix::fs::symlink(&good, tmp.path().join("x509/ca/linked")).unwrap();
    let e = message(store.certificates(StoreKind::Ca, "linked"));
    assert!(
        e.starts_with("the trust store linked of type ca with path ")
            && e.ends_with(" is not a regular directory (symlinks are not supported)"),
        "{e}"
    );
    // A store that is a file.
    std::fs::write(tmp.path().join("x509/ca/file"), b"x").unwrap();
    assert!(message(store.certificates(StoreKind::Ca, "file"))
        .ends_with("is not a regular directory (symlinks are not supported)"));

    // A symlinked certificate file.
    let with_link = store_dir(&tmp, StoreKind::Ca, "with-link");
    std::fs::copy(&root, with_link.join("a.crt")).unwrap();
    std::os::unix::fs::symlink(with_link.join("a.crt"), with_link.join("b.crt")).unwrap();
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "with-link")),
        "trusted certificate b.crt in trust store with-link of type ca is not a regular file (directories or symlinks are not supported)"
    );
    // A sub-directory, even an empty one.
    let with_dir = store_dir(&tmp, StoreKind::Ca, "with-dir");
    std::fs::copy(&root, with_dir.join("GlobalSignRootCA.crt")).unwrap();
    std::fs::create_dir(with_dir.join("sub-dir")).unwrap();
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "with-dir")),
        "trusted certificate sub-dir in trust store with-dir of type ca is not a regular file (directories or symlinks are not supported)"
    );
    // An empty store; a store with an empty file.
    store_dir(&tmp, StoreKind::Ca, "empty");
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "empty")),
        "no x509 certificates were found in trust store \"empty\" of type \"ca\""
    );
    let empty_file = store_dir(&tmp, StoreKind::Ca, "empty-file");
    std::fs::write(empty_file.join("empty.pem"), b"").unwrap();
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "empty-file")),
        "failed to validate the trusted certificate empty.pem in trust store empty-file of type ca: input certs cannot be empty"
    );
    // A FIFO is not read (it would block).
    let with_fifo = store_dir(&tmp, StoreKind::Ca, "with-fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(with_fifo.join("pipe"))
        .status();
    if matches!(status, Ok(s) if s.success()) {
        assert!(message(store.certificates(StoreKind::Ca, "with-fifo"))
            .contains("is not a regular file"));
    }
    // Names are checked before any path is made of them.
    for bad in ["", ".", "..", "a/b", "../good", "a b"] {
        let e = message(store.certificates(StoreKind::Ca, bad));
        assert!(
            e.starts_with("trust store name needs to follow [a-zA-Z0-9_.-]+ format"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn bounds_on_files_and_sizes() {
    let Some(dir) = corpus() else { return };
    let root = dir.join(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/GlobalSignRootCA.crt",
    );
    let (tmp, store) = temp_store();
    let many = store_dir(&tmp, StoreKind::Ca, "many");
    for i in 0..MAX_STORE_FILES {
        std::fs::copy(&root, many.join(format!("{i:03}.crt"))).unwrap();
    }
    assert_eq!(
        store.certificates(StoreKind::Ca, "many").unwrap().len(),
        MAX_STORE_FILES
    );
    std::fs::copy(&root, many.join("one-more.crt")).unwrap();
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "many")),
        format!("the trust store \"many\" of type \"ca\" has more than {MAX_STORE_FILES} files")
    );
    let big = store_dir(&tmp, StoreKind::Ca, "big");
    let mut bytes = std::fs::read(&root).unwrap();
    bytes.resize(usize::try_from(MAX_CERT_FILE).unwrap() + 1, b'\n');
    std::fs::write(big.join("big.crt"), bytes).unwrap();
    assert_eq!(
        message(store.certificates(StoreKind::Ca, "big")),
        format!("failed to read the trusted certificate big.crt in trust store big of type ca: the file is larger than {MAX_CERT_FILE} bytes")
    );
}

#[test]
fn the_store_root_is_found_in_either_layout() {
    let Some(dir) = corpus() else { return };
    let root = dir.join(
        "notation-go/verifier/testdata/truststore/x509/ca/valid-trust-store/GlobalSignRootCA.crt",
    );
    let tmp = tempfile::tempdir().unwrap();
    let nested = tmp.path().join("truststore/x509/ca/s");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(&root, nested.join("r.crt")).unwrap();
    assert_eq!(
        TrustStore::new(tmp.path())
            .certificates(StoreKind::Ca, "s")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        TrustStore::new(&tmp.path().join("truststore"))
            .certificates(StoreKind::Ca, "s")
            .unwrap()
            .len(),
        1
    );
    // Neither layout: the store does not exist.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        message(TrustStore::new(empty.path()).certificates(StoreKind::Ca, "s")),
        "the trust store \"s\" of type \"ca\" does not exist"
    );
}

#[test]
fn store_kinds_and_names() {
    for kind in [StoreKind::Ca, StoreKind::SigningAuthority, StoreKind::Tsa] {
        assert_eq!(StoreKind::from_name(kind.as_str()), Some(kind));
    }
    assert_eq!(StoreKind::from_name("CA"), None);
    assert_eq!(StoreKind::from_name("signingauthority"), None);
    assert!(is_valid_store_name("a-Z_0.9"));
    assert!(!is_valid_store_name(""));
    assert!(!is_valid_store_name("a:b"));
    assert!(!is_valid_store_name(".") && !is_valid_store_name(".."));
    assert!(is_valid_store_name("...") && is_valid_store_name(".a"));
    assert!(!is_valid_store_name("é"));
}
