//! `FlowFilter.experimental.cel_expression`: CEL over the variable `_flow` (the
//! whole `flow.Flow`), as Hubble evaluates it. The expressions of one filter are
//! OR-ed; each must type-check to `bool`; a runtime error on a flow (a null
//! wrapper used as a bool, an index out of range) is "no match" for that flow.
//!
//! Parsing (syntax, macros, positions) is the `cel` crate's. Checking and
//! evaluation are ours and specialised to flows: field paths are resolved once
//! against the Hubble descriptor, the common ones to direct reads of the
//! [`FlowRecord`] accessors, so a typical expression allocates nothing per flow
//! (see `docs/observer.md`, "CEL expressions").

mod access;
mod compile;
mod eval;
mod types;
mod value;

use std::fmt;

use cel::common::ast::SourceInfo;
use prost_reflect::MessageDescriptor;

use super::FilterError;
use crate::flow_record::FlowRecord;
use access::FlowView;
use compile::Checker;
use eval::{Evaluation, Node};
use types::Type;

const FIELD: &str = "experimental.cel_expression";
/// Hubble's parser limit (`celExpressionMaxSize`), in code points.
const MAX_EXPRESSION_CHARS: usize = 4096;

/// One compiled expression.
#[derive(Clone)]
struct Program {
    source: String,
    root: Node,
}

/// The OR of a filter's CEL expressions.
#[derive(Clone)]
pub(crate) struct CelFilter {
    programs: Vec<Program>,
    flow: MessageDescriptor,
}

impl fmt::Debug for CelFilter {
    /// The sources identify the filter (filters are merged by their debug form).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.programs.iter().map(|p| &p.source)).finish()
    }
}

impl CelFilter {
    pub(crate) fn compile(expressions: &[String]) -> Result<Self, FilterError> {
        let flow = types::flow_message().map_err(|e| FilterError::invalid(FIELD, "", e))?;
        let programs = expressions
            .iter()
            .map(|source| {
                compile_one(&flow, source).map_err(|reason| {
                    FilterError::invalid(FIELD, source, format!("error compiling CEL expression: {reason}"))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { programs, flow })
    }

    #[inline]
    pub(crate) fn matches(&self, record: &FlowRecord) -> bool {
        self.programs.iter().any(|program| {
            let mut evaluation = Evaluation {
                view: FlowView::new(record, &self.flow),
                slots: Vec::new(),
            };
            program.root.matches(&mut evaluation)
        })
    }
}

fn compile_one(flow: &MessageDescriptor, source: &str) -> Result<Program, String> {
    let chars = source.chars().count();
    if chars > MAX_EXPRESSION_CHARS {
        return Err(format!(
            "expression code point size exceeds limit: size: {chars}, limit {MAX_EXPRESSION_CHARS}"
        ));
    }
    let (expr, info) = cel::parser::Parser::new()
        .parse_with_source_info(source)
        .map_err(|errors| errors.to_string())?;
    let (root, ty) = Checker::new(flow.clone())
        .check(&expr)
        .map_err(|e| located(&info, source, e.node, &e.message))?;
    if !matches!(ty, Type::Bool) {
        return Err(format!("got {:?}, wanted \"bool\" result type", ty.to_string()));
    }
    Ok(Program {
        source: source.to_owned(),
        root,
    })
}

/// cel-go's error layout: `ERROR: <input>:line:column: message`, the line, and a
/// caret under the column.
fn located(info: &SourceInfo, source: &str, node: u64, message: &str) -> String {
    let Some((start, _)) = info.offset_for(node) else {
        return format!("ERROR: <input>: {message}");
    };
    let before: String = source.chars().take(start as usize).collect();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    let text = source.lines().nth(line - 1).unwrap_or_default();
    format!(
        "ERROR: <input>:{line}:{}: {message}\n | {text}\n | {}^",
        column + 1,
        ".".repeat(column)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn error_of(source: &str) -> String {
        match CelFilter::compile(&[source.to_owned()]) {
            Ok(_) => panic!("{source} compiled"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn checking_errors_carry_cel_gos_position_and_caret() {
        assert_eq!(
            error_of("_flow.source.namspace == \"x\""),
            "error compiling CEL expression: ERROR: <input>:1:13: undefined field 'namspace'\n \
             | _flow.source.namspace == \"x\"\n | ............^"
        );
        assert!(
            error_of("_flow.l4.TCP.destination_port == 53")
                .contains("<input>:1:31: found no matching overload for '_==_' applied to '(uint, int)'")
        );
        assert!(error_of("true &&\n  foo == 1").contains("<input>:2:3: undeclared reference to 'foo'"));
        assert!(error_of("_flow.source.namespace ==").contains("<input>:1:26: Syntax error"));
        assert!(error_of("_flow.time == 1").contains("google.protobuf.Timestamp are not supported"));
        assert!(error_of("_flow.source.labels.map(l, l)").contains("only the exists(), all() and exists_one()"));
        assert!(
            error_of("_flow.l4.TCP.destination_port.x == 1u").contains("type 'uint' does not support field selection")
        );
        assert!(error_of("_flow.node_name.matches(\"(\")").contains("invalid regular expression"));
    }

    #[test]
    fn results_must_be_bool_as_in_hubble() {
        assert_eq!(
            error_of("_flow.verdict"),
            "error compiling CEL expression: got \"int\", wanted \"bool\" result type"
        );
        assert!(error_of("_flow.source.labels").contains("got \"list(string)\""));
        assert!(error_of("\"x\"").contains("got \"string\""));
    }

    #[test]
    fn oversized_expressions_are_rejected() {
        let long = format!("_flow.node_name == \"{}\"", "x".repeat(MAX_EXPRESSION_CHARS));
        assert!(error_of(&long).contains("exceeds limit"));
    }

    #[test]
    fn the_first_invalid_expression_is_named() {
        let err = CelFilter::compile(&["_flow.verdict == 1".to_owned(), "_flow.nope".to_owned()]).unwrap_err();
        assert_eq!((err.field, err.value.as_str()), (FIELD, "_flow.nope"));
    }
}
