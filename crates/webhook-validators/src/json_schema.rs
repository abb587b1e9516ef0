//! `json_schema`: the body must match a JSON Schema (422 otherwise), checked with the
//! `jsonschema` crate (drafts 4, 6, 7, 2019-09, 2020-12; remote `$ref`s are not fetched).
//!
//! Validation builds the body's tree in memory (about 40 times its size for small values),
//! so bodies over [`MAX_SCHEMA_BODY_BYTES`] are refused with 413 before any parsing: with the
//! check running on a worker thread, that bounds its memory to a few tens of MiB per thread.

use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// Largest body a schema is checked against (1 MiB).
pub const MAX_SCHEMA_BODY_BYTES: usize = 1024 * 1024;

/// `json_schema`: the webhook's body must be JSON matching the schema.
pub struct JsonSchema {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

impl Validator for JsonSchema {
    const KEY: &'static str = "json_schema";
    type Config = serde_json::Value;

    fn build(schema: serde_json::Value) -> Result<Self, BuildError> {
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| BuildError::other(format!("is not a valid JSON Schema: {e}")))?;
        Ok(Self { validator })
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        if request.body.len() > MAX_SCHEMA_BODY_BYTES {
            return Check::Reject(Rejection::too_large("body_too_large_for_schema"));
        }
        let Ok(instance) = serde_json::from_slice::<serde_json::Value>(request.body) else {
            return Check::Reject(Rejection::bad_request("malformed_json"));
        };
        if self.validator.is_valid(&instance) {
            Check::Pass
        } else {
            Check::Reject(Rejection::unprocessable("schema_mismatch"))
        }
    }
}
