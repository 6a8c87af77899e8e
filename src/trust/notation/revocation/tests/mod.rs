//! Revocation tests: the notation e2e CRL scenario (R01–R05) and notation-core-go's
//! delta-CRL vectors (C07–C10) from the conformance folder, CRL and OCSP semantics on a
//! PKI made in the test, and hostile peers on loopback.

mod crls;
mod fixtures;
mod hostile;
mod ocsp;
mod robust;
mod support;
