//! Schema pieces several fields share: Kubernetes duration strings and lists of
//! fixed names, so the API server rejects a typo at `kubectl apply`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A Go/Kubernetes duration (`8760h`, `1m30s`, `500ms`): one or more number+unit
/// pairs, no sign, so a negative or unparsable value never reaches the operator.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

/// A string-typed duration in the schema: `type: string` with [`DURATION_PATTERN`].
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": 64,
    })
}

/// An optional duration (the same schema; absence is expressed by the field being unset).
pub fn optional_duration(generator: &mut SchemaGenerator) -> Schema {
    duration(generator)
}

/// A list whose items must be one of `names`.
pub fn list_of(names: &[&str]) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "string", "enum": names },
    })
}

/// The JSON schema of `T` with one extra keyword, for fields the derive cannot annotate.
pub fn with_keyword<T: JsonSchema>(generator: &mut SchemaGenerator, key: &str, value: serde_json::Value) -> Schema {
    let mut schema = T::json_schema(generator);
    schema.insert(key.to_owned(), value);
    schema
}
