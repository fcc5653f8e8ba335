//! Issuing and reading certificates: ECDSA P-256 keys, leaves that carry the
//! issuing CA's key identifier so the plan can tell which CA signed what.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem as X509Pem;

use super::TlsError;
use super::names::Usage;

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairPem {
    /// The certificate (chain).
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// What the plan needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject key identifier, if present.
    pub subject_key_id: Option<Vec<u8>>,
    /// Authority key identifier, if present (links a leaf to its CA).
    pub authority_key_id: Option<Vec<u8>>,
    /// DNS and IP subject alternative names.
    pub subject_names: Vec<String>,
    /// The public key, to check a key belongs to its certificate.
    pub public_key: Vec<u8>,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
}

fn new_key(what: &str) -> Result<KeyPair, TlsError> {
    let _ = what;
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(TlsError::KeyGeneration)
}

fn add(now: OffsetDateTime, validity: Duration) -> OffsetDateTime {
    now + time::Duration::try_from(validity).unwrap_or(time::Duration::MAX)
}

/// Clocks in a cluster disagree a little; a certificate valid from a minute ago is
/// accepted by a peer whose clock lags.
const BACKDATE: time::Duration = time::Duration::minutes(1);

/// A new self-signed CA, valid from `now` for `validity`.
pub fn issue_ca(now: OffsetDateTime, validity: Duration) -> Result<KeyPairPem, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|source| TlsError::Issue {
        what: "CA".into(),
        source,
    })?;
    // A distinct name per generation makes overlapping CAs tell apart in `openssl x509` output.
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Sightline CA {}", now.unix_timestamp()));
    params.distinguished_name.push(DnType::OrganizationName, "Sightline");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = add(now, validity);
    let key = new_key("CA")?;
    let cert = params.self_signed(&key).map_err(|source| TlsError::Issue {
        what: "CA".into(),
        source,
    })?;
    Ok(KeyPairPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A leaf signed by `ca`, never outliving it.
pub fn issue_leaf(
    ca: &KeyPairPem,
    names: &[String],
    usage: Usage,
    now: OffsetDateTime,
    validity: Duration,
) -> Result<KeyPairPem, TlsError> {
    let what = names.first().cloned().unwrap_or_default();
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|source| TlsError::Key {
        what: "CA".into(),
        source,
    })?;
    let ca_info = inspect(&ca.cert, "CA")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(|source| TlsError::Issue {
        what: "CA".into(),
        source,
    })?;
    let issue_error = |source| TlsError::Issue {
        what: what.clone(),
        source,
    };
    let mut params = CertificateParams::new(names.to_vec()).map_err(issue_error)?;
    params.distinguished_name.push(DnType::CommonName, what.clone());
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.not_before = now - BACKDATE;
    params.not_after = add(now, validity).min(ca_info.not_after);
    let key = new_key(&what)?;
    let cert = params.signed_by(&key, &issuer).map_err(|source| TlsError::Issue {
        what: what.clone(),
        source,
    })?;
    Ok(KeyPairPem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Every certificate in a PEM bundle.
pub fn inspect_bundle(pem: &str, what: &str) -> Result<Vec<CertInfo>, TlsError> {
    let parse_error = |reason: String| TlsError::Parse {
        what: what.to_owned(),
        reason,
    };
    let mut infos = Vec::new();
    for block in X509Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|err| parse_error(err.to_string()))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|err| parse_error(err.to_string()))?;
        infos.push(info(&cert));
    }
    if infos.is_empty() {
        return Err(parse_error("no certificate".into()));
    }
    Ok(infos)
}

/// The first certificate of a PEM text.
pub fn inspect(pem: &str, what: &str) -> Result<CertInfo, TlsError> {
    let mut all = inspect_bundle(pem, what)?;
    Ok(all.swap_remove(0))
}

fn info(cert: &x509_parser::certificate::X509Certificate<'_>) -> CertInfo {
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    let mut subject_names = Vec::new();
    let mut is_ca = false;
    for extension in cert.extensions() {
        match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            ParsedExtension::BasicConstraints(constraints) => is_ca = constraints.ca,
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => subject_names.push((*dns).to_owned()),
                        GeneralName::IPAddress(bytes) => {
                            if let Some(ip) = ip_from_bytes(bytes) {
                                subject_names.push(ip.to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    CertInfo {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        subject_key_id,
        authority_key_id,
        subject_names,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
        is_ca,
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// Whether `key_pem` is the private key of the certificate (a Secret edited by hand
/// can pair a certificate with someone else's key).
pub fn key_matches(cert: &CertInfo, key_pem: &str) -> bool {
    KeyPair::from_pem(key_pem).is_ok_and(|key| key.public_key_raw() == cert.public_key.as_slice())
}

/// Whether `leaf` was signed by the CA `ca` (by key identifier).
pub fn signed_by(leaf: &CertInfo, ca: &CertInfo) -> bool {
    leaf.authority_key_id.is_some() && leaf.authority_key_id == ca.subject_key_id
}
