//! JavaScript's value conversions as SuperInsights 1.x applied them to ingested JSON: truthiness,
//! `Number(x)`, `String(x)`, `new Date(string)` (V8's parser: ISO first, then the legacy forms),
//! and the value text Mongoose puts in its cast errors. Pure functions over `serde_json::Value`;
//! which field gets which conversion is decided in [`super::parse`], not here.

use serde_json::{Map, Value};

/// JavaScript truthiness of a JSON value (`NaN` cannot occur in JSON).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A JSON number as JavaScript holds it (every number is a double).
pub fn number_of(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// `Number(v)`.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => number_of(n),
        Value::String(s) => string_to_number(s),
        Value::Array(_) => string_to_number(&to_js_string(v)),
        Value::Object(_) => f64::NAN,
    }
}

/// `String(v)`: arrays join their elements with `,` (null elements empty), objects are
/// `[object Object]`.
pub fn to_js_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(number_of(n)),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Null => String::new(),
                other => to_js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// JavaScript's white space and line terminators (what `trim()` and `Number()` strip). Unlike
/// Rust's `char::is_whitespace` it includes U+FEFF and excludes U+0085.
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

/// `String.prototype.trim`.
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// `Number(string)`: trimmed; empty is 0; `0x`/`0o`/`0b` integers; `Infinity` with a sign;
/// decimal literals with an optional sign and exponent. Anything else is `NaN`.
pub fn string_to_number(s: &str) -> f64 {
    let s = js_trim(s);
    if s.is_empty() {
        return 0.0;
    }
    let radix_of = |p: &str| match p {
        "0x" | "0X" => Some(16),
        "0o" | "0O" => Some(8),
        "0b" | "0B" => Some(2),
        _ => None,
    };
    if let Some(radix) = s.get(..2).and_then(radix_of) {
        let digits = &s[2..];
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return f64::NAN;
        }
        return digits.chars().fold(0.0, |acc, c| {
            acc * f64::from(radix) + f64::from(c.to_digit(radix).unwrap_or(0))
        });
    }
    let (sign, body) = match s.as_bytes()[0] {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    if body == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(body) {
        return f64::NAN;
    }
    body.parse::<f64>().map(|f| sign * f).unwrap_or(f64::NAN)
}

/// `digits [. digits] [e[+-]digits]` or `. digits [exponent]`, ASCII digits only.
fn is_decimal_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

/// `Number.prototype.toString()`: the shortest digits that round-trip, in plain notation for
/// magnitudes in [1e-6, 1e21), else as `d.ddde±n`.
pub fn number_to_string(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f == 0.0 {
        return "0".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f < 0.0 {
        return format!("-{}", number_to_string(-f));
    }
    // Rust's `{:e}` prints the shortest round-tripping digits: "1.2345e4".
    let formatted = format!("{f:e}");
    let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let e = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{e}")
        } else {
            format!("{}.{}e{sign}{e}", &digits[..1], &digits[1..])
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mongoose's cast error text
// ---------------------------------------------------------------------------------------------

/// The value part of a Mongoose cast error: Node's `util.inspect` of the value (single-line form,
/// depth 2), with its outer single quotes turned into double quotes, always double-quoted.
pub fn cast_error_value(v: &Value) -> String {
    let mut s = inspect(v, 0);
    if s.starts_with('\'') {
        s.replace_range(..1, "\"");
    }
    if s.len() > 1 && s.ends_with('\'') {
        s.replace_range(s.len() - 1.., "\"");
    }
    if s.starts_with('"') {
        s
    } else {
        format!("\"{s}\"")
    }
}

/// The type name Mongoose shows beside a failed value.
pub fn cast_error_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

fn inspect(v: &Value, depth: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let f = number_of(n);
            if f == 0.0 && f.is_sign_negative() {
                "-0".into()
            } else {
                number_to_string(f)
            }
        }
        Value::String(s) => quote(s),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Array(_) if depth >= 3 => "[Array]".into(),
        Value::Array(items) => format!(
            "[ {} ]",
            items
                .iter()
                .map(|i| inspect(i, depth + 1))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Object(_) if depth >= 3 => "[Object]".into(),
        Value::Object(map) => format!("{{ {} }}", inspect_entries(map, depth)),
    }
}

fn inspect_entries(map: &Map<String, Value>, depth: usize) -> String {
    map.iter()
        .map(|(k, v)| {
            let identifier = k
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
            let key = if identifier { k.clone() } else { quote(k) };
            format!("{key}: {}", inspect(v, depth + 1))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Node's string quoting: single quotes, else double quotes if the text has a single quote, else
/// backticks if it also has a double quote, else single quotes with escapes.
fn quote(s: &str) -> String {
    let q = if !s.contains('\'') {
        '\''
    } else if !s.contains('"') {
        '"'
    } else if !s.contains('`') && !s.contains("${") {
        '`'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

// ---------------------------------------------------------------------------------------------
// new Date(string), as V8 parses it
// ---------------------------------------------------------------------------------------------

/// Largest magnitude of a JavaScript time value, in milliseconds.
const TIME_LIMIT_MS: f64 = 8.64e15;

/// `new Date(n).getTime()` for a number: truncated, `None` outside JavaScript's range.
pub fn date_from_number(n: f64) -> Option<i64> {
    (n.is_finite() && n.abs() <= TIME_LIMIT_MS).then(|| n.trunc() as i64)
}

/// `new Date(s).getTime()` the way Node (V8) computes it, in a process whose local zone is UTC
/// (SuperInsights 1.x's container): an ISO 8601 date-time, else the legacy forms browsers accept
/// (`Nov 1, 2026 10:00:00`, `11/1/2026`, `Sun, 01 Nov 2026 10:00:00 GMT+0100 (CET)`, …).
/// `None` where JavaScript gives an invalid date.
pub fn parse_date(s: &str) -> Option<i64> {
    let tokens = tokenize(s);
    let mut p = DateParts::default();
    let mut at = 0;
    match parse_iso_part(&tokens, &mut at, &mut p) {
        IsoOutcome::Done => {}
        IsoOutcome::Invalid => return None,
        IsoOutcome::Continue(start) => {
            if !parse_legacy(&tokens, start, &mut p) {
                return None;
            }
        }
    }
    p.to_ms()
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// Value of the first nine significant digits, and the numeral's length in characters.
    Num(i64, usize),
    Sym(char),
    /// A word: keyword kind, and its length.
    Word(Keyword, usize),
    Space,
    Unknown,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Keyword {
    Month(i64),
    AmPm(i64),
    /// Offset in hours; `z` is the one-letter zero.
    Zone(i64, bool),
    TimeSeparator,
    Other,
}

fn is_v8_space(c: char) -> bool {
    is_js_space(c)
}

fn tokenize(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i] == '0' {
                i += 1;
            }
            let (mut n, mut significant) = (0i64, 0);
            while i < chars.len() && chars[i].is_ascii_digit() {
                if significant < 9 {
                    n = n * 10 + i64::from(chars[i] as u8 - b'0');
                }
                significant += 1;
                i += 1;
            }
            out.push(Tok::Num(n, i - start));
        } else if matches!(c, ':' | '-' | '+' | '.' | ')') {
            out.push(Tok::Sym(c));
            i += 1;
        } else if c >= 'A' && !is_v8_space(c) {
            let start = i;
            let mut prefix = String::new();
            while i < chars.len() && chars[i] >= 'A' && !is_v8_space(chars[i]) {
                if prefix.chars().count() < 3 {
                    // V8 lowercases by setting bit 0x20, whatever the character.
                    let lowered = char::from_u32(chars[i] as u32 | 0x20).unwrap_or(chars[i]);
                    prefix.push(lowered);
                }
                i += 1;
            }
            out.push(Tok::Word(keyword(&prefix, i - start), i - start));
        } else if is_v8_space(c) {
            while i < chars.len() && is_v8_space(chars[i]) {
                i += 1;
            }
            out.push(Tok::Space);
        } else if c == '(' {
            let mut balance = 0;
            loop {
                match chars.get(i) {
                    Some(')') => balance -= 1,
                    Some('(') => balance += 1,
                    _ => {}
                }
                i += 1;
                if balance <= 0 || i >= chars.len() {
                    break;
                }
            }
            out.push(Tok::Unknown);
        } else {
            out.push(Tok::Unknown);
            i += 1;
        }
    }
    out.push(Tok::End);
    out
}

fn keyword(prefix: &str, len: usize) -> Keyword {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    if let Some(m) = MONTHS.iter().position(|m| *m == prefix) {
        return Keyword::Month(m as i64 + 1);
    }
    if len > 3 {
        return Keyword::Other;
    }
    match prefix {
        "am" => Keyword::AmPm(0),
        "pm" => Keyword::AmPm(12),
        "ut" | "utc" | "gmt" => Keyword::Zone(0, false),
        "z" => Keyword::Zone(0, true),
        "cdt" => Keyword::Zone(-5, false),
        "cst" => Keyword::Zone(-6, false),
        "edt" => Keyword::Zone(-4, false),
        "est" => Keyword::Zone(-5, false),
        "mdt" => Keyword::Zone(-6, false),
        "mst" => Keyword::Zone(-7, false),
        "pdt" => Keyword::Zone(-7, false),
        "pst" => Keyword::Zone(-8, false),
        "t" => Keyword::TimeSeparator,
        _ => Keyword::Other,
    }
}

/// What the date, time and zone parts have collected so far.
#[derive(Default, Debug)]
struct DateParts {
    day: Vec<i64>,
    named_month: Option<i64>,
    iso_date: bool,
    time: Vec<i64>,
    hour_offset: Option<i64>,
    tz_sign: Option<i64>,
    tz_hour: Option<i64>,
    tz_minute: Option<i64>,
}

impl DateParts {
    fn add_day(&mut self, n: i64) -> bool {
        if self.day.len() >= 3 {
            return false;
        }
        self.day.push(n);
        true
    }

    fn add_time(&mut self, n: i64) -> bool {
        if self.time.len() >= 4 {
            return false;
        }
        self.time.push(n);
        true
    }

    fn add_time_final(&mut self, n: i64) -> bool {
        if !self.add_time(n) {
            return false;
        }
        while self.time.len() < 4 {
            self.time.push(0);
        }
        true
    }

    fn time_expecting(&self, n: i64) -> bool {
        match self.time.len() {
            1 => (0..60).contains(&n),
            2 => (0..60).contains(&n),
            3 => (0..1000).contains(&n),
            _ => false,
        }
    }

    fn set_zone(&mut self, hours: i64) {
        let sign = if hours < 0 { -1 } else { 1 };
        self.tz_sign = Some(sign);
        self.tz_hour = Some(hours * sign);
        self.tz_minute = Some(0);
    }

    fn zone_is_utc(&self) -> bool {
        self.tz_hour == Some(0) && self.tz_minute == Some(0)
    }

    fn zone_expecting(&self, n: i64) -> bool {
        self.tz_hour.is_some() && self.tz_minute.is_none() && (0..60).contains(&n)
    }

    fn to_ms(&self) -> Option<i64> {
        if self.day.is_empty() {
            return None;
        }
        let mut comp = self.day.clone();
        while comp.len() < 3 {
            comp.push(1);
        }
        let is_day = |x: i64| (1..=31).contains(&x);
        let (mut year, month, day) = match self.named_month {
            None if self.iso_date || !is_day(comp[0]) => (comp[0], comp[1], comp[2]),
            None => (comp[2], comp[0], comp[1]),
            Some(m) if !is_day(comp[0]) => (comp[0], m, comp[1]),
            Some(m) => (comp[1], m, comp[0]),
        };
        if !self.iso_date {
            if (0..=49).contains(&year) {
                year += 2000;
            } else if (50..=99).contains(&year) {
                year += 1900;
            }
        }
        if !(1..=12).contains(&month) || !is_day(day) || year.abs() > (1 << 30) {
            return None;
        }
        let mut time = self.time.clone();
        while time.len() < 4 {
            time.push(0);
        }
        let (mut hour, minute, second, milli) = (time[0], time[1], time[2], time[3]);
        if let Some(offset) = self.hour_offset {
            if !(0..=12).contains(&hour) {
                return None;
            }
            hour = hour % 12 + offset;
        }
        let in_range = (0..24).contains(&hour)
            && (0..60).contains(&minute)
            && (0..60).contains(&second)
            && (0..1000).contains(&milli);
        if !in_range && (hour != 24 || minute != 0 || second != 0 || milli != 0) {
            return None;
        }
        let offset_secs = match self.tz_sign {
            Some(sign) => {
                sign * (self.tz_hour.unwrap_or(0) * 3600 + self.tz_minute.unwrap_or(0) * 60)
            }
            None => 0,
        };
        let days = days_from_civil(year, month, 1) + (day - 1);
        let ms = days as f64 * 86_400_000.0
            + ((hour * 3600 + minute * 60 + second - offset_secs) * 1000 + milli) as f64;
        date_from_number(ms)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

enum IsoOutcome {
    /// A complete ISO date-time: nothing left to read.
    Done,
    /// Not (only) ISO: the legacy parser starts with the token at this index.
    Continue(usize),
    /// An ISO date-time that went wrong after its `T`: invalid.
    Invalid,
}

fn fixed(t: &Tok, len: usize) -> Option<i64> {
    match t {
        Tok::Num(n, l) if *l == len => Some(*n),
        _ => None,
    }
}

/// V8's first pass, the ES5 date-time format.
fn parse_iso_part(t: &[Tok], at: &mut usize, p: &mut DateParts) -> IsoOutcome {
    let next = |at: &mut usize| {
        let i = *at;
        if t[i] != Tok::End {
            *at += 1;
        }
        i
    };
    // The legacy pass starts with the current token, as V8's `return scanner->Next()`.
    macro_rules! hand_over {
        () => {{
            return IsoOutcome::Continue(next(at));
        }};
    }
    if let Tok::Sym(sign @ ('+' | '-')) = t[*at] {
        let sign_at = next(at);
        let Some(year) = fixed(&t[*at], 6) else {
            return IsoOutcome::Continue(sign_at);
        };
        next(at);
        if sign == '-' && year == 0 {
            // V8 has read the year already; the sign it hands over is a no-op for the legacy
            // pass (nothing read yet), so the legacy pass starts after the year.
            return IsoOutcome::Continue(*at);
        }
        p.day.push(if sign == '-' { -year } else { year });
    } else if let Some(year) = fixed(&t[*at], 4) {
        next(at);
        p.day.push(year);
    } else {
        hand_over!();
    }
    if t[*at] == Tok::Sym('-') {
        next(at);
        match fixed(&t[*at], 2).filter(|m| (1..=12).contains(m)) {
            Some(m) => {
                next(at);
                p.day.push(m);
            }
            None => hand_over!(),
        }
        if t[*at] == Tok::Sym('-') {
            next(at);
            match fixed(&t[*at], 2).filter(|d| (1..=31).contains(d)) {
                Some(d) => {
                    next(at);
                    p.day.push(d);
                }
                None => hand_over!(),
            }
        }
    }
    if !matches!(t[*at], Tok::Word(Keyword::TimeSeparator, _)) {
        if t[*at] != Tok::End {
            hand_over!();
        }
    } else {
        next(at);
        let Some(hour) = fixed(&t[*at], 2).filter(|h| (0..=24).contains(h)) else {
            return IsoOutcome::Invalid;
        };
        let is24 = hour == 24;
        next(at);
        p.time.push(hour);
        if t[*at] != Tok::Sym(':') {
            return IsoOutcome::Invalid;
        }
        next(at);
        let Some(minute) = fixed(&t[*at], 2).filter(|m| (0..60).contains(m) && !(is24 && *m > 0))
        else {
            return IsoOutcome::Invalid;
        };
        next(at);
        p.time.push(minute);
        if t[*at] == Tok::Sym(':') {
            next(at);
            let Some(second) =
                fixed(&t[*at], 2).filter(|s| (0..60).contains(s) && !(is24 && *s > 0))
            else {
                return IsoOutcome::Invalid;
            };
            next(at);
            p.time.push(second);
            if t[*at] == Tok::Sym('.') {
                next(at);
                let Tok::Num(n, len) = t[*at] else {
                    return IsoOutcome::Invalid;
                };
                if is24 && n > 0 {
                    return IsoOutcome::Invalid;
                }
                next(at);
                p.time.push(milliseconds(n, len));
            }
        }
        if matches!(t[*at], Tok::Word(Keyword::Zone(0, true), 1)) {
            next(at);
            p.set_zone(0);
        } else if let Tok::Sym(sign @ ('+' | '-')) = t[*at] {
            next(at);
            p.tz_sign = Some(if sign == '+' { 1 } else { -1 });
            if let Some(hm) = fixed(&t[*at], 4) {
                next(at);
                let (h, m) = (hm / 100, hm % 100);
                if !(0..24).contains(&h) || !(0..60).contains(&m) {
                    return IsoOutcome::Invalid;
                }
                p.tz_hour = Some(h);
                p.tz_minute = Some(m);
            } else {
                let Some(h) = fixed(&t[*at], 2).filter(|h| (0..24).contains(h)) else {
                    return IsoOutcome::Invalid;
                };
                next(at);
                p.tz_hour = Some(h);
                if t[*at] != Tok::Sym(':') {
                    return IsoOutcome::Invalid;
                }
                next(at);
                let Some(m) = fixed(&t[*at], 2).filter(|m| (0..60).contains(m)) else {
                    return IsoOutcome::Invalid;
                };
                next(at);
                p.tz_minute = Some(m);
            }
        }
        if t[*at] != Tok::End {
            return IsoOutcome::Invalid;
        }
    }
    // Date-only forms are UTC; date-time forms without an offset are local (UTC here).
    if p.tz_sign.is_none() && p.time.is_empty() {
        p.set_zone(0);
    }
    p.iso_date = true;
    IsoOutcome::Done
}

/// The first three significant digits of a fraction of a second.
fn milliseconds(n: i64, len: usize) -> i64 {
    match len {
        1 => n * 100,
        2 => n * 10,
        3 => n,
        _ => {
            let mut n = n;
            let mut len = len.min(9);
            while len > 3 {
                n /= 10;
                len -= 1;
            }
            n
        }
    }
}

/// V8's legacy pass, starting with `tokens[start]`.
fn parse_legacy(t: &[Tok], start: usize, p: &mut DateParts) -> bool {
    let mut i = start;
    let mut has_read_number = !p.day.is_empty();
    let skip = |i: &mut usize, c: char| {
        if t[*i] == Tok::Sym(c) {
            *i += 1;
            true
        } else {
            false
        }
    };
    while t[i] != Tok::End {
        let token = t[i].clone();
        i += 1;
        match token {
            Tok::Num(n, _) => {
                has_read_number = true;
                if skip(&mut i, ':') {
                    if skip(&mut i, ':') {
                        if !p.time.is_empty() {
                            return false;
                        }
                        p.time.push(n);
                        p.time.push(0);
                    } else {
                        if !p.add_time(n) {
                            return false;
                        }
                        skip(&mut i, '.');
                    }
                } else if t[i] == Tok::Sym('.') && {
                    i += 1;
                    p.time_expecting(n)
                } {
                    p.add_time(n);
                    let Tok::Num(ms, len) = t[i] else {
                        return false;
                    };
                    i += 1;
                    if !p.add_time_final(milliseconds(ms, len)) {
                        return false;
                    }
                } else if p.zone_expecting(n) {
                    p.tz_minute = Some(n);
                } else if p.time_expecting(n) {
                    if !p.add_time_final(n) {
                        return false;
                    }
                    let ok = matches!(
                        t[i],
                        Tok::End
                            | Tok::Space
                            | Tok::Word(Keyword::Zone(0, true), 1)
                            | Tok::Sym('+' | '-')
                    );
                    if !ok {
                        return false;
                    }
                } else {
                    if !p.add_day(n) {
                        return false;
                    }
                    skip(&mut i, '-');
                }
            }
            Tok::Word(kind, _) => match kind {
                Keyword::AmPm(offset) if !p.time.is_empty() => p.hour_offset = Some(offset),
                Keyword::Month(m) => {
                    p.named_month = Some(m);
                    skip(&mut i, '-');
                }
                Keyword::Zone(hours, _) if has_read_number => p.set_zone(hours),
                _ => {
                    if has_read_number || matches!(t[i], Tok::Num(..)) {
                        return false;
                    }
                }
            },
            Tok::Sym(sign @ ('+' | '-')) if p.zone_is_utc() || !p.time.is_empty() => {
                p.tz_sign = Some(if sign == '+' { 1 } else { -1 });
                let (mut n, mut len) = (0, 0);
                if let Tok::Num(v, l) = t[i] {
                    n = v;
                    len = l;
                    i += 1;
                }
                has_read_number = true;
                if t[i] == Tok::Sym(':') {
                    p.tz_hour = Some(n);
                    p.tz_minute = None;
                } else if len == 1 || len == 2 {
                    p.tz_hour = Some(n);
                    p.tz_minute = Some(0);
                } else if len == 3 || len == 4 {
                    p.tz_hour = Some(n / 100);
                    p.tz_minute = Some(n % 100);
                } else {
                    return false;
                }
            }
            Tok::Sym('+' | '-' | ')') if has_read_number => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn number_conversion_follows_javascript() {
        for (s, want) in [
            ("12", 12.0),
            ("  12  ", 12.0),
            ("", 0.0),
            ("   ", 0.0),
            ("0x10", 16.0),
            ("0b101", 5.0),
            ("1e3", 1000.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("-0.25", -0.25),
            ("+3", 3.0),
            ("\u{feff}7", 7.0),
        ] {
            assert_eq!(string_to_number(s), want, "{s:?}");
        }
        for s in [
            "x", "1e", ".", "-0x10", "inf", "NaN", "1_000", "12px", "\u{85}1",
        ] {
            assert!(string_to_number(s).is_nan(), "{s:?}");
        }
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(to_number(&json!(true)), 1.0);
        assert_eq!(to_number(&json!([5])), 5.0);
        assert_eq!(to_number(&json!([])), 0.0);
        assert!(to_number(&json!([1, 2])).is_nan());
        assert!(to_number(&json!({})).is_nan());
    }

    #[test]
    fn number_to_string_follows_javascript() {
        for (f, want) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.5, "-2.5"),
            (12345678901234567890.0, "12345678901234567000"),
        ] {
            assert_eq!(number_to_string(f), want);
        }
    }

    #[test]
    fn cast_error_values_look_like_mongoose() {
        assert_eq!(cast_error_value(&json!({"a": 1})), r#""{ a: 1 }""#);
        assert_eq!(cast_error_value(&json!([1, 2])), r#""[ 1, 2 ]""#);
        assert_eq!(cast_error_value(&json!([])), r#""[]""#);
        assert_eq!(cast_error_value(&json!("x")), r#""x""#);
        assert_eq!(
            cast_error_value(&json!({"a-b": 1, "c": "s"})),
            r#""{ 'a-b': 1, c: 's' }""#
        );
        assert_eq!(
            cast_error_value(&json!({"a": {"b": {"c": {"d": 1}}}})),
            r#""{ a: { b: { c: [Object] } } }""#
        );
    }

    #[test]
    fn dates_parse_like_v8_in_utc() {
        for (s, want) in [
            ("2026-11-01T10:00:00Z", Some(1_793_527_200_000)),
            ("2026-11-01T10:00:00.123456Z", Some(1_793_527_200_123)),
            ("2026-11-01T11:00:00+01:00", Some(1_793_527_200_000)),
            ("2026-11-01T10:00:00", Some(1_793_527_200_000)),
            ("2026-11-01 10:00", Some(1_793_527_200_000)),
            ("2026", Some(1_767_225_600_000)),
            ("2026-1-1", Some(1_767_225_600_000)),
            ("Nov 1, 2026 10:00:00", Some(1_793_527_200_000)),
            ("Sun, 01 Nov 2026 10:00:00 GMT", Some(1_793_527_200_000)),
            (
                "Sun Nov 01 2026 11:00:00 GMT+0100 (CET)",
                Some(1_793_527_200_000),
            ),
            ("11/1/2026", Some(1_793_491_200_000)),
            ("12345", Some(327_403_382_400_000)),
            ("1793527200000", None),
            ("garbage", None),
            (" 2026-11-01T10:00:00Z ", None),
            ("", None),
            ("NaN", None),
        ] {
            assert_eq!(parse_date(s), want, "{s:?}");
        }
    }

    /// 2,228 strings (hand-picked forms and random mutations of them) with what Node 20's
    /// `new Date(s).getTime()` gave for each in a UTC process (`null` for an invalid date).
    #[test]
    fn dates_agree_with_node_on_a_recorded_corpus() {
        let cases: Vec<(String, Option<i64>)> =
            serde_json::from_str(include_str!("../../tests/fixtures/v8-dates.json")).unwrap();
        let wrong: Vec<_> = cases
            .iter()
            .filter(|(s, want)| parse_date(s) != *want)
            .collect();
        assert!(wrong.is_empty(), "{} disagree: {wrong:?}", wrong.len());
    }
}
