//! Runtime values of the evaluator. They borrow from the flow record or the
//! compiled expression wherever they can, so a typical evaluation allocates nothing.

use std::borrow::Cow;
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    /// A repeated string field, borrowed as it is stored.
    Strings(&'a [String]),
    List(Vec<Value<'a>>),
}

impl<'a> Value<'a> {
    /// The same value, borrowing from `self` instead of owning.
    pub(super) fn reborrow(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Uint(u) => Value::Uint(*u),
            Value::Double(d) => Value::Double(*d),
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Bytes(b) => Value::Bytes(Cow::Borrowed(b)),
            Value::Strings(list) => Value::Strings(list),
            Value::List(items) => Value::List(items.iter().map(Value::reborrow).collect()),
        }
    }

    /// Whether a proto3 field holding this value counts as present (`has()`).
    pub(super) fn is_set(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Double(d) => *d != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::Strings(list) => !list.is_empty(),
            Value::List(items) => !items.is_empty(),
        }
    }

    pub(super) fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) => Some(s.chars().count()),
            Value::Bytes(b) => Some(b.len()),
            Value::Strings(list) => Some(list.len()),
            Value::List(items) => Some(items.len()),
            _ => None,
        }
    }

    /// Element `index` of a list.
    pub(super) fn item(&self, index: usize) -> Option<Value<'_>> {
        match self {
            Value::Strings(list) => list.get(index).map(|s| Value::Str(Cow::Borrowed(s.as_str()))),
            Value::List(items) => items.get(index).map(Value::reborrow),
            _ => None,
        }
    }

    /// Element `index` of a list, with the list's own lifetime.
    pub(super) fn element(&self, index: usize) -> Option<Value<'a>> {
        match self {
            Value::Strings(list) => list.get(index).map(|s| Value::Str(Cow::Borrowed(s.as_str()))),
            Value::List(items) => items.get(index).cloned(),
            _ => None,
        }
    }

    /// CEL equality: numbers compare across int, uint and double by value.
    pub(super) fn equals(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Null, Value::Null) => true,
            (a, b) if a.len().is_some() && b.len().is_some() => {
                a.len() == b.len()
                    && (0..a.len().unwrap_or(0)).all(|i| match (a.item(i), b.item(i)) {
                        (Some(x), Some(y)) => x.equals(&y),
                        _ => false,
                    })
            }
            (a, b) => a.compare(b) == Some(Ordering::Equal),
        }
    }

    /// CEL ordering; `None` where the operands have no order.
    pub(super) fn compare(&self, other: &Value<'_>) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Uint(a), Value::Uint(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Uint(b)) => Some(compare_int_uint(*a, *b)),
            (Value::Uint(a), Value::Int(b)) => Some(compare_int_uint(*b, *a).reverse()),
            (Value::Double(a), b) => a.partial_cmp(&b.as_double()?),
            (a, Value::Double(b)) => a.as_double()?.partial_cmp(b),
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    fn as_double(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Uint(u) => Some(*u as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }
}

fn compare_int_uint(int: i64, uint: u64) -> Ordering {
    u64::try_from(int).map_or(Ordering::Less, |int| int.cmp(&uint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_signedness_by_value() {
        assert!(Value::Int(53).equals(&Value::Uint(53)));
        assert!(!Value::Int(-1).equals(&Value::Uint(u64::MAX)));
        assert_eq!(Value::Int(-1).compare(&Value::Uint(0)), Some(Ordering::Less));
        assert_eq!(Value::Uint(2).compare(&Value::Double(1.5)), Some(Ordering::Greater));
        assert_eq!(Value::Str("a".into()).compare(&Value::Int(1)), None);
    }

    #[test]
    fn borrowed_string_lists_equal_literal_lists() {
        let stored = vec!["a".to_owned(), "b".to_owned()];
        let literal = Value::List(vec![Value::Str("a".into()), Value::Str("b".into())]);
        assert!(Value::Strings(&stored).equals(&literal));
        assert!(!Value::Strings(&stored[..1]).equals(&literal));
    }
}
