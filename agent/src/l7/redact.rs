//! Redaction of sensitive values, with Hubble's `--hubble-redact-*` semantics: the URL's
//! password and query, header values by allow/deny list, and the Kafka API key.

use sightline_proto::flow::HttpHeader;

/// Hubble's replacement text for a redacted value.
pub(super) const REDACTED: &str = "HUBBLE_REDACTED";

/// Which values are redacted before a record leaves the tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// Drop the URL's query and fragment.
    pub url_query: bool,
    /// Replace the password in `user:password@` with `HUBBLE_REDACTED`.
    pub user_info: bool,
    /// When not empty, only these headers (case-insensitive) keep their values.
    pub headers_allow: Vec<String>,
    /// These headers (case-insensitive) lose their values.
    pub headers_deny: Vec<String>,
    /// Replace the Kafka api_key name with `HUBBLE_REDACTED`.
    pub kafka_api_key: bool,
}

impl Default for Redaction {
    /// Query and user info are removed by default; headers and Kafka keys are kept.
    fn default() -> Self {
        Self {
            url_query: true,
            user_info: true,
            headers_allow: Vec::new(),
            headers_deny: Vec::new(),
            kafka_api_key: false,
        }
    }
}

impl Redaction {
    /// The URL as it may be shown: query/fragment dropped and password replaced as configured.
    pub fn url(&self, url: &str) -> String {
        let mut url = url.to_owned();
        self.redact_url(&mut url);
        url
    }

    /// `url` redacted in place: the parsers build each URL once and never copy it for this.
    pub fn redact_url(&self, url: &mut String) {
        if self.url_query
            && let Some(cut) = url.bytes().position(|b| b == b'?' || b == b'#')
        {
            url.truncate(cut);
        }
        if self.user_info && url.contains('@') {
            redact_password(url);
        }
    }

    /// Whether a header (by name, any case) keeps its value.
    pub fn keeps_header(&self, key: &str) -> bool {
        if self.headers_allow.is_empty() && self.headers_deny.is_empty() {
            return true;
        }
        let listed = |list: &[String]| list.iter().any(|name| name.eq_ignore_ascii_case(key));
        listed(&self.headers_allow) || (self.headers_allow.is_empty() && !listed(&self.headers_deny))
    }

    /// A header's value as it may be shown. Allow wins over deny, as in Hubble; a header
    /// on neither list is redacted only when an allow list exists.
    pub fn header_value<'v>(&self, key: &str, value: &'v str) -> &'v str {
        if self.keeps_header(key) { value } else { REDACTED }
    }

    /// Redacts the values of a built header list in place.
    pub fn headers(&self, headers: &mut [HttpHeader]) {
        if self.headers_allow.is_empty() && self.headers_deny.is_empty() {
            return;
        }
        for header in headers {
            if self.header_value(&header.key, &header.value) == REDACTED {
                header.value = REDACTED.to_owned();
            }
        }
    }

    /// The Kafka API key name as it may be shown.
    pub fn kafka_api_key<'k>(&self, api_key: &'k str) -> &'k str {
        if self.kafka_api_key { REDACTED } else { api_key }
    }
}

/// `scheme://user:password@host/...` → `scheme://user:HUBBLE_REDACTED@host/...`; a user
/// name without a password stays, as Hubble keeps it.
fn redact_password(url: &mut String) {
    let Some(authority_start) = url.find("://").map(|at| at + 3) else {
        return;
    };
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| authority_start + at);
    let authority = &url[authority_start..authority_end];
    let Some(at) = authority.rfind('@') else {
        return;
    };
    let Some(colon) = authority[..at].find(':') else {
        return;
    };
    url.replace_range(authority_start + colon + 1..authority_start + at, REDACTED);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_fragment_are_dropped_and_password_replaced_by_default() {
        let redaction = Redaction::default();
        assert_eq!(
            redaction.url("http://alice:secret@shop.svc/cart?token=abc#top"),
            "http://alice:HUBBLE_REDACTED@shop.svc/cart"
        );
        assert_eq!(redaction.url("http://bob@shop.svc/a"), "http://bob@shop.svc/a");
    }

    #[test]
    fn nothing_is_redacted_when_switched_off() {
        let redaction = Redaction {
            url_query: false,
            user_info: false,
            ..Redaction::default()
        };
        let url = "http://alice:secret@shop.svc/cart?token=abc";
        assert_eq!(redaction.url(url), url);
    }

    #[test]
    fn allow_list_redacts_every_other_header_and_wins_over_deny() {
        let redaction = Redaction {
            headers_allow: vec!["content-type".into()],
            headers_deny: vec!["Content-Type".into(), "cookie".into()],
            ..Redaction::default()
        };
        assert_eq!(redaction.header_value("Content-Type", "text/plain"), "text/plain");
        assert_eq!(redaction.header_value("Cookie", "id=1"), REDACTED);
        assert_eq!(redaction.header_value("X-Trace", "7"), REDACTED);
    }

    #[test]
    fn deny_list_redacts_only_the_listed_headers() {
        let redaction = Redaction {
            headers_deny: vec!["authorization".into()],
            ..Redaction::default()
        };
        let mut headers = vec![
            HttpHeader {
                key: "Authorization".into(),
                value: "Bearer x".into(),
            },
            HttpHeader {
                key: "Accept".into(),
                value: "*/*".into(),
            },
        ];
        redaction.headers(&mut headers);
        assert_eq!(headers[0].value, REDACTED);
        assert_eq!(headers[1].value, "*/*");
    }

    #[test]
    fn kafka_api_key_is_replaced_when_asked() {
        let redaction = Redaction {
            kafka_api_key: true,
            ..Redaction::default()
        };
        assert_eq!(redaction.kafka_api_key("produce"), REDACTED);
        assert_eq!(Redaction::default().kafka_api_key("produce"), "produce");
    }
}
