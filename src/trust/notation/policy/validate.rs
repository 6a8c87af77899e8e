//! The rules of notation-go `OCIDocument.Validate` (`verifier/trustpolicy/oci.go`,
//! `trustpolicy.go`), each with notation-go's message, turning a decoded document into a
//! [`TrustPolicy`].

use super::dn::{self, go_quote as q};
use super::json;
use super::{
    Action, Actions, Dn, Identities, Level, Scopes, Statement, StoreRef, TrustPolicy,
    VerifyTimestamp, MAX_IDENTITIES, MAX_STATEMENTS,
};
use crate::trust::notation::store::{is_valid_store_name, StoreKind};

/// `OCIDocument.Validate`, in its order: version, statements (unique names, then each
/// statement's own rules), then registry scopes across statements.
pub(super) fn validate(raw: json::RawDocument) -> Result<TrustPolicy, String> {
    if raw.version.is_empty() {
        return Err(
            "oci trust policy document has empty version, version must be specified".to_owned(),
        );
    }
    if raw.version != "1.0" {
        return Err(format!(
            "oci trust policy document uses unsupported version {}",
            q(&raw.version)
        ));
    }
    if raw.trust_policies.is_empty() {
        return Err("oci trust policy document can not have zero trust policy statements".into());
    }
    if raw.trust_policies.len() > MAX_STATEMENTS {
        return Err(format!(
            "oci trust policy document has {} statements, more than the {MAX_STATEMENTS} read",
            raw.trust_policies.len()
        ));
    }
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut cores = Vec::with_capacity(raw.trust_policies.len());
    for statement in &raw.trust_policies {
        if names.contains(statement.name.as_str()) {
            return Err(format!(
                "multiple oci trust policy statements use the same name {}, statement names must be unique",
                q(&statement.name)
            ));
        }
        cores.push(core(statement).map_err(|e| format!("oci trust policy: {e}"))?);
        names.insert(statement.name.as_str());
    }
    check_scopes(&raw.trust_policies)?;
    let statements = raw
        .trust_policies
        .into_iter()
        .zip(cores)
        .map(|(raw, core)| Statement {
            scopes: if raw.registry_scopes.iter().any(|s| s == "*") {
                Scopes::Any
            } else {
                Scopes::Repositories(raw.registry_scopes)
            },
            name: raw.name,
            level: core.level,
            actions: core.actions,
            verify_timestamp: core.verify_timestamp,
            trust_stores: core.trust_stores,
            identities: core.identities,
        })
        .collect();
    Ok(TrustPolicy { statements })
}

/// What a statement says besides its name and scopes.
struct Core {
    level: Level,
    actions: Actions,
    verify_timestamp: VerifyTimestamp,
    trust_stores: Vec<StoreRef>,
    identities: Identities,
}

/// notation-go `validatePolicyCore`: a name, a valid `signatureVerification`, and for any
/// level but `skip` both trust stores and trusted identities (`skip`: neither).
fn core(raw: &json::RawStatement) -> Result<Core, String> {
    let name = &raw.name;
    if name.is_empty() {
        return Err(
            "a trust policy statement is missing a name, every statement requires a name"
                .to_owned(),
        );
    }
    let (level, actions) = verification(&raw.signature_verification).map_err(|e| {
        format!(
            "trust policy statement {} has invalid signatureVerification: {e}",
            q(name)
        )
    })?;
    let verify_timestamp = match raw.signature_verification.verify_timestamp.as_str() {
        "" | "always" => VerifyTimestamp::Always,
        "afterCertExpiry" => VerifyTimestamp::AfterCertExpiry,
        other => {
            return Err(format!(
                "trust policy statement {} has invalid signatureVerification: verifyTimestamp must be \"always\" or \"afterCertExpiry\", but got {}",
                q(name),
                q(other)
            ))
        }
    };
    let (trust_stores, identities) = if level == Level::Skip {
        if !raw.trust_stores.is_empty() || !raw.trusted_identities.is_empty() {
            return Err(format!(
                "trust policy statement {} is set to skip signature verification but configured with trust stores and/or trusted identities, remove them if signature verification needs to be skipped",
                q(name)
            ));
        }
        (Vec::new(), Identities::Subjects(Vec::new()))
    } else {
        if raw.trust_stores.is_empty() || raw.trusted_identities.is_empty() {
            return Err(format!(
                "trust policy statement {} is either missing trust stores or trusted identities, both must be specified",
                q(name)
            ));
        }
        (
            trust_stores(name, &raw.trust_stores)?,
            identities(name, &raw.trusted_identities)?,
        )
    };
    Ok(Core {
        level,
        actions,
        verify_timestamp,
        trust_stores,
        identities,
    })
}

/// notation-go `GetVerificationLevel` (`specs/trust-store-trust-policy.md`, "Custom
/// Verification Level"): the level, then each `override` (keys `authenticity`,
/// `authenticTimestamp`, `expiry`, `revocation`; values `enforce`, `log`, and `skip` for
/// `revocation` only; `integrity` cannot be overridden; `skip` cannot be customized).
fn verification(raw: &json::RawVerification) -> Result<(Level, Actions), String> {
    if raw.level.is_empty() {
        return Err(
            "signature verification level is empty or missing in the trust policy statement"
                .to_owned(),
        );
    }
    let level = Level::from_name(&raw.level)
        .ok_or_else(|| format!("invalid signature verification level {}", q(&raw.level)))?;
    let mut actions = level.actions();
    if raw.overrides.is_empty() {
        return Ok((level, actions));
    }
    if level == Level::Skip {
        return Err(format!(
            "signature verification level {} can't be used to customize signature verification",
            q(level.as_str())
        ));
    }
    for (check, action) in &raw.overrides {
        if !matches!(
            check.as_str(),
            "integrity" | "authenticity" | "authenticTimestamp" | "expiry" | "revocation"
        ) {
            return Err(format!(
                "verification type {} in custom signature verification is not supported, supported values are [\"integrity\" \"authenticity\" \"authenticTimestamp\" \"expiry\" \"revocation\"]",
                q(check)
            ));
        }
        let action = match action.as_str() {
            "enforce" => Action::Enforce,
            "log" => Action::Log,
            "skip" => Action::Skip,
            other => {
                return Err(format!(
                    "verification action {} in custom signature verification is not supported, supported values are [\"enforce\" \"log\" \"skip\"]",
                    q(other)
                ))
            }
        };
        let slot = match check.as_str() {
            "authenticity" => &mut actions.authenticity,
            "authenticTimestamp" => &mut actions.authentic_timestamp,
            "expiry" => &mut actions.expiry,
            "revocation" => &mut actions.revocation,
            _ => {
                return Err(format!(
                    "{} verification can not be overridden in custom signature verification",
                    q(check)
                ))
            }
        };
        if action == Action::Skip && check != "revocation" {
            return Err(format!(
                "{} verification can not be skipped in custom signature verification",
                q(check)
            ));
        }
        *slot = action;
    }
    Ok((level, actions))
}

/// notation-go `validateTrustStore`: each value `<type>:<name>`, the type `ca`,
/// `signingAuthority` or `tsa`, the name `[a-zA-Z0-9_.-]+`.
///
/// A value that is only a store type (`"tsa"`) gets the message notation-go gives for it
/// when it loads the stores (`verifier/helpers.go`: "is missing separator in trust store
/// value"); notation-go's validation calls it a "malformed trust store value", the message
/// any other value without a `:` (such as `"*"`) gets here.
fn trust_stores(name: &str, values: &[String]) -> Result<Vec<StoreRef>, String> {
    values
        .iter()
        .map(|value| {
            let Some((kind, store)) = value.split_once(':') else {
                return Err(if StoreKind::from_name(value).is_some() {
                    format!(
                        "trust policy statement {} is missing separator in trust store value {}. The required format is <TrustStoreType>:<TrustStoreName>",
                        q(name),
                        q(value)
                    )
                } else {
                    format!(
                        "trust policy statement {} has malformed trust store value {}. The required format is <TrustStoreType>:<TrustStoreName>",
                        q(name),
                        q(value)
                    )
                });
            };
            let kind = StoreKind::from_name(kind).ok_or_else(|| {
                format!(
                    "trust policy statement {} uses an unsupported trust store type {} in trust store value {}",
                    q(name),
                    q(kind),
                    q(value)
                )
            })?;
            if !is_valid_store_name(store) {
                return Err(format!(
                    "trust policy statement {} uses an unsupported trust store name {} in trust store value {}. Named store name needs to follow [a-zA-Z0-9_.-]+ format",
                    q(name),
                    q(store),
                    q(value)
                ));
            }
            Ok(StoreRef {
                kind,
                name: store.to_owned(),
            })
        })
        .collect()
}

/// notation-go `validateTrustedIdentities` (`specs/trust-store-trust-policy.md`, "Trusted
/// Identities Constraints"): `*` alone, or values `<prefix>:<value>`; `x509.subject:` values
/// are DNs ([`dn::parse_distinguished_name`]) no one of which is a subset of another.
fn identities(name: &str, values: &[String]) -> Result<Identities, String> {
    if values.len() > MAX_IDENTITIES {
        return Err(format!(
            "trust policy statement {} has {} trusted identities, more than the {MAX_IDENTITIES} read",
            q(name),
            values.len()
        ));
    }
    if values.iter().any(|v| v == "*") {
        if values.len() > 1 {
            return Err(format!(
                "trust policy statement {} uses a wildcard trusted identity '*', a wildcard identity cannot be used in conjunction with other values",
                q(name)
            ));
        }
        return Ok(Identities::Any);
    }
    let mut parsed: Vec<(&str, Dn)> = Vec::new();
    for identity in values {
        if identity.is_empty() {
            return Err(format!(
                "trust policy statement {} has an empty trusted identity",
                q(name)
            ));
        }
        let Some((prefix, value)) = identity.split_once(':') else {
            return Err(format!(
                "trust policy statement {} has trusted identity {} missing separator",
                q(name),
                q(identity)
            ));
        };
        // notation verifies x509.subject identities only; others are accepted and unused.
        if prefix != "x509.subject" {
            continue;
        }
        if value.is_empty() {
            return Err(format!(
                "trust policy statement {} has trusted identity {} without an identity value",
                q(name),
                q(identity)
            ));
        }
        let dn = dn::parse_distinguished_name(value).map_err(|e| {
            format!(
                "trust policy statement {} has trusted identity {} with invalid identity value: {e}",
                q(name),
                q(identity)
            )
        })?;
        parsed.push((identity, dn));
    }
    for (i, (raw_a, a)) in parsed.iter().enumerate() {
        for (j, (raw_b, b)) in parsed.iter().enumerate() {
            if i != j && dn::is_subset(a, b) {
                return Err(format!(
                    "trust policy statement {} has overlapping x509 trustedIdentities, {} overlaps with {}",
                    q(name),
                    q(raw_a),
                    q(raw_b)
                ));
            }
        }
    }
    Ok(Identities::Subjects(
        parsed.into_iter().map(|(_, dn)| dn).collect(),
    ))
}

/// notation-go `validateRegistryScopes`: each statement has scopes, `*` only alone, every
/// other scope valid ([`check_scope`]), and no scope in two statements (nor twice in one).
fn check_scopes(statements: &[json::RawStatement]) -> Result<(), String> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for statement in statements {
        let scopes = &statement.registry_scopes;
        if scopes.is_empty() {
            return Err(format!(
                "oci trust policy statement {} has zero registry scopes, it must specify registry scopes with at least one value",
                q(&statement.name)
            ));
        }
        if scopes.len() > 1 && scopes.iter().any(|s| s == "*") {
            return Err(format!(
                "oci trust policy statement {} uses wildcard registry scope '*', a wildcard scope cannot be used in conjunction with other scope values",
                q(&statement.name)
            ));
        }
        for scope in scopes {
            if scope != "*" {
                check_scope(scope)?;
            }
            let count = seen.entry(scope).or_insert(0);
            if *count == 0 {
                order.push(scope);
            }
            *count += 1;
        }
    }
    // notation-go reports one of the repeated scopes (in Go's map order); the first here.
    match order.iter().find(|s| seen.get(**s).is_some_and(|n| *n > 1)) {
        Some(scope) => Err(format!(
            "registry scope {} is present in multiple oci trust policy statements, one registry scope value can only be associated with one statement",
            q(scope)
        )),
        None => Ok(()),
    }
}

/// notation-go `validateRegistryScopeFormat`: `domain/repository`, the domain and the
/// repository as the distribution reference grammar has them (notation-go's copy of it:
/// `domain-component ("." domain-component)* (":" port)?`, and `path-component ("/"
/// path-component)*`, a path component lower-case alphanumeric runs joined by `.`, `_`, `__`
/// or dashes), no `*`.
pub fn check_scope(scope: &str) -> Result<(), String> {
    const ENSURE: &str = "make sure it is a fully qualified repository without the scheme, protocol or tag. For example domain.com/my/repository or a local scope like local/myOCILayout";
    if scope.len() > 1 && scope.contains('*') {
        return Err(format!(
            "registry scope {} with wild card(s) is not valid, {ENSURE}",
            q(scope)
        ));
    }
    let valid = match scope.split_once('/') {
        Some((domain, repository)) => is_domain(domain) && is_repository(repository),
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "registry scope {} is not valid, {ENSURE}",
            q(scope)
        ))
    }
}

/// `domain-component ("." domain-component)* (":" [0-9]+)?`, a component alphanumeric with
/// inner dashes.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
            && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
    };
    port_ok && host.split('.').all(component_ok)
}

/// `path-component ("/" path-component)*`.
fn is_repository(repository: &str) -> bool {
    repository.split('/').all(|component| {
        let b = component.as_bytes();
        let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        if !matches!((b.first(), b.last()), (Some(f), Some(l)) if alnum(f) && alnum(l)) {
            return false;
        }
        // Every run of non-alphanumerics is one separator: ".", "_", "__", or dashes.
        b.split(alnum).all(|sep| {
            matches!(sep, [] | [b'.'] | [b'_'] | [b'_', b'_']) || sep.iter().all(|x| *x == b'-')
        })
    })
}
