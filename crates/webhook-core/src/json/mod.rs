//! A JSON validity check bounded in nesting depth, without building a tree.

use std::fmt;

mod fast;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

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
/// [`fast::is_valid`] checks the bytes in one pass without allocating, UTF-8 included. Only a body it refuses goes through serde_json, strictly
/// (strings decoded where they hold escapes, numbers parsed), which has the final word and
/// the error message. Both refuse what destinations cannot carry: a `\u` escape of a lone
/// UTF-16 surrogate, and a number too large for a double (`1e999999`, hundreds of digits).
///
/// (The 2.2 KB push body: 17.5k instructions; the serde_json pass alone, 33k; the
/// pre-scan this replaced, which chose between it and serde_json's value skipping, 71k;
/// BENCHMARKS.md, issue 19.)
pub(crate) fn check(body: &[u8], max_depth: usize) -> Result<(), JsonError> {
    if fast::is_valid(body, max_depth) {
        return Ok(());
    }
    strict(std::str::from_utf8(body)?, max_depth)
}

/// The serde_json pass: the reference the fast validator is held to.
fn strict(text: &str, max_depth: usize) -> Result<(), JsonError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Depth {
        remaining: max_depth,
    }
    .deserialize(&mut deserializer)?;
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
    use super::{check, fast, strict};

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const STRING_PIECES: &[&str] = &[
        "a",
        "hello world",
        "xxxxxxxxxxxxxxxxxxxxxxxx",
        "\\\"",
        "\\\\",
        "\\n",
        "\\/",
        "\\u00e9",
        "\\ud83d\\ude00",
        "\\ud800",
        "\\udc00",
        "\\ud800\\u0041",
        "\\ud800x",
        "\\uD83D\\uDE00",
        "\\x",
        "\\u12",
        "\\u12g4",
        "\u{e9}",
        "\u{1f600}",
        "\u{7f}",
        "\u{4e2d}\u{6587}\u{e9}\u{1f600}\u{10ffff}",
        "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        "\t",
        "\u{1}",
        "[{",
        "}]",
        ",:",
        "0123456789abcdef",
    ];
    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "7",
        "-12",
        "3.25",
        "1e5",
        "1E+5",
        "2.5e-3",
        "1e308",
        "1.7976931348623157e308",
        "1e309",
        "1e999999",
        "-1e999999",
        "1e-999999",
        "12345678901234567890",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "0x10",
        "1.5e",
        "00",
        "-01",
        "9007199254740993",
    ];
    const SPACE: &[&str] = &["", "", "", " ", "\n", "\r\n", "\t", "  "];

    fn string(rng: &mut Rng, out: &mut String) {
        out.push('"');
        for _ in 0..rng.below(4) {
            out.push_str(rng.pick(STRING_PIECES));
        }
        out.push('"');
    }

    fn value(rng: &mut Rng, depth: usize, out: &mut String) {
        out.push_str(rng.pick(SPACE));
        let kind = if depth > 60 {
            2 + rng.below(4)
        } else {
            rng.below(7)
        };
        match kind {
            0 | 6 => {
                out.push('[');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    value(rng, depth + 1, out);
                }
                out.push_str(rng.pick(SPACE));
                out.push(']');
            }
            1 => {
                out.push('{');
                for i in 0..rng.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(rng.pick(SPACE));
                    string(rng, out);
                    out.push_str(rng.pick(SPACE));
                    out.push(':');
                    value(rng, depth + 1, out);
                }
                out.push_str(rng.pick(SPACE));
                out.push('}');
            }
            2 => string(rng, out),
            3 => {
                out.push_str(rng.pick(NUMBERS));
                if rng.below(8) == 0 {
                    out.push_str(&"9".repeat(rng.below(400)));
                    out.push_str(rng.pick(&["", "e-400", "e5", ".5", "e-5"]));
                }
            }
            4 => out.push_str(rng.pick(&["true", "false", "null", "tru", "nul", "nulll"])),
            _ => {
                // deep nesting around the limits
                let n = rng.below(140);
                let open = rng.pick(&["[", "{\"k\":"]);
                out.push_str(&open.repeat(n));
                out.push('1');
                let close = if open == "[" { "]" } else { "}" };
                out.push_str(&close.repeat(n));
            }
        }
        out.push_str(rng.pick(SPACE));
    }

    fn mutate(rng: &mut Rng, text: &str) -> Vec<u8> {
        let mut bytes = text.as_bytes().to_vec();
        for _ in 0..rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                0 => {
                    bytes.remove(at);
                }
                1 => {
                    // \xc3 and \xa9 make é, and each alone breaks UTF-8
                    let set = b"\"{}[],:\\ 0e.-u\x01\xc3\xa9\xf0\x80";
                    bytes.insert(at, set[rng.below(set.len())]);
                }
                2 => bytes.truncate(at),
                _ => {
                    let end = (at + rng.below(8)).min(bytes.len());
                    let piece = bytes[at..end].to_vec();
                    bytes.splice(at..at, piece);
                }
            }
        }
        bytes
    }

    /// The fast validator says yes exactly when serde_json's strict pass does, on random
    /// valid and broken documents (strings, escapes, surrogates, numbers, nesting).
    #[test]
    fn agrees_with_serde_json() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut valid, mut total) = (0, 0);
        for case in 0..60_000 {
            let mut text = String::new();
            value(&mut rng, 0, &mut text);
            let bytes = if case % 2 == 0 {
                text.into_bytes()
            } else {
                mutate(&mut rng, &text)
            };
            for max_depth in [3, 50, 200] {
                let text = String::from_utf8_lossy(&bytes);
                let reference =
                    std::str::from_utf8(&bytes).is_ok() && strict(&text, max_depth).is_ok();
                assert_eq!(
                    fast::is_valid(&bytes, max_depth),
                    reference,
                    "max_depth {max_depth}: {text:?}"
                );
                total += 1;
                valid += usize::from(reference);
            }
        }
        // both kinds are well represented
        assert!(
            valid > total / 5 && valid < total * 4 / 5,
            "{valid} of {total}"
        );
    }

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
        // brackets inside strings are not nesting
        let many_in_strings = format!(r#"{{"a": "{}", "b": [[1]]}}"#, "[".repeat(100));
        assert!(check(many_in_strings.as_bytes(), 50).is_ok());
        let deep_with_strings = format!(
            r#"{}"{}"{}"#,
            "[".repeat(51),
            "{".repeat(10),
            "]".repeat(51)
        );
        assert!(check(deep_with_strings.as_bytes(), 50).is_err());
        // malformed input, short and long
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
