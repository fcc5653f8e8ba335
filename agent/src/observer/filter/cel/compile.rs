//! Type-checks a parsed expression against `flow.Flow` and builds its [`Node`]
//! tree: the work cel-go's checker does for Hubble, so the same mistakes
//! (unknown fields, `port == 53` on a `uint`, non-boolean results) are
//! rejected before the first flow, with the position of the offending node.

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, LiteralValue, SelectExpr, operators};
use cel::parser::Expression;
use prost_reflect::{FieldDescriptor, MessageDescriptor};
use regex::Regex;

use super::access::{self, Access, Has};
use super::eval::{Compare, Node, Quantifier, StringTest};
use super::types::{self, Type};
use super::value::Value;

/// Hubble's variable name: `flow` would clash with the protobuf package.
pub(super) const FLOW_VARIABLE: &str = "_flow";
/// The container enum names resolve in: `Verdict.DROPPED` is `flow.Verdict.DROPPED`.
const CONTAINER: &str = "flow";

/// A checking error at one node of the expression.
#[derive(Debug)]
pub(super) struct CheckError {
    pub node: u64,
    pub message: String,
}

fn error<T>(node: &Expression, message: impl Into<String>) -> Result<T, CheckError> {
    Err(CheckError {
        node: node.id,
        message: message.into(),
    })
}

pub(super) struct Checker {
    flow: MessageDescriptor,
    /// Comprehension variables in scope: name, slot and element type.
    scope: Vec<(String, usize, Type)>,
    slots: usize,
}

type Checked = Result<(Node, Type), CheckError>;

impl Checker {
    pub(super) fn new(flow: MessageDescriptor) -> Self {
        Self {
            flow,
            scope: Vec::new(),
            slots: 0,
        }
    }

    pub(super) fn check(&mut self, expr: &Expression) -> Checked {
        match &expr.expr {
            Expr::Literal(literal) => Ok(literal_node(literal)),
            Expr::Ident(name) => self.ident(expr, name),
            Expr::Select(select) => self.select(expr, select),
            Expr::Call(call) => self.call(expr, call),
            Expr::List(list) => {
                if !list.optional_indices.is_empty() {
                    return error(expr, "optional list elements are not supported");
                }
                let mut nodes = Vec::with_capacity(list.elements.len());
                let mut element_type = Type::Dyn;
                for element in &list.elements {
                    let (node, ty) = self.check(element)?;
                    if element_type == Type::Dyn {
                        element_type = ty;
                    } else if !element_type.comparable_with(&ty) {
                        return error(
                            element,
                            format!("list elements of different types ({element_type}, {ty}) are not supported"),
                        );
                    }
                    nodes.push(node);
                }
                Ok((Node::List(nodes), Type::List(Box::new(element_type))))
            }
            Expr::Comprehension(comprehension) => self.comprehension(expr, comprehension),
            Expr::Map(_) => error(expr, "map literals are not supported"),
            Expr::Struct(_) => error(expr, "message literals are not supported"),
            Expr::Unspecified => error(expr, "empty expression"),
        }
    }

    fn ident(&mut self, expr: &Expression, name: &str) -> Checked {
        if let Some((_, slot, ty)) = self.scope.iter().rev().find(|(n, ..)| n == name) {
            return Ok((Node::Variable(*slot), ty.clone()));
        }
        if name == FLOW_VARIABLE {
            return error(
                expr,
                "the whole _flow message cannot be used as a value; select one of its fields",
            );
        }
        error(
            expr,
            format!("undeclared reference to '{name}' (in container '{CONTAINER}')"),
        )
    }

    fn select(&mut self, expr: &Expression, select: &SelectExpr) -> Checked {
        if select.test {
            return self.has(expr, select);
        }
        match qualified_name(expr) {
            Some(segments) if segments.first() == Some(&FLOW_VARIABLE) && !self.in_scope(FLOW_VARIABLE) => {
                let (fields, ty) = self.resolve_path(expr, &segments[1..])?;
                if let Type::Message(message) = &ty {
                    return error(
                        expr,
                        format!(
                            "whole messages ({}) cannot be compared; select a field",
                            message.full_name()
                        ),
                    );
                }
                if let Type::Unsupported(name) = &ty {
                    return error(expr, format!("fields of type {name} are not supported"));
                }
                let access = match access::fast(&segments[1..]) {
                    Some(getter) => Access::Fast(getter),
                    None => Access::Dynamic(fields, ty.clone()),
                };
                Ok((Node::Field(access), ty))
            }
            Some(segments) if !self.in_scope(segments[0]) => match enum_constant(&segments) {
                Some(number) => Ok((Node::Literal(Value::Int(number.into())), Type::Int)),
                None => error(
                    expr,
                    format!(
                        "undeclared reference to '{}' (in container '{CONTAINER}')",
                        segments.join(".")
                    ),
                ),
            },
            _ => {
                let (_, ty) = self.check(&select.operand)?;
                error(
                    expr,
                    format!(
                        "selecting '{}' from a value of type {ty} is not supported",
                        select.field
                    ),
                )
            }
        }
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scope.iter().any(|(n, ..)| n == name)
    }

    /// Field descriptors of `path` below `flow.Flow` and the leaf's type.
    fn resolve_path(&self, expr: &Expression, path: &[&str]) -> Result<(Vec<FieldDescriptor>, Type), CheckError> {
        let mut message = self.flow.clone();
        let mut fields = Vec::with_capacity(path.len());
        let mut ty = Type::Message(message.clone());
        for (i, name) in path.iter().enumerate() {
            let Some(field) = message.get_field_by_name(name) else {
                return error(select_at(expr, path.len() - i - 1), format!("undefined field '{name}'"));
            };
            ty = types::field_type(&field);
            fields.push(field);
            match &ty {
                Type::Message(next) => message = next.clone(),
                _ if i + 1 < path.len() => {
                    return error(
                        select_at(expr, path.len() - i - 2),
                        format!("type '{ty}' does not support field selection"),
                    );
                }
                _ => {}
            }
        }
        Ok((fields, ty))
    }

    fn has(&mut self, expr: &Expression, select: &SelectExpr) -> Checked {
        let Some(mut segments) = qualified_name(&select.operand) else {
            return error(expr, "has() needs a field of _flow");
        };
        if segments.first() != Some(&FLOW_VARIABLE) || self.in_scope(FLOW_VARIABLE) {
            return error(expr, "has() needs a field of _flow");
        }
        segments.push(&select.field);
        let (fields, ty) = self.resolve_path(expr, &segments[1..])?;
        let path = &segments[1..];
        let has = match (&ty, access::fast(path), access::fast_presence(path)) {
            (Type::Message(_), _, Some(present)) => Has::Message(present),
            (Type::Message(_) | Type::Wrapper(_) | Type::Unsupported(_), ..) => Has::Dynamic(fields),
            (_, Some(getter), _) => Has::Scalar(getter),
            _ => Has::Dynamic(fields),
        };
        Ok((Node::Has(has), Type::Bool))
    }

    fn call(&mut self, expr: &Expression, call: &CallExpr) -> Checked {
        let name = call.func_name.as_str();
        let mut operands = Vec::with_capacity(call.args.len() + 1);
        if let Some(target) = &call.target {
            operands.push(self.check(target)?);
        }
        for arg in &call.args {
            operands.push(self.check(arg)?);
        }
        let types: Vec<&Type> = operands.iter().map(|(_, ty)| ty).collect();
        let signature = || {
            let list: Vec<String> = types.iter().map(ToString::to_string).collect();
            format!(
                "found no matching overload for '{name}' applied to '({})'",
                list.join(", ")
            )
        };
        let member = call.target.is_some();
        let ok = match (name, types.as_slice(), member) {
            (operators::LOGICAL_AND | operators::LOGICAL_OR, [a, b], false) => a.is_bool() && b.is_bool(),
            (operators::LOGICAL_NOT, [a], false) => a.is_bool(),
            (operators::EQUALS | operators::NOT_EQUALS, [a, b], false) => a.comparable_with(b),
            (
                operators::LESS | operators::LESS_EQUALS | operators::GREATER | operators::GREATER_EQUALS,
                [a, b],
                false,
            ) => a.orderable_with(b),
            (operators::IN, [a, Type::List(element)], false) => a.comparable_with(element),
            (operators::CONDITIONAL, [c, a, b], false) => c.is_bool() && a.comparable_with(b),
            (operators::INDEX, [Type::List(_), i], false) => matches!(i, Type::Int | Type::Uint | Type::Dyn),
            (operators::NEGATE, [a], false) => matches!(a.unwrapped(), Type::Int | Type::Double | Type::Dyn),
            ("size", [a], _) => matches!(a.unwrapped(), Type::String | Type::Bytes | Type::List(_) | Type::Dyn),
            ("startsWith" | "endsWith" | "contains" | "matches", [a, b], true) => {
                matches!(a.unwrapped(), Type::String | Type::Dyn) && matches!(b.unwrapped(), Type::String | Type::Dyn)
            }
            ("matches", [a, b], false) => {
                matches!(a.unwrapped(), Type::String | Type::Dyn) && matches!(b.unwrapped(), Type::String | Type::Dyn)
            }
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO
                | operators::OPT_INDEX
                | operators::OPT_SELECT,
                ..,
            ) => return error(expr, format!("the operator '{name}' is not supported by sightline")),
            (
                operators::LOGICAL_AND
                | operators::LOGICAL_OR
                | operators::LOGICAL_NOT
                | operators::EQUALS
                | operators::NOT_EQUALS
                | operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS
                | operators::IN
                | operators::CONDITIONAL
                | operators::INDEX
                | operators::NEGATE
                | "size"
                | "startsWith"
                | "endsWith"
                | "contains"
                | "matches",
                ..,
            ) => false,
            _ => {
                return error(
                    expr,
                    format!("undeclared reference to '{name}' (in container '{CONTAINER}')"),
                );
            }
        };
        if !ok {
            return error(expr, signature());
        }
        let result_type = match name {
            operators::CONDITIONAL => match (types[1], types[2]) {
                (Type::Null | Type::Dyn, other) | (other, _) => other.clone(),
            },
            operators::INDEX => match types[0] {
                Type::List(element) => (**element).clone(),
                _ => Type::Dyn,
            },
            operators::NEGATE => types[0].unwrapped().clone(),
            "size" => Type::Int,
            _ => Type::Bool,
        };
        let mut nodes = operands.into_iter().map(|(node, _)| Box::new(node));
        let mut next = || {
            nodes.next().ok_or(CheckError {
                node: expr.id,
                message: format!("missing operand of '{name}'"),
            })
        };
        let node = match name {
            operators::LOGICAL_AND => Node::And(next()?, next()?),
            operators::LOGICAL_OR => Node::Or(next()?, next()?),
            operators::LOGICAL_NOT => Node::Not(next()?),
            operators::EQUALS => Node::Compare(Compare::Equal, next()?, next()?),
            operators::NOT_EQUALS => Node::Compare(Compare::NotEqual, next()?, next()?),
            operators::LESS => Node::Compare(Compare::Less, next()?, next()?),
            operators::LESS_EQUALS => Node::Compare(Compare::LessOrEqual, next()?, next()?),
            operators::GREATER => Node::Compare(Compare::Greater, next()?, next()?),
            operators::GREATER_EQUALS => Node::Compare(Compare::GreaterOrEqual, next()?, next()?),
            operators::IN => Node::In(next()?, next()?),
            operators::CONDITIONAL => Node::Conditional(Box::new([*next()?, *next()?, *next()?])),
            operators::INDEX => Node::Index(next()?, next()?),
            operators::NEGATE => Node::Negate(next()?),
            "size" => Node::Size(next()?),
            "startsWith" => Node::StringTest(StringTest::StartsWith, next()?, next()?),
            "endsWith" => Node::StringTest(StringTest::EndsWith, next()?, next()?),
            "contains" => Node::StringTest(StringTest::Contains, next()?, next()?),
            _ => {
                let target = next()?;
                let pattern = next()?;
                match *pattern {
                    Node::Literal(Value::Str(ref text)) => match Regex::new(text) {
                        Ok(regex) => Node::Matches(target, regex),
                        Err(e) => {
                            let pattern_expr = call.args.last().unwrap_or(expr);
                            return error(pattern_expr, format!("invalid regular expression: {e}"));
                        }
                    },
                    _ => Node::MatchesDynamic(target, pattern),
                }
            }
        };
        Ok((node, result_type))
    }

    /// `exists`, `all` and `exists_one` as the parser expands them; other
    /// comprehensions (`map`, `filter`) build lists this evaluator does not keep.
    fn comprehension(&mut self, expr: &Expression, c: &ComprehensionExpr) -> Checked {
        let Some(quantifier) = quantifier_of(c) else {
            return error(expr, "only the exists(), all() and exists_one() macros are supported");
        };
        let predicate_expr = match &c.loop_step.expr {
            Expr::Call(step) if quantifier == Quantifier::ExistsOne => match step.args.first() {
                Some(condition) => condition,
                None => return error(expr, "malformed exists_one()"),
            },
            Expr::Call(step) => match step.args.as_slice() {
                [_, predicate] => predicate,
                _ => return error(expr, "malformed comprehension"),
            },
            _ => return error(expr, "malformed comprehension"),
        };
        let (range, range_type) = self.check(&c.iter_range)?;
        let Type::List(element) = range_type else {
            return error(
                &c.iter_range,
                format!("{range_type} cannot be iterated; expected a list"),
            );
        };
        let slot = self.slots;
        self.slots += 1;
        self.scope.push((c.iter_var.clone(), slot, *element));
        let checked = self.check(predicate_expr);
        self.scope.pop();
        let (predicate, ty) = checked?;
        if !ty.is_bool() {
            return error(predicate_expr, format!("the predicate gives {ty}, expected bool"));
        }
        Ok((
            Node::Quantified {
                quantifier,
                range: Box::new(range),
                slot,
                predicate: Box::new(predicate),
            },
            Type::Bool,
        ))
    }
}

/// Recognises the parser's expansion of `exists` (accumulator starts false,
/// step `acc || p`), `all` (starts true, step `acc && p`) and `exists_one`
/// (starts 0, step `p ? acc + 1 : acc`).
fn quantifier_of(c: &ComprehensionExpr) -> Option<Quantifier> {
    let Expr::Call(step) = &c.loop_step.expr else {
        return None;
    };
    let is_accumulator = |e: &Expression| matches!(&e.expr, Expr::Ident(name) if *name == c.accu_var);
    let first_is_accumulator = step.args.first().is_some_and(is_accumulator);
    match (&c.accu_init.expr, step.func_name.as_str()) {
        (Expr::Literal(LiteralValue::Boolean(b)), operators::LOGICAL_OR) if !*b.inner() && first_is_accumulator => {
            Some(Quantifier::Exists)
        }
        (Expr::Literal(LiteralValue::Boolean(b)), operators::LOGICAL_AND) if *b.inner() && first_is_accumulator => {
            Some(Quantifier::All)
        }
        (Expr::Literal(LiteralValue::Int(_)), operators::CONDITIONAL) => Some(Quantifier::ExistsOne),
        _ => None,
    }
}

fn literal_node(literal: &LiteralValue) -> (Node, Type) {
    let (value, ty) = match literal {
        LiteralValue::Boolean(b) => (Value::Bool(*b.inner()), Type::Bool),
        LiteralValue::Int(i) => (Value::Int(*i.inner()), Type::Int),
        LiteralValue::UInt(u) => (Value::Uint(*u.inner()), Type::Uint),
        LiteralValue::Double(d) => (Value::Double(*d.inner()), Type::Double),
        LiteralValue::String(s) => (Value::Str(s.inner().to_owned().into()), Type::String),
        LiteralValue::Bytes(b) => (Value::Bytes(b.inner().to_vec().into()), Type::Bytes),
        LiteralValue::Null => (Value::Null, Type::Null),
    };
    (Node::Literal(value), ty)
}

/// `a.b.c` as `["a", "b", "c"]`, when the expression is only field selections on
/// an identifier.
fn qualified_name(mut expr: &Expression) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    loop {
        match &expr.expr {
            Expr::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments);
            }
            Expr::Select(select) if !select.test => {
                segments.push(select.field.as_str());
                expr = &select.operand;
            }
            _ => return None,
        }
    }
}

/// The select node `depth` levels below `expr` (0 = `expr` itself), for
/// pointing errors at the segment that is wrong.
fn select_at(mut expr: &Expression, depth: usize) -> &Expression {
    for _ in 0..depth {
        match &expr.expr {
            Expr::Select(select) => expr = &select.operand,
            _ => break,
        }
    }
    expr
}

/// The number of `flow.Verdict.DROPPED`, `Verdict.DROPPED` or
/// `.flow.Verdict.DROPPED`, resolved in the `flow` container as cel-go does.
fn enum_constant(segments: &[&str]) -> Option<i32> {
    let (value, type_path) = segments.split_last()?;
    let type_name = type_path.join(".");
    let type_name = type_name.strip_prefix('.').unwrap_or(&type_name);
    let pool = types::pool().ok()?;
    [format!("{CONTAINER}.{type_name}"), type_name.to_owned()]
        .iter()
        .find_map(|name| pool.get_enum_by_name(name))
        .and_then(|e| e.get_value_by_name(value))
        .map(|v| v.number())
}
