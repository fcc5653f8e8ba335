//! `spec.tls`: who issues the certificates and for how long they live.

// KubeSchema copies `TlsSettings` into a private helper for its CEL rules, with the
// struct's span and without its attributes: the lint can only be lifted here.
#![allow(unreachable_pub)]

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who provides the TLS Secrets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsMode {
    /// The operator issues, renews and rotates every certificate and the CA.
    #[default]
    Auto,
    /// The user (or cert-manager) provides the Secrets; the operator only checks them.
    External,
}

/// TLS lifecycle settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    cel,
    validation = Rule::new("duration(self.renewBefore) < duration(self.certValidity)")
        .message("renewBefore must be shorter than certValidity")
        .field_path(".renewBefore"),
    validation = Rule::new("duration(self.certValidity) <= duration(self.caValidity)")
        .message("certValidity must not exceed caValidity")
        .field_path(".certValidity")
)]
pub struct TlsSettings {
    /// `Auto` issues everything; `External` only reads Secrets provided by someone else.
    #[serde(default)]
    pub mode: TlsMode,
    /// Lifetime of the CA the operator issues (Kubernetes duration, e.g. `26280h`).
    #[serde(default = "default_ca_validity")]
    #[schemars(schema_with = "super::schema::duration")]
    pub ca_validity: String,
    /// Lifetime of each leaf certificate (e.g. `8760h`).
    #[serde(default = "default_cert_validity")]
    #[schemars(schema_with = "super::schema::duration")]
    pub cert_validity: String,
    /// A certificate is renewed when less than this remains (e.g. `720h`); must be below `certValidity`.
    #[serde(default = "default_renew_before")]
    #[schemars(schema_with = "super::schema::duration")]
    pub renew_before: String,
    /// DNS names added to the agents' server certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")))]
    pub extra_dns_names: Vec<String>,
    /// IP addresses added to the agents' server certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[0-9a-fA-F:.]+$")))]
    pub extra_ip_addresses: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            mode: TlsMode::Auto,
            ca_validity: default_ca_validity(),
            cert_validity: default_cert_validity(),
            renew_before: default_renew_before(),
            extra_dns_names: Vec::new(),
            extra_ip_addresses: Vec::new(),
        }
    }
}

/// Three years, so the CA outlives several leaf generations.
fn default_ca_validity() -> String {
    "26280h".into()
}

/// Hubble's `certValidityDuration`: 365 days.
fn default_cert_validity() -> String {
    "8760h".into()
}

fn default_renew_before() -> String {
    "720h".into()
}
