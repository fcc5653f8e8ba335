//! An HTTP record as the tracker hands it over: the request's method and URL stay in the
//! bytes they arrived in (an HTTP/1 head, or one packed text per HTTP/2 request) and are
//! assembled, redacted and turned into Hubble's `Http` message only when the record is
//! read. A response shares its request's bytes, so an exchange copies each head once.

use std::borrow::Cow;
use std::sync::Arc;

use sightline_proto::flow::Http;

use super::header_fields::HeaderFields;
use super::headers::text;
use super::redact::Redaction;

/// A byte range of a record's text, small enough to keep records compact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Heads are bounded far below 4 GiB (`max_head_bytes`, HTTP/2 frame limits).
    pub(crate) fn new(range: std::ops::Range<usize>) -> Self {
        let clamp = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
        Self {
            start: clamp(range.start),
            end: clamp(range.end),
        }
    }

    pub(crate) fn of(self, bytes: &[u8]) -> &[u8] {
        bytes.get(self.start as usize..self.end as usize).unwrap_or_default()
    }

    fn len(self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }
}

/// A request's method and URL, shared by its request and response records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestText {
    bytes: Arc<[u8]>,
    method: Span,
    /// `http://` in front of an HTTP/1 origin-form target, else nothing.
    url_prefix: &'static str,
    /// Host header of an origin-form HTTP/1 target; empty otherwise.
    authority: Span,
    /// The rest of the URL (for HTTP/2 the whole URL).
    target: Span,
    redaction: Arc<Redaction>,
}

impl RequestText {
    /// An HTTP/1 request from its head: `http://` + Host + target for an origin-form (or
    /// `*`) target, the target alone for absolute and authority forms.
    pub(crate) fn http1(
        head: Arc<[u8]>,
        method: Span,
        host: Option<Span>,
        target: Span,
        redaction: &Arc<Redaction>,
    ) -> Self {
        let target_bytes = target.of(&head);
        let origin_form = target_bytes.starts_with(b"/") || target_bytes == b"*";
        Self {
            method,
            url_prefix: if origin_form { "http://" } else { "" },
            authority: if origin_form {
                host.unwrap_or_default()
            } else {
                Span::default()
            },
            target,
            bytes: head,
            redaction: Arc::clone(redaction),
        }
    }

    /// A request whose method and URL were decoded already: `scratch` is cleared and
    /// reused, the record keeps one copy of both.
    pub(crate) fn packed(scratch: &mut Vec<u8>, method: &str, url: [&str; 4], redaction: &Arc<Redaction>) -> Self {
        scratch.clear();
        scratch.extend_from_slice(method.as_bytes());
        let method_span = Span::new(0..scratch.len());
        for part in url {
            scratch.extend_from_slice(part.as_bytes());
        }
        Self {
            method: method_span,
            url_prefix: "",
            authority: Span::default(),
            target: Span::new(method_span.len()..scratch.len()),
            bytes: Arc::from(scratch.as_slice()),
            redaction: Arc::clone(redaction),
        }
    }

    /// The method as sent (a token, so ASCII for HTTP/1).
    pub(crate) fn method(&self) -> Cow<'_, str> {
        text(self.method.of(&self.bytes))
    }

    pub(crate) fn method_is(&self, method: &[u8]) -> bool {
        self.method.of(&self.bytes) == method
    }

    /// The URL as Hubble shows it, redacted by the tracker's settings.
    pub(crate) fn url(&self) -> String {
        let authority = text(self.authority.of(&self.bytes));
        let target = text(self.target.of(&self.bytes));
        let mut url = String::with_capacity(self.url_prefix.len() + authority.len() + target.len());
        url.push_str(self.url_prefix);
        url.push_str(&authority);
        url.push_str(&target);
        self.redaction.redact_url(&mut url);
        url
    }
}

/// One HTTP request or response record, built into Hubble's `Http` when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRecord {
    /// Status code; 0 on requests.
    pub(crate) code: u32,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub(crate) protocol: &'static str,
    pub(crate) request: RequestText,
    /// The record's header fields (gRPC trailers joined to the response's).
    pub(crate) headers: Option<HeaderFields>,
}

impl HttpRecord {
    /// Hubble's `Http` message with its header list left empty (see [`HttpRecord::headers`]).
    pub fn to_http(&self) -> Http {
        Http {
            code: self.code,
            method: self.request.method().into_owned(),
            url: self.request.url(),
            protocol: self.protocol.to_owned(),
            headers: Vec::new(),
        }
    }

    /// The header fields, which become the `Http` header list when a flow is read.
    pub fn headers(&self) -> Option<&HeaderFields> {
        self.headers.as_ref()
    }
}
