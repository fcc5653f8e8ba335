//! The compiled form of one expression and its evaluation over a flow. Errors
//! follow CEL: `&&` and `||` absorb an error on either side when the other side
//! decides the result; any other error makes the whole expression an error,
//! which the filter treats as "no match".

use std::cmp::Ordering;

use regex::Regex;

use super::access::{Access, FlowView, Has};
use super::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StringTest {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quantifier {
    Exists,
    All,
    ExistsOne,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Literal(Value<'static>),
    Field(Access),
    Has(Has),
    /// A comprehension variable, by slot.
    Variable(usize),
    List(Vec<Node>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Conditional(Box<[Node; 3]>),
    Compare(Compare, Box<Node>, Box<Node>),
    In(Box<Node>, Box<Node>),
    Index(Box<Node>, Box<Node>),
    Size(Box<Node>),
    Negate(Box<Node>),
    StringTest(StringTest, Box<Node>, Box<Node>),
    /// `matches` with a literal pattern, compiled once.
    Matches(Box<Node>, Regex),
    MatchesDynamic(Box<Node>, Box<Node>),
    Quantified {
        quantifier: Quantifier,
        range: Box<Node>,
        slot: usize,
        predicate: Box<Node>,
    },
}

/// A runtime error: the expression does not match this flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EvalError;

type Result<T> = std::result::Result<T, EvalError>;

pub(super) struct Evaluation<'a> {
    pub view: FlowView<'a>,
    /// Comprehension variables; values borrow from the flow or the program.
    pub slots: Vec<Value<'a>>,
}

fn bool_of(value: &Value<'_>) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        _ => Err(EvalError),
    }
}

fn str_of<'v>(value: &'v Value<'_>) -> Result<&'v str> {
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(EvalError),
    }
}

impl Node {
    pub(super) fn matches<'a>(&'a self, evaluation: &mut Evaluation<'a>) -> bool {
        self.eval_bool(evaluation) == Ok(true)
    }

    /// Boolean nodes answer here without building a [`Value`]: returning one
    /// through memory after it was written field by field stalls store
    /// forwarding on every node, most of a typical expression's cost.
    fn eval_bool<'a>(&'a self, ev: &mut Evaluation<'a>) -> Result<bool> {
        match self {
            Node::And(left, right) => logical(ev, left, right, false),
            Node::Or(left, right) => logical(ev, left, right, true),
            Node::Not(inner) => Ok(!inner.eval_bool(ev)?),
            Node::Has(has) => ev.view.has(has).ok_or(EvalError),
            Node::Compare(op, left, right) => {
                let (left, right) = (operand(left, ev)?, operand(right, ev)?);
                Ok(match op {
                    Compare::Equal => left.equals(&right),
                    Compare::NotEqual => !left.equals(&right),
                    ordering => {
                        let order = left.compare(&right).ok_or(EvalError)?;
                        match ordering {
                            Compare::Less => order == Ordering::Less,
                            Compare::LessOrEqual => order != Ordering::Greater,
                            Compare::Greater => order == Ordering::Greater,
                            _ => order != Ordering::Less,
                        }
                    }
                })
            }
            Node::In(element, list) => {
                let (element, list) = (operand(element, ev)?, operand(list, ev)?);
                let len = list.len().ok_or(EvalError)?;
                Ok((0..len).any(|i| list.item(i).is_some_and(|item| item.equals(&element))))
            }
            Node::StringTest(test, target, argument) => {
                let (target, argument) = (operand(target, ev)?, operand(argument, ev)?);
                let (target, argument) = (str_of(&target)?, str_of(&argument)?);
                Ok(match test {
                    StringTest::StartsWith => target.starts_with(argument),
                    StringTest::EndsWith => target.ends_with(argument),
                    StringTest::Contains => target.contains(argument),
                })
            }
            Node::Matches(target, regex) => Ok(regex.is_match(str_of(&operand(target, ev)?)?)),
            Node::Quantified {
                quantifier,
                range,
                slot,
                predicate,
            } => quantified(ev, *quantifier, range, *slot, predicate),
            other => bool_of(&other.eval(ev)?),
        }
    }

    fn eval<'a>(&'a self, ev: &mut Evaluation<'a>) -> Result<Value<'a>> {
        Ok(match self {
            Node::Literal(value) => value.reborrow(),
            Node::Field(access) => ev.view.read(access).ok_or(EvalError)?,
            Node::Variable(slot) => ev.slots.get(*slot).cloned().ok_or(EvalError)?,
            Node::List(items) => Value::List(items.iter().map(|n| n.eval(ev)).collect::<Result<_>>()?),
            Node::Has(_)
            | Node::Not(_)
            | Node::And(..)
            | Node::Or(..)
            | Node::Compare(..)
            | Node::In(..)
            | Node::StringTest(..)
            | Node::Matches(..)
            | Node::Quantified { .. } => Value::Bool(self.eval_bool(ev)?),
            Node::Conditional(parts) => {
                let [condition, then, otherwise] = parts.as_ref();
                if condition.eval_bool(ev)? {
                    then.eval(ev)?
                } else {
                    otherwise.eval(ev)?
                }
            }
            Node::Index(list, index) => {
                let (list, index) = (list.eval(ev)?, index.eval(ev)?);
                let index = match index {
                    Value::Int(i) => usize::try_from(i).map_err(|_| EvalError)?,
                    Value::Uint(u) => usize::try_from(u).map_err(|_| EvalError)?,
                    _ => return Err(EvalError),
                };
                list.element(index).ok_or(EvalError)?
            }
            Node::Size(inner) => {
                let len = inner.eval(ev)?.len().ok_or(EvalError)?;
                Value::Int(i64::try_from(len).map_err(|_| EvalError)?)
            }
            Node::Negate(inner) => match inner.eval(ev)? {
                Value::Int(i) => Value::Int(i.checked_neg().ok_or(EvalError)?),
                Value::Double(d) => Value::Double(-d),
                _ => return Err(EvalError),
            },
            Node::MatchesDynamic(target, pattern) => {
                let (target, pattern) = (target.eval(ev)?, pattern.eval(ev)?);
                let regex = Regex::new(str_of(&pattern)?).map_err(|_| EvalError)?;
                Value::Bool(regex.is_match(str_of(&target)?))
            }
        })
    }
}

/// The value of an operand; literals and direct reads inline.
#[inline(always)]
fn operand<'a>(node: &'a Node, ev: &mut Evaluation<'a>) -> Result<Value<'a>> {
    match node {
        Node::Literal(value) => Ok(value.reborrow()),
        Node::Field(Access::Fast(get)) => Ok(get(ev.view.record)),
        other => other.eval(ev),
    }
}

/// `&&` (`absorbing` = false) and `||` (`absorbing` = true) with CEL's
/// commutative error handling.
fn logical<'a>(ev: &mut Evaluation<'a>, left: &'a Node, right: &'a Node, absorbing: bool) -> Result<bool> {
    let left = left.eval_bool(ev);
    if left == Ok(absorbing) {
        return Ok(absorbing);
    }
    match (left, right.eval_bool(ev)) {
        (_, Ok(value)) if value == absorbing => Ok(absorbing),
        (Ok(_), Ok(_)) => Ok(!absorbing),
        _ => Err(EvalError),
    }
}

fn quantified<'a>(
    ev: &mut Evaluation<'a>,
    quantifier: Quantifier,
    range: &'a Node,
    slot: usize,
    predicate: &'a Node,
) -> Result<bool> {
    let range = operand(range, ev)?;
    let len = range.len().ok_or(EvalError)?;
    if ev.slots.len() <= slot {
        ev.slots.resize(slot + 1, Value::Null);
    }
    let mut hits = 0usize;
    let mut error = false;
    for i in 0..len {
        ev.slots[slot] = range.element(i).ok_or(EvalError)?;
        match (quantifier, predicate.eval_bool(ev)) {
            (Quantifier::Exists, Ok(true)) => return Ok(true),
            (Quantifier::All, Ok(false)) => return Ok(false),
            (Quantifier::ExistsOne, Ok(true)) => hits += 1,
            (Quantifier::ExistsOne, Err(_)) => return Err(EvalError),
            (_, Err(_)) => error = true,
            _ => {}
        }
    }
    match quantifier {
        _ if error => Err(EvalError),
        Quantifier::Exists => Ok(false),
        Quantifier::All => Ok(true),
        Quantifier::ExistsOne => Ok(hits == 1),
    }
}
