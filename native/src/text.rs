//! Text as Python writes it: `datetime.isoformat()`, `date.isoformat()`, `repr(float)` and
//! `json.dumps` strings (ensure_ascii), plus `str.strip()` and the UUID5 output ids of
//! streams/core/events.py. The output files of both engines must be byte-identical.

use std::fmt::Write;

pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// `date.isoformat()` of a day since the epoch.
pub fn write_date(out: &mut String, day: i64) {
    let (y, m, d) = civil_from_days(day);
    if (0..10_000).contains(&y) {
        push_2(out, y / 100);
        push_2(out, y % 100);
    } else {
        let _ = write!(out, "{y:04}");
    }
    out.push('-');
    push_2(out, m);
    out.push('-');
    push_2(out, d);
}

fn push_2(out: &mut String, value: i64) {
    out.push((b'0' + (value / 10) as u8) as char);
    out.push((b'0' + (value % 10) as u8) as char);
}

/// `from_ms(ms).isoformat().replace("+00:00", "Z")`: microseconds only when not zero.
pub fn write_iso_ms(out: &mut String, ms: i64) {
    let day = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    write_date(out, day);
    let seconds = in_day / 1000;
    let millis = in_day % 1000;
    out.push('T');
    push_2(out, seconds / 3600);
    out.push(':');
    push_2(out, seconds / 60 % 60);
    out.push(':');
    push_2(out, seconds % 60);
    if millis != 0 {
        out.push('.');
        out.push((b'0' + (millis / 100) as u8) as char);
        push_2(out, millis % 100);
        out.push_str("000");
    }
    out.push('Z');
}

/// `repr(x)` of a float, which `json.dumps` writes: the shortest digits that read back to the
/// same float (Rust's `{:e}` gives the same shortest digits), laid out as CPython does:
/// positional for decimal exponents -4 < decpt <= 16, otherwise `d.ddde-05` / `de+16`.
pub fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if x.is_sign_negative() {
        out.push('-');
    }
    let decpt = exponent + 1;
    let n = digits.len() as i32;
    if decpt > -4 && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            for _ in 0..(decpt - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

/// A JSON string as `json.dumps` writes it with ensure_ascii: printable ASCII as is, the
/// usual short escapes, everything else as lowercase \uXXXX (surrogate pairs above the BMP).
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (index, &b) in bytes.iter().enumerate() {
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        if b >= 0x80 && !s.is_char_boundary(index) {
            continue;
        }
        out.push_str(&s[start..index]);
        if b < 0x80 {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                _ => {
                    let _ = write!(out, "\\u{:04x}", b);
                }
            }
            start = index + 1;
        } else {
            let c = s[index..].chars().next().expect("a char at a boundary");
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{:04x}", unit);
            }
            start = index + c.len_utf8();
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Whether Python's `str.isspace()` holds for the character (what `str.strip()` strips).
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{0b}'
            | '\u{0c}'
            | '\r'
            | '\u{1c}'..='\u{1f}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

const OUTPUT_NAMESPACE: [u8; 16] = [
    0x6f, 0x1c, 0x2a, 0x4e, 0x0d, 0x55, 0x5b, 0x7a, 0x9b, 0x8e, 0x3c, 0x1f, 0x0a, 0x7d, 0x2e, 0x11,
];

/// streams.core.events.output_event_id: UUID5 of "customer\x1fkind\x1fcause".
pub fn output_event_id(customer_id: &str, kind: &str, cause: &str) -> String {
    let mut hasher = sha1_smol::Sha1::new();
    hasher.update(&OUTPUT_NAMESPACE);
    hasher.update(customer_id.as_bytes());
    hasher.update(b"\x1f");
    hasher.update(kind.as_bytes());
    hasher.update(b"\x1f");
    hasher.update(cause.as_bytes());
    let digest = hasher.digest().bytes();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    raw[6] = (raw[6] & 0x0F) | 0x50;
    raw[8] = (raw[8] & 0x3F) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (index, byte) in raw.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// What caused an output (its `caused_by`): an input event's id, or time alone at a moment,
/// written `due:<kind>:<ISO time>` (streams.core.events.due_marker) only when an output needs it.
#[derive(Clone, Copy)]
pub enum Cause<'a> {
    Event(&'a str),
    Due(&'static str, i64),
}

impl<'a> Cause<'a> {
    pub fn text(self) -> std::borrow::Cow<'a, str> {
        match self {
            Cause::Event(id) => std::borrow::Cow::Borrowed(id),
            Cause::Due(kind, at_ms) => {
                let mut out = String::with_capacity(40);
                out.push_str("due:");
                out.push_str(kind);
                out.push(':');
                write_iso_ms(&mut out, at_ms);
                std::borrow::Cow::Owned(out)
            }
        }
    }
}
