//! Distinguished names as notation-go reads them for `x509.subject:` trusted identities
//! (`internal/pkix/pkix.go`), on both sides of the comparison:
//!
//! - the identity's value is parsed as go-ldap v3.4.11 `ParseDN` parses RFC 4514 text (the
//!   version notation-go pins), then held to the Notary Project rules
//!   (`specs/trust-store-trust-policy.md`, "Trusted Identities Constraints"): no `=#`
//!   (hex-encoded values), no multi-valued RDNs, no attribute twice, `C`, `ST` (or its alias
//!   `S`) and `O` present;
//! - the signing certificate's subject goes the same way after being written as Go's
//!   `pkix.Name.String()` writes it (`verifier/verifier.go` `verifyX509TrustedIdentities`).
//!   That decides which subject attributes can match and how: see [`go_name_string`].
//!
//! Attribute types are compared as written (case-sensitive): `CN`, not `cn`.

use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::Dn;

#[cfg(test)]
mod tests;

/// `ParseDistinguishedName`: the DN text of a trusted identity (or of a certificate subject
/// written by [`go_name_string`]) as attribute → value.
pub fn parse_distinguished_name(name: &str) -> Result<Dn, String> {
    if name.contains("=#") {
        return Err(format!(
            "unsupported distinguished name (DN) {}: notation does not support x509.subject identities containing \"=#\"",
            go_quote(name)
        ));
    }
    let rdns = parse_dn(name).map_err(|e| {
        format!(
            "parsing distinguished name (DN) {} failed with err: {e}. A valid DN must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum, and follow RFC 4514 standard",
            go_quote(name)
        )
    })?;
    let mut dn = Dn::new();
    for rdn in rdns {
        let [(kind, value)] = <[(String, String); 1]>::try_from(rdn).map_err(|_| {
            format!(
                "distinguished name (DN) {} has multi-valued RDN attributes, remove multi-valued RDN attributes as they are not supported",
                go_quote(name)
            )
        })?;
        let kind = if kind == "S" { "ST".to_owned() } else { kind };
        // notation-go tests the value already held, not the key: an attribute first given
        // empty may be given again.
        match dn.get(&kind) {
            Some(held) if !held.is_empty() => {
                return Err(format!(
                    "distinguished name (DN) {} has duplicate RDN attribute for {}, DN can only have unique RDN attributes",
                    go_quote(name),
                    go_quote(&kind)
                ));
            }
            _ => {
                dn.insert(kind, value);
            }
        }
    }
    for mandatory in ["C", "ST", "O"] {
        if dn.get(mandatory).is_none_or(String::is_empty) {
            return Err(format!(
                "distinguished name (DN) {} has no mandatory RDN attribute for {}, it must contain 'C', 'ST' or 'S', and 'O' RDN attributes at a minimum",
                go_quote(name),
                go_quote(mandatory)
            ));
        }
    }
    Ok(dn)
}

/// `IsSubsetDN`: every attribute of `a` has the same value in `b`, an absent attribute
/// counting as the empty value (so `OU=` in a policy matches a subject without `OU`).
pub fn is_subset(a: &Dn, b: &Dn) -> bool {
    a.iter()
        .all(|(k, v)| b.get(k).map_or("", String::as_str) == v.as_str())
}

/// go-ldap v3.4.11 `ParseDN`: the RDNs of a DN, each its (type, value) pairs, types and
/// values trimmed of spaces and unescaped. Like that version it is lenient: any text is a
/// type, `"`, `<`, `>` may stand unescaped in a value, `;` separates RDNs as `,` does.
fn parse_dn(s: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut rdns = Vec::new();
    if s.trim().is_empty() {
        return Ok(rdns);
    }
    let bytes = s.as_bytes();
    let mut rdn: Vec<(String, String)> = Vec::new();
    let mut kind = String::new();
    let mut escaping = false;
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if escaping {
            escaping = false;
        } else if c == b'\\' {
            escaping = true;
        } else if c == b'=' && kind.is_empty() {
            kind = decode(&s[start..i])?;
            start = i + 1;
        } else if matches!(c, b',' | b'+' | b';') {
            if kind.is_empty() {
                return Err("incomplete type, value pair".to_owned());
            }
            let value = value(&s[start..i])?;
            rdn.push((std::mem::take(&mut kind), value));
            start = i + 1;
            if c != b'+' {
                rdns.push(std::mem::take(&mut rdn));
            }
        }
    }
    if kind.is_empty() {
        return Err("DN ended with incomplete type, value pair".to_owned());
    }
    let value = value(&s[start..])?;
    rdn.push((kind, value));
    rdns.push(rdn);
    Ok(rdns)
}

/// `setValue`: a `#`-prefixed value is hex-encoded BER, which notation refuses before it
/// gets here (`=#`); any other is [`decode`]d.
fn value(s: &str) -> Result<String, String> {
    if s.starts_with('#') {
        return Err("failed to decode BER encoding: hex-encoded values are not supported".into());
    }
    decode(s)
}

/// `decodeString`: leading and trailing spaces removed (a trailing space kept when the text
/// before it ends in `\`), then `\` escapes undone: `\` before one of ` "#+,;<=>\` stands for
/// that character, before two hex digits for that byte.
fn decode(s: &str) -> Result<String, String> {
    let trimmed = s.trim_matches(' ');
    let keep_space = trimmed.ends_with('\\') && s.ends_with(' ');
    let chars: Vec<char> = trimmed.chars().chain(keep_space.then_some(' ')).collect();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            i += 1;
            continue;
        }
        let Some(&next) = chars.get(i + 1) else {
            let text: String = chars.iter().collect();
            return Err(format!("got corrupted escaped character: '{text}'"));
        };
        if matches!(
            next,
            ' ' | '"' | '#' | '+' | ',' | ';' | '<' | '=' | '>' | '\\'
        ) {
            out.push(next as u8);
            i += 2;
            continue;
        }
        let Some(&low) = chars.get(i + 2) else {
            return Err(format!(
                "failed to decode escaped character: encoding/hex: invalid byte: {next}"
            ));
        };
        if !next.is_ascii() || !low.is_ascii() {
            return Err(format!(
                "failed to decode escaped character: invalid byte: {next}{low}"
            ));
        }
        let byte = hex_digit(next)
            .and_then(|h| hex_digit(low).map(|l| h << 4 | l))
            .ok_or_else(|| {
                let bad = if hex_digit(next).is_none() { next } else { low };
                format!(
                    "failed to decode escaped character: encoding/hex: invalid byte: U+{:04X} {bad:?}",
                    u32::from(bad)
                )
            })?;
        out.push(byte);
        i += 3;
    }
    // Go keeps the bytes as they are; a Rust string must be UTF-8, and a value that is not
    // can equal no certificate attribute as Go decodes those.
    String::from_utf8(out).map_err(|_| "the unescaped value is not UTF-8".to_owned())
}

fn hex_digit(c: char) -> Option<u8> {
    c.to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A certificate name (subject or issuer) written as Go's `pkix.Name.String()` writes a
/// name parsed from a certificate, which is what notation-go parses a signing certificate's
/// subject from:
///
/// - the nine attributes Go names (`2.5.4.x`) are written `SERIALNUMBER`, `CN`, `OU`, `O`,
///   `POSTALCODE`, `STREET`, `L`, `ST`, `C`, in that order; the values of one attribute given
///   several times make one multi-valued RDN (which the DN rules then refuse), except
///   `CN` and `SERIALNUMBER`, of which only the last value is kept (an empty one is left
///   out);
/// - any other attribute (emailAddress, title, DC, UID, ...) is written after them as
///   `<dotted OID>=#<hex DER>`, which the `=#` rule refuses: a certificate whose subject has
///   one matches no `x509.subject:` identity, as in notation;
/// - values are escaped with `\` before `,+"\<>;`, a leading `#` or space and a trailing
///   space.
///
/// `Err` when an attribute's value is not a string type Go decodes (Go refuses to parse such
/// a certificate at all).
pub fn go_name_string(name: &X509Name<'_>) -> Result<String, String> {
    const NAMED: [(&str, &str); 9] = [
        ("2.5.4.6", "C"),
        ("2.5.4.8", "ST"),
        ("2.5.4.7", "L"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.17", "POSTALCODE"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.3", "CN"),
        ("2.5.4.5", "SERIALNUMBER"),
    ];
    let mut named: Vec<Vec<String>> = vec![Vec::new(); NAMED.len()];
    let mut others: Vec<String> = Vec::new();
    for atv in name.iter_attributes() {
        let oid = atv.attr_type().to_id_string();
        let value = go_string_value(atv)?;
        match NAMED.iter().position(|(o, _)| *o == oid) {
            Some(i) => {
                if let Some(values) = named.get_mut(i) {
                    values.push(value);
                }
            }
            None => others.push(format!("{oid}=#{}", hex::encode(go_marshal_string(&value)))),
        }
    }
    // Go's order of RDNs, the last written first.
    let mut rdns: Vec<String> = others;
    for ((_, label), values) in NAMED.iter().zip(named) {
        let values = match *label {
            "CN" | "SERIALNUMBER" => match values.into_iter().last() {
                Some(v) if !v.is_empty() => vec![v],
                _ => continue,
            },
            _ if values.is_empty() => continue,
            _ => values,
        };
        let rdn: Vec<String> = values
            .iter()
            .map(|v| format!("{label}={}", go_escape(v)))
            .collect();
        rdns.push(rdn.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// The attribute → value form of a certificate subject that notation-go matches trusted
/// identities against: [`go_name_string`] then [`parse_distinguished_name`].
pub fn subject_dn(name: &X509Name<'_>) -> Result<Dn, String> {
    parse_distinguished_name(&go_name_string(name)?)
}

/// An attribute value as Go's `parseASN1String` decodes it.
fn go_string_value(atv: &AttributeTypeAndValue<'_>) -> Result<String, String> {
    use x509_parser::asn1_rs::{Class, Tag};
    let any = atv.attr_value();
    let data = any.data;
    let invalid = |kind: &str| format!("x509: invalid RDN value: invalid {kind}");
    if any.class() != Class::Universal {
        return Err("x509: invalid RDN value: unsupported string type".to_owned());
    }
    match any.tag() {
        // Latin-1, byte for code point, as Go (and BoringSSL) read T.61.
        Tag::T61String => Ok(data.iter().map(|&b| char::from(b)).collect()),
        Tag::PrintableString => {
            if data.iter().all(|&b| go_printable(b, true)) {
                String::from_utf8(data.to_vec()).map_err(|_| invalid("PrintableString"))
            } else {
                Err(invalid("PrintableString"))
            }
        }
        Tag::Utf8String => String::from_utf8(data.to_vec()).map_err(|_| invalid("UTF-8 string")),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return Err(invalid("BMPString"));
            }
            let data = match data {
                [rest @ .., 0, 0] => rest,
                _ => data,
            };
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            if units.iter().any(|&u| {
                u == 0xfffe
                    || u == 0xffff
                    || (0xfdd0..=0xfdef).contains(&u)
                    || (0xd800..=0xdfff).contains(&u)
            }) {
                return Err(invalid("BMPString"));
            }
            String::from_utf16(&units).map_err(|_| invalid("BMPString"))
        }
        Tag::Ia5String => {
            if data.is_ascii() {
                String::from_utf8(data.to_vec()).map_err(|_| invalid("IA5String"))
            } else {
                Err(invalid("IA5String"))
            }
        }
        Tag::NumericString => {
            if data.iter().all(|&b| b.is_ascii_digit() || b == b' ') {
                String::from_utf8(data.to_vec()).map_err(|_| invalid("NumericString"))
            } else {
                Err(invalid("NumericString"))
            }
        }
        tag => Err(format!(
            "x509: invalid RDN value: unsupported string type: {tag}"
        )),
    }
}

/// Go's PrintableString alphabet; x509 parsing also lets `*` and `&` in.
fn go_printable(b: u8, lax: bool) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'\'' | b'(' | b')' | b'+' | b',' | b'-' | b'.' | b'/' | b' ' | b':' | b'=' | b'?'
        )
        || (lax && matches!(b, b'*' | b'&'))
}

/// `asn1.Marshal` of a Go string: a PrintableString when every byte is in its alphabet,
/// else a UTF8String.
fn go_marshal_string(s: &str) -> Vec<u8> {
    let tag = if s.bytes().all(|b| go_printable(b, false)) {
        0x13
    } else {
        0x0c
    };
    let mut out = vec![tag];
    let len = s.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(s.as_bytes());
    out
}

/// The escaping of `RDNSequence.String()`.
fn go_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (k, c) in v.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k + 1 == v.len(),
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `%q` of a string (`strconv.Quote`), for messages that quote as notation-go does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]map[string]string`, as notation-go prints the trusted identities a
/// signing certificate did not match: `[map["C":"US" "O":"Notary"] map[...]]`.
pub fn go_quote_dns(dns: &[Dn]) -> String {
    let maps: Vec<String> = dns
        .iter()
        .map(|dn| {
            let pairs: Vec<String> = dn
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[{}]", pairs.join(" "))
        })
        .collect();
    format!("[{}]", maps.join(" "))
}
