//! The hot path of the JSON check: a yes/no validator over UTF-8 text, one pass, no
//! allocation, string contents skipped sixteen bytes at a time.
//!
//! It accepts exactly what the strict serde_json pass in [`super`] accepts (RFC 8259, one
//! value, nesting bounded, no lone surrogate in a `\u` escape, no number too large for a
//! double); a body it refuses goes through that pass, which has the final word and the
//! error message. `tests::agrees_with_serde_json` holds the two together.

/// serde_json refuses the 128th level of nesting whatever the configured limit.
const SERDE_MAX_DEPTH: usize = 127;
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether `text` is UTF-8 and one JSON value nested at most `max_depth` levels. (Outside
/// strings JSON is ASCII; inside them each run of non-ASCII bytes is checked as UTF-8.)
pub(super) fn is_valid(text: &[u8], max_depth: usize) -> bool {
    validate(text, max_depth.min(SERDE_MAX_DEPTH)).is_some()
}

/// One loop over the whole text with the position in a local (the helpers take and
/// return it): `Some` when the text is valid.
fn validate(b: &[u8], max_depth: usize) -> Option<()> {
    let mut i = 0usize;
    let mut depth = 0usize;
    // whether the container at depth d + 1 is an object
    let mut objects = [false; SERDE_MAX_DEPTH + 1];
    macro_rules! space {
        () => {
            while let Some(&c) = b.get(i)
                && c <= b' '
                && matches!(c, b' ' | b'\n' | b'\r' | b'\t')
            {
                i += 1;
            }
        };
    }
    // a key (from its opening quote) and its colon
    macro_rules! key {
        () => {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            i = string_end(b, i + 1)?;
            space!();
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
        };
    }
    'value: loop {
        space!();
        let c = *b.get(i)?;
        i += 1;
        match c {
            b'"' => i = string_end(b, i)?,
            b'{' | b'[' => {
                if depth >= max_depth {
                    return None;
                }
                let object = c == b'{';
                *objects.get_mut(depth)? = object;
                depth += 1;
                space!();
                if b.get(i) == Some(if object { &b'}' } else { &b']' }) {
                    i += 1;
                    depth -= 1;
                } else {
                    if object {
                        key!();
                    }
                    continue 'value;
                }
            }
            b't' => i = literal(b, i, b"rue")?,
            b'f' => i = literal(b, i, b"alse")?,
            b'n' => i = literal(b, i, b"ull")?,
            b'-' | b'0'..=b'9' => i = number_end(b, i - 1)?,
            _ => return None,
        }
        // after a value: close containers, or go on to the next element
        loop {
            space!();
            if depth == 0 {
                return (i == b.len()).then_some(());
            }
            let in_object = *objects.get(depth - 1)?;
            let c = *b.get(i)?;
            i += 1;
            match c {
                b',' => {
                    if in_object {
                        space!();
                        key!();
                    }
                    continue 'value;
                }
                b'}' if in_object => depth -= 1,
                b']' if !in_object => depth -= 1,
                _ => return None,
            }
        }
    }
}

#[inline]
fn literal(b: &[u8], i: usize, rest: &[u8]) -> Option<usize> {
    let end = i + rest.len();
    (b.get(i..end)? == rest).then_some(end)
}

/// Where the string whose contents start at `i` ends (after its closing quote).
#[inline(always)]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = plain_end(b, i);
        let c = *b.get(i)?;
        i += 1;
        match c {
            b'"' => return Some(i),
            b'\\' => i = escape_end(b, i)?,
            0x00..=0x1f => return None,
            0x80.. => i = utf8_end(b, i - 1)?,
            _ => {}
        }
    }
}

/// Where the run of non-ASCII bytes starting at `start` ends, if it is whole UTF-8 (the
/// ASCII byte after it cannot be inside a character).
#[cold]
fn utf8_end(b: &[u8], start: usize) -> Option<usize> {
    let rest = b.get(start..)?;
    let run = rest.iter().position(u8::is_ascii).unwrap_or(rest.len());
    std::str::from_utf8(rest.get(..run)?).ok()?;
    Some(start + run)
}

/// Where the run of string bytes that need no look (not a quote, backslash, control byte or
/// non-ASCII byte) starting at `i` ends, sixteen bytes at a time with SSE2 (part of every x86-64),
/// then eight at a time (`safe_arch`: the intrinsics without `unsafe`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn plain_end(b: &[u8], mut i: usize) -> usize {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, min_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    while let Some(chunk) = b.get(i..).and_then(|rest| rest.first_chunk::<16>()) {
        let v = load_unaligned_m128i(chunk);
        let quote = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8));
        let backslash = cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8));
        let control = cmp_eq_mask_i8_m128i(min_u8_m128i(v, set_splat_i8_m128i(0x1f)), v);
        // the high bit of each byte: non-ASCII
        let special = move_mask_i8_m128i(bitor_m128i(bitor_m128i(quote, backslash), control))
            | move_mask_i8_m128i(v);
        if special != 0 {
            return i + special.trailing_zeros() as usize;
        }
        i += 16;
    }
    plain_end_by_eight(b, i)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn plain_end(b: &[u8], i: usize) -> usize {
    plain_end_by_eight(b, i)
}

/// [`plain_end`] eight bytes at a time in a `u64` (the lowest flagged byte of each test is
/// exact; higher ones may be borrow noise; a byte with its high bit set is flagged as such).
#[inline(always)]
fn plain_end_by_eight(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
        let v = u64::from_le_bytes(*chunk);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        let special = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v)
            | v)
            & HIGHS;
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Where the escape whose letter is at `i` ends.
#[cold]
fn escape_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => match hex4(b, i + 1)? {
            0xD800..=0xDBFF => {
                // a high surrogate must be followed by an escaped low one
                if b.get(i + 5..i + 7)? != b"\\u" {
                    return None;
                }
                matches!(hex4(b, i + 7)?, 0xDC00..=0xDFFF).then_some(i + 11)
            }
            0xDC00..=0xDFFF => None,
            _ => Some(i + 5),
        },
        _ => None,
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let mut value = 0;
    for &d in b.get(i..i + 4)? {
        value = value * 16 + char::from(d).to_digit(16)?;
    }
    Some(value)
}

/// Where the number starting at `start` ends.
fn number_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match *b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits_end(b, i + 1),
        _ => return None,
    }
    let mut plain = i - start <= 15;
    if b.get(i) == Some(&b'.') {
        let end = digits_end(b, i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let end = digits_end(b, i);
        if end == i {
            return None;
        }
        i = end;
        plain = false;
    }
    if plain {
        return Some(i);
    }
    // long or with an exponent: it must fit a double
    let text = std::str::from_utf8(b.get(start..i)?).ok()?;
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|_| i)
}

#[inline]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while let Some(b'0'..=b'9') = b.get(i) {
        i += 1;
    }
    i
}
