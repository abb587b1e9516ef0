//! Headers configured for a destination.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use webhook_core::BuildError;

/// The `headers` of a destination config as a [`HeaderMap`]; a name that is not valid, or
/// that `reserved` refuses, is an error naming `headers.<name>`.
pub fn parse_headers(
    configured: &std::collections::BTreeMap<String, String>,
    reserved: fn(&HeaderName) -> bool,
) -> Result<HeaderMap, BuildError> {
    let mut headers = HeaderMap::new();
    for (name, value) in configured {
        let key = format!("headers.{name}");
        let parsed_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError::key(key.clone(), "is not a valid header name"))?;
        if reserved(&parsed_name) {
            return Err(BuildError::key(key, "is set by the client itself"));
        }
        let parsed_value = HeaderValue::from_str(value)
            .map_err(|_| BuildError::key(key, "has a value that is not a valid header value"))?;
        headers.insert(parsed_name, parsed_value);
    }
    Ok(headers)
}
