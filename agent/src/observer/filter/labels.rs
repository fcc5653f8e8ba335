//! Kubernetes label selectors over Cilium labels (`source:key=value`).
//!
//! A selector key may carry a Cilium source (`k8s:app`); without one it matches a
//! label of any source. `cidr:` keys match CIDR labels by prefix containment.

use std::net::IpAddr;

use super::FilterError;
use super::ip::Prefix;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    In(Vec<String>),
    NotIn(Vec<String>),
    /// `key>n` / `key<n`: the label's value read as an integer.
    Greater(i64),
    Less(i64),
}

#[derive(Debug, Clone)]
struct Requirement {
    /// `None` = any source.
    source: Option<String>,
    key: String,
    cidr: Option<Prefix>,
    op: Op,
}

/// A selector: all requirements must hold.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

/// A flow label split into its parts.
struct Label<'a> {
    source: &'a str,
    key: &'a str,
    value: &'a str,
}

fn parse_label(label: &str) -> Label<'_> {
    let (key_part, value) = label.split_once('=').unwrap_or((label, ""));
    match key_part.split_once(':') {
        Some((source, key)) => Label { source, key, value },
        None => Label {
            source: "unspec",
            key: key_part,
            value,
        },
    }
}

/// A token of the Kubernetes label-selector grammar (apimachinery's `labels.Parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    In,
    NotIn,
    OpenPar,
    ClosePar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    End,
}

impl Token<'_> {
    /// `in` and `notin` are values where a value is expected (`app in (in)`).
    fn as_value(self) -> Self {
        match self {
            Token::In => Token::Ident("in"),
            Token::NotIn => Token::Ident("notin"),
            other => other,
        }
    }

    fn describe(self) -> String {
        match self {
            Token::Ident(text) => format!("{text:?}"),
            Token::In => "'in'".into(),
            Token::NotIn => "'notin'".into(),
            Token::OpenPar => "'('".into(),
            Token::ClosePar => "')'".into(),
            Token::Comma => "','".into(),
            Token::Not => "'!'".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::Greater => "'>'".into(),
            Token::Less => "'<'".into(),
            Token::End => "the end".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits as Kubernetes' lexer does: identifiers run until a blank or one of
/// `=!(),<>`, so `app in(web)` and `app in (web)` are the same selector.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(is_blank);
        let Some(c) = rest.chars().next() else {
            out.push(Token::End);
            return out;
        };
        if is_special(c) {
            let (token, len) = match (c, rest.as_bytes().get(1)) {
                ('!', Some(b'=')) => (Token::NotEquals, 2),
                ('=', Some(b'=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::Not, 1),
                ('=', _) => (Token::Equals, 1),
                ('(', _) => (Token::OpenPar, 1),
                (')', _) => (Token::ClosePar, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::Greater, 1),
                (_, _) => (Token::Less, 1),
            };
            out.push(token);
            rest = &rest[len..];
            continue;
        }
        let end = rest.find(|c| is_blank(c) || is_special(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        out.push(match word {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
        rest = &rest[end..];
    }
}

/// Kubernetes' `IsQualifiedName`: an optional DNS-subdomain prefix and `/`, then a
/// name of at most 63 characters of `[-A-Za-z0-9_.]` that starts and ends
/// alphanumeric.
fn qualified_name_error(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if name.contains('/') {
        return Some("more than one '/'");
    }
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Some("the prefix before '/' must be a lower-case DNS subdomain");
    }
    if name.is_empty() || name.len() > 63 {
        return Some("the name must be 1 to 63 characters");
    }
    (!is_label_text(name)).then_some("the name must be alphanumeric, '-', '_' or '.', starting and ending alphanumeric")
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_label_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// RFC 1123 subdomain: dot-separated `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 253.
fn is_dns_subdomain(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            let bytes = label.as_bytes();
            let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            edge(bytes.first())
                && edge(bytes.last())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

/// Splits a Cilium source off the key and checks it as Hubble does: Hubble rewrites
/// `k8s:app` to `k8s.app` for Kubernetes' parser, which must accept the result.
fn parse_key(key: &str) -> Result<(Option<String>, String), String> {
    let (source, name) = match key.split_once(':') {
        Some((source, name)) => (Some(source), name),
        None => (None, key),
    };
    let checked = match source {
        Some(source) => format!("{source}.{name}"),
        None => key.to_owned(),
    };
    if source.is_some_and(str::is_empty) || name.is_empty() {
        return Err(format!("invalid label key {key:?}: empty source or name"));
    }
    if let Some(reason) = qualified_name_error(&checked) {
        return Err(format!("invalid label key {key:?}: {reason}"));
    }
    Ok(match source {
        Some("any") | None => (None, name.to_owned()),
        Some(source) => (Some(source.to_owned()), name.to_owned()),
    })
}

/// Kubernetes' `IsValidLabelValue`: empty, or label text of at most 63 characters.
fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || (value.len() <= 63 && is_label_text(value)) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?} for key {key:?}: at most 63 characters, alphanumeric, '-', '_' or '.', starting and ending alphanumeric"
        ))
    }
}

/// A recursive-descent parser over [`tokens`], following apimachinery's `Parser`.
struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Token<'a> {
        self.tokens.get(self.position).copied().unwrap_or(Token::End)
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.peek();
        self.position += 1;
        token
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek().as_value() {
                Token::Ident(_) | Token::Not => {
                    requirements.push(self.requirement()?);
                    match self.next().as_value() {
                        Token::End => return Ok(requirements),
                        Token::Comma => match self.peek().as_value() {
                            Token::Ident(_) | Token::Not => {}
                            other => return Err(format!("found {}, expected a key after ','", other.describe())),
                        },
                        other => return Err(format!("found {}, expected ',' or the end", other.describe())),
                    }
                }
                Token::End => return Ok(requirements),
                other => return Err(format!("found {}, expected '!' or a key", other.describe())),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next().as_value() {
            Token::Ident(key) => key,
            other => return Err(format!("found {}, expected a key", other.describe())),
        };
        let (source, name) = parse_key(key)?;
        let op = if matches!(self.peek().as_value(), Token::End | Token::Comma) {
            if negated { Op::NotExists } else { Op::Exists }
        } else if negated {
            return Err(format!("'!{key}' takes no operator"));
        } else {
            match self.next() {
                Token::In => Op::In(self.values(key)?),
                Token::NotIn => Op::NotIn(self.values(key)?),
                Token::Equals | Token::DoubleEquals => Op::In(vec![self.exact_value(key)?]),
                Token::NotEquals => Op::NotIn(vec![self.exact_value(key)?]),
                token @ (Token::Greater | Token::Less) => {
                    let value = self.exact_value(key)?;
                    let bound = value
                        .parse::<i64>()
                        .map_err(|_| format!("{key}{} needs an integer, got {value:?}", token.describe()))?;
                    if token == Token::Greater {
                        Op::Greater(bound)
                    } else {
                        Op::Less(bound)
                    }
                }
                other => {
                    return Err(format!(
                        "found {} after {key:?}, expected '=', '==', '!=', '>', '<', 'in' or 'notin'",
                        other.describe()
                    ));
                }
            }
        };
        let cidr = if source.as_deref() == Some("cidr") {
            Prefix::parse_label_key(&name)
        } else {
            None
        };
        Ok(Requirement {
            source,
            key: name,
            cidr,
            op,
        })
    }

    /// `(a, b)`; as in Kubernetes, empty entries (`()`, `(a,)`) are the empty value.
    fn values(&mut self, key: &str) -> Result<Vec<String>, String> {
        match self.next() {
            Token::OpenPar => {}
            other => return Err(format!("found {} after {key:?} in, expected '('", other.describe())),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next().as_value() {
                Token::Ident(value) if expect_value => {
                    check_value(key, value)?;
                    values.push(value.to_owned());
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::ClosePar => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                other => {
                    return Err(format!(
                        "found {} in the values of {key:?}, expected ',' or ')'",
                        other.describe()
                    ));
                }
            }
        }
    }

    /// The value after `=`, `!=`, `>` or `<`; nothing before `,` or the end is "".
    fn exact_value(&mut self, key: &str) -> Result<String, String> {
        match self.peek().as_value() {
            Token::End | Token::Comma => Ok(String::new()),
            Token::Ident(value) => {
                self.next();
                check_value(key, value)?;
                Ok(value.to_owned())
            }
            other => Err(format!("found {} as the value of {key:?}", other.describe())),
        }
    }
}

impl Selector {
    /// Kubernetes label-selector syntax, keys with an optional Cilium source. As
    /// in Hubble, a selector without requirements (`""`) matches every flow.
    pub(crate) fn parse(field: &'static str, text: &str) -> Result<Self, FilterError> {
        let mut parser = Parser {
            tokens: tokens(text),
            position: 0,
        };
        let requirements = parser
            .selector()
            .map_err(|reason| FilterError::invalid(field, text, reason))?;
        Ok(Self { requirements })
    }

    pub(crate) fn matches(&self, labels: &[String]) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn label_matches_key(&self, label: &Label<'_>) -> bool {
        if self.source.as_deref().is_some_and(|s| s != label.source) {
            return false;
        }
        if let Some(prefix) = &self.cidr {
            return Prefix::parse_label_key(label.key).is_some_and(|inner| prefix.contains_prefix(&inner));
        }
        self.key == label.key
    }

    fn matches(&self, labels: &[String]) -> bool {
        let mut with_key = labels
            .iter()
            .map(|l| parse_label(l))
            .filter(|l| self.label_matches_key(l));
        match &self.op {
            Op::Exists => with_key.next().is_some(),
            Op::NotExists => with_key.next().is_none(),
            Op::In(values) => with_key.any(|l| values.iter().any(|v| v == l.value)),
            Op::NotIn(values) => with_key.all(|l| values.iter().all(|v| v != l.value)),
            Op::Greater(bound) => with_key.any(|l| l.value.parse::<i64>().is_ok_and(|v| v > *bound)),
            Op::Less(bound) => with_key.any(|l| l.value.parse::<i64>().is_ok_and(|v| v < *bound)),
        }
    }
}

/// Parses a CIDR label key (`10.0.0.0/8`, or IPv6 with `-` for `:`).
impl Prefix {
    fn parse_label_key(key: &str) -> Option<Prefix> {
        let (addr, len) = key.split_once('/')?;
        let addr: IpAddr = addr.replace('-', ":").parse().ok()?;
        Prefix::new(addr, len.parse().ok()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn source_prefixes_and_operators() {
        let flow = labels(&["k8s:app=web", "k8s:tier=front", "reserved:host"]);
        let sel = |s: &str| Selector::parse("source_label", s).unwrap();
        assert!(sel("app=web").matches(&flow));
        assert!(sel("k8s:app=web").matches(&flow));
        assert!(!sel("container:app=web").matches(&flow));
        assert!(sel("app in (web, api),tier").matches(&flow));
        assert!(!sel("app notin (web)").matches(&flow));
        assert!(sel("app!=api").matches(&flow));
        assert!(sel("!missing").matches(&flow));
        assert!(sel("reserved:host").matches(&flow));
        assert!(!sel("app==api").matches(&flow));
        assert!(Selector::parse("source_label", "app in web").is_err());
    }

    #[test]
    fn the_grammar_is_kubernetes() {
        let flow = labels(&["k8s:app=web", "k8s:replicas=3", "k8s:app.kubernetes.io/name=shop"]);
        let sel = |s: &str| Selector::parse("source_label", s).unwrap();
        // Kubernetes' lexer ends a word at a blank or one of =!(),<>.
        assert!(sel("app in(web)").matches(&flow));
        assert!(sel("app in(api,web)").matches(&flow));
        assert!(!sel("app notin(web)").matches(&flow));
        assert!(sel("app==web,replicas").matches(&flow));
        assert!(sel(" app = web ").matches(&flow));
        assert!(sel("replicas>2,replicas<4").matches(&flow));
        assert!(!sel("replicas>3").matches(&flow));
        assert!(!sel("app>1").matches(&flow), "not an integer");
        assert!(sel("k8s:app.kubernetes.io/name=shop").matches(&flow));
        // `in` is a value where a value is expected; `()` is the empty value.
        assert!(!sel("app in (in, notin)").matches(&flow));
        assert!(sel("missing notin ()").matches(&flow));
        assert!(sel("app!=").matches(&flow));
        // As in Hubble, no requirement at all selects everything.
        assert!(sel("").matches(&[]));
    }

    #[test]
    fn invalid_keys_values_and_syntax_are_named() {
        let err = |s: &str| match Selector::parse("source_label", s) {
            Ok(sel) => panic!("{s:?} parsed: {sel:?}"),
            Err(e) => e.reason,
        };
        for (selector, named) in [
            ("app_=web", "\"app_\""),
            ("-app=web", "\"-app\""),
            ("Example.com/app=web", "\"Example.com/app\""),
            ("a/b/c=web", "\"a/b/c\""),
            (":app=web", "\":app\""),
            ("k8s:=web", "\"k8s:\""),
            ("app=we$b", "\"we$b\""),
            ("app in (web, -x)", "\"-x\""),
            ("app=web-", "\"web-\""),
        ] {
            let reason = err(selector);
            assert!(reason.contains(named), "{selector}: {reason}");
        }
        let long = "a".repeat(64);
        assert!(err(&format!("app={long}")).contains(&long));
        assert!(err(&format!("{long}=x")).contains(&long));
        for selector in [
            "app in web",
            "app in (web",
            "app in (a b)",
            "app=web,",
            ",app",
            "!app=web",
            "app>x",
            "app=(x)",
        ] {
            err(selector);
        }
    }

    #[test]
    fn cidr_labels_match_by_containment() {
        let flow = labels(&["cidr:10.1.0.0/16"]);
        assert!(
            Selector::parse("destination_label", "cidr:10.0.0.0/8")
                .unwrap()
                .matches(&flow)
        );
        assert!(
            !Selector::parse("destination_label", "cidr:192.168.0.0/16")
                .unwrap()
                .matches(&flow)
        );
    }
}
