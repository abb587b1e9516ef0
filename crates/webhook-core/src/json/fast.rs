//! The hot path of the JSON check: a yes/no validator over UTF-8 text, one pass, no
//! allocation, string contents skipped eight bytes at a time.
//!
//! It accepts exactly what the strict serde_json pass in [`super`] accepts (RFC 8259, one
//! value, nesting bounded, no lone surrogate in a `\u` escape, no number too large for a
//! double); a body it refuses goes through that pass, which has the final word and the
//! error message. `tests::agrees_with_serde_json` holds the two together.

/// serde_json refuses the 128th level of nesting whatever the configured limit.
const SERDE_MAX_DEPTH: usize = 127;

/// Nesting levels the container stack holds (a bit per level: object or array).
const STACK_BITS: usize = 128;

/// Whether `text` (valid UTF-8) is one JSON value nested at most `max_depth` levels.
pub(super) fn is_valid(text: &[u8], max_depth: usize) -> bool {
    Validator {
        b: text,
        i: 0,
        max_depth: max_depth.min(SERDE_MAX_DEPTH),
        depth: 0,
        objects: [0; STACK_BITS / 64],
    }
    .run()
    .is_some()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

struct Validator<'a> {
    b: &'a [u8],
    i: usize,
    max_depth: usize,
    depth: usize,
    /// Bit `d` set: the container at depth `d + 1` is an object.
    objects: [u64; STACK_BITS / 64],
}

impl Validator<'_> {
    /// `Some` when the input is valid.
    fn run(&mut self) -> Option<()> {
        'value: loop {
            self.skip_space();
            match self.next()? {
                b'{' => {
                    self.enter(true)?;
                    self.skip_space();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        self.key()?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.enter(false)?;
                    self.skip_space();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        self.depth -= 1;
                    } else {
                        continue 'value;
                    }
                }
                b'"' => self.string()?,
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // after a value: close containers, or go on to the next element
            loop {
                self.skip_space();
                if self.depth == 0 {
                    return (self.i == self.b.len()).then_some(());
                }
                let in_object = self.in_object();
                match self.next()? {
                    b',' if in_object => {
                        self.skip_space();
                        self.key()?;
                        continue 'value;
                    }
                    b',' => continue 'value,
                    b'}' if in_object => self.depth -= 1,
                    b']' if !in_object => self.depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.i += 1;
        Some(byte)
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn enter(&mut self, object: bool) -> Option<()> {
        if self.depth >= self.max_depth {
            return None;
        }
        let (word, bit) = (self.depth / 64, self.depth % 64);
        let slot = self.objects.get_mut(word)?;
        if object {
            *slot |= 1 << bit;
        } else {
            *slot &= !(1 << bit);
        }
        self.depth += 1;
        Some(())
    }

    fn in_object(&self) -> bool {
        let level = self.depth - 1;
        self.objects
            .get(level / 64)
            .is_some_and(|word| word & (1 << (level % 64)) != 0)
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<()> {
        if self.next()? != b'"' {
            return None;
        }
        self.string()?;
        self.skip_space();
        (self.next()? == b':').then_some(())
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        let end = self.i + rest.len();
        (self.b.get(self.i..end)? == rest).then(|| self.i = end)
    }

    /// The rest of a string, after its opening quote.
    fn string(&mut self) -> Option<()> {
        loop {
            // eight bytes at a time up to the first quote, backslash or control byte (the
            // lowest flagged byte of each test is exact; higher ones may be borrow noise)
            while let Some(chunk) = self.b.get(self.i..self.i + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let v = u64::from_le_bytes(word);
                let quote = v ^ (ONES * u64::from(b'"'));
                let backslash = v ^ (ONES * u64::from(b'\\'));
                let special = (quote.wrapping_sub(ONES) & !quote)
                    | (backslash.wrapping_sub(ONES) & !backslash)
                    | (v.wrapping_sub(ONES * 0x20) & !v);
                let special = special & HIGHS;
                if special == 0 {
                    self.i += 8;
                } else {
                    self.i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
            }
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => self.escape()?,
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// An escape, after its backslash.
    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => match self.hex4()? {
                0xD800..=0xDBFF => {
                    // a high surrogate must be followed by an escaped low one
                    if self.next()? != b'\\' || self.next()? != b'u' {
                        return None;
                    }
                    matches!(self.hex4()?, 0xDC00..=0xDFFF).then_some(())
                }
                0xDC00..=0xDFFF => None,
                _ => Some(()),
            },
            _ => None,
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut value = 0;
        for &d in digits {
            value = value * 16 + char::from(d).to_digit(16)?;
        }
        self.i += 4;
        Some(value)
    }

    /// A number, from its first byte (already read).
    fn number(&mut self) -> Option<()> {
        let start = self.i - 1;
        let first = match self.b.get(start)? {
            b'-' => self.next()?,
            &digit => digit,
        };
        match first {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut plain = self.i - start <= 15;
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            plain = false;
        }
        if plain {
            return Some(());
        }
        // long or with an exponent: it must fit a double
        let text = std::str::from_utf8(self.b.get(start..self.i)?).ok()?;
        text.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|_| ())
    }

    /// Digits from here on; how many.
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }
}
