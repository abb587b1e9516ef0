//! A JSON validity check bounded in nesting depth, without building a tree.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonError {
    #[error("not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error(transparent)]
    Syntax(#[from] serde_json::Error),
}

/// Check that `body` is one JSON value nested at most `max_depth` levels.
///
/// UTF-8 is validated once over the whole body (fast), then the text is parsed as a `str`
/// so strings are not validated again one by one. Nesting needs tracking only when the
/// body holds more `[`/`{` bytes than `max_depth` (fewer cannot nest deeper); otherwise
/// serde_json's value skipping, its fastest path, does the whole check.
pub(crate) fn check(body: &[u8], max_depth: usize) -> Result<(), JsonError> {
    let text = std::str::from_utf8(body)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let openers = body.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if openers <= max_depth {
        <IgnoredAny as serde::Deserialize>::deserialize(&mut deserializer)?;
    } else {
        Depth {
            remaining: max_depth,
        }
        .deserialize(&mut deserializer)?;
    }
    Ok(deserializer.end()?)
}

#[derive(Clone, Copy)]
struct Depth {
    remaining: usize,
}

impl Depth {
    fn enter<E: Error>(self) -> Result<Depth, E> {
        match self.remaining.checked_sub(1) {
            Some(remaining) => Ok(Depth { remaining }),
            None => Err(E::custom("JSON nested too deeply")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Depth {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Depth {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.enter()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_invalid_and_depth() {
        assert!(check(br#"{"a": [1, 2, {"b": null}], "c": "\u00e9"}"#, 50).is_ok());
        assert!(check(b"  42  ", 50).is_ok());
        assert!(check(b"{\"a\": 1", 50).is_err());
        assert!(check(b"{} {}", 50).is_err());
        assert!(check(b"", 50).is_err());
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check(nested(50).as_bytes(), 50).is_ok());
        assert!(check(nested(51).as_bytes(), 50).is_err());
        // brackets inside strings count as openers but not as nesting: the exact path decides
        let many_in_strings = format!(r#"{{"a": "{}", "b": [[1]]}}"#, "[".repeat(100));
        assert!(check(many_in_strings.as_bytes(), 50).is_ok());
        let deep_with_strings = format!(
            r#"{}"{}"{}"#,
            "[".repeat(51),
            "{".repeat(10),
            "]".repeat(51)
        );
        assert!(check(deep_with_strings.as_bytes(), 50).is_err());
        // both paths reject the same malformed input
        assert!(check(b"[1, 2,]", 50).is_err());
        assert!(check(format!("[{}1,]", "[1],".repeat(60)).as_bytes(), 50).is_err());
        assert!(check(b"\"\xff\"", 50).is_err());
    }
}
