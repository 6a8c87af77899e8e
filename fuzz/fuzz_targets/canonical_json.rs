//! Canonical JSON (what TUF signatures cover): never panics, is deterministic, and
//! re-encoding the canonical form of a document (parsed back) changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustgate::trust::notary::to_canonical;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(once) = to_canonical(&value) else {
        return;
    };
    assert_eq!(to_canonical(&value).expect("deterministic"), once);
    // Control characters are written raw, which is not JSON; everything else parses back.
    if let Ok(back) = serde_json::from_slice::<serde_json::Value>(&once) {
        assert_eq!(to_canonical(&back).expect("parsed back"), once);
    }
});
