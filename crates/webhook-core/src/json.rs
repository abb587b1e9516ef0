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
///
/// What destinations cannot carry is refused too: a `\u` escape of a lone UTF-16
/// surrogate, and a number too large for a double (`1e999999`, hundreds of digits). The
/// same scan that counts openers notices where those could be (a `\u` escape, a long run
/// of digits, an exponent) and sends the body down the strict path, which decodes every
/// string and number.
pub(crate) fn check(body: &[u8], max_depth: usize) -> Result<(), JsonError> {
    let text = std::str::from_utf8(body)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let (openers, suspect) = scan(body);
    if openers <= max_depth && !suspect {
        <IgnoredAny as serde::Deserialize>::deserialize(&mut deserializer)?;
    } else {
        Depth {
            remaining: max_depth,
        }
        .deserialize(&mut deserializer)?;
    }
    Ok(deserializer.end()?)
}

/// Digits in a row past which a number may not fit a double (or a consumer's integer).
const LONG_NUMBER: usize = 300;

/// The `[`/`{` count, and whether the body may hold a lone surrogate or an oversized number.
fn scan(body: &[u8]) -> (usize, bool) {
    let mut openers = 0;
    let mut digits = 0usize;
    let mut suspect = false;
    let mut previous = 0u8;
    for &b in body {
        match b {
            b'[' | b'{' => openers += 1,
            b'0'..=b'9' => {
                digits += 1;
                suspect |= digits > LONG_NUMBER;
            }
            b'u' => suspect |= previous == b'\\',
            b'e' | b'E' => suspect |= previous.is_ascii_digit() || previous == b'.',
            _ => {}
        }
        if !b.is_ascii_digit() {
            digits = 0;
        }
        previous = b;
    }
    (openers, suspect)
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
    fn visit_f64<E: Error>(self, value: f64) -> Result<(), E> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(E::custom("number out of range"))
        }
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
        // keys decoded too (a lone surrogate in a key is refused like one in a value)
        while map.next_key_seed(inner)?.is_some() {
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

    #[test]
    fn what_destinations_cannot_carry_is_refused() {
        assert!(check(br#"{"a":"\ud800"}"#, 50).is_err(), "lone surrogate");
        assert!(
            check(br#"{"\udc00":1}"#, 50).is_err(),
            "lone surrogate in a key"
        );
        assert!(
            check(br#"{"a":"\ud83d\ude00 \u00e9"}"#, 50).is_ok(),
            "a pair is fine"
        );
        assert!(check(b"[1e999999]", 50).is_err());
        assert!(check(format!("[{}]", "9".repeat(1000)).as_bytes(), 50).is_err());
        assert!(check(b"[1.5e10, 2E-3, 12345678901234567890]", 50).is_ok());
        assert!(check(br#"{"word": "e1e2", "x": "\\u"}"#, 50).is_ok());
    }
}
