//! streams/core/limits.py: what the fold refuses or forgets so that hostile input cannot
//! crash it, grow a customer's state without bound or store a number no Avro long holds.
//! The same bounds and the same reasons, word for word.

use crate::text::write_iso_ms;

/// From the epoch up to, not including, 9000-01-01 (limits.LATEST_EVENT_MS).
pub const EARLIEST_EVENT_MS: i64 = 0;
pub const LATEST_EVENT_MS: i64 = 221_845_392_000_000;
pub const MAX_ID_CHARS: usize = 256;
pub const AVRO_LONG_MAX: i128 = i64::MAX as i128;
pub const MAX_REWARDS_PER_PURCHASE: i128 = 1000;
pub const MAX_OPEN_COMPLAINTS: usize = 64;
pub const MAX_RETURNABLE_PURCHASES: usize = 1000;

pub fn time_in_bounds(at_ms: i64) -> bool {
    (EARLIEST_EVENT_MS..LATEST_EVENT_MS).contains(&at_ms)
}

/// `len(value) > MAX_ID_CHARS`, Python's length being in code points.
pub fn id_too_long(value: &str) -> bool {
    value.len() > MAX_ID_CHARS && value.chars().count() > MAX_ID_CHARS
}

/// limits.event_time_problem of an `occurred_at`.
pub fn event_time_problem(at_ms: i64) -> Option<String> {
    let mut iso = String::new();
    if at_ms < EARLIEST_EVENT_MS {
        write_iso_ms(&mut iso, at_ms);
        return Some(format!(
            "occurred_at {iso} is before 1970-01-01: check the POS clock \
             (an unset clock reads 1970 or earlier)"
        ));
    }
    if at_ms >= LATEST_EVENT_MS {
        write_iso_ms(&mut iso, at_ms);
        return Some(format!(
            "occurred_at {iso} is not before 9000-01-01: check the POS clock \
             and the time's format (milliseconds, not microseconds, since the epoch)"
        ));
    }
    None
}

/// limits.id_problem; an Err (the engine refuses the input) when the id's first 24 characters
/// are not ASCII, whose `repr` this does not write. The file readers refuse every such id
/// before the fold sees it, so in a replay this is never reached.
pub fn id_problem(field_name: &str, value: &str) -> Result<Option<String>, String> {
    if !id_too_long(value) {
        return Ok(None);
    }
    let start: String = value.chars().take(24).collect();
    let shown = ascii_repr(&start)
        .ok_or_else(|| format!("{field_name} of more than {MAX_ID_CHARS} characters, not ASCII"))?;
    Ok(Some(format!(
        "{field_name} is {} characters long, more than {MAX_ID_CHARS}: \
         send a shorter id (it starts {shown})",
        value.chars().count()
    )))
}

/// Python's `repr` of an ASCII str; None for any other.
fn ascii_repr(value: &str) -> Option<String> {
    if !value.is_ascii() {
        return None;
    }
    let quote = if value.contains('\'') && !value.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(quote);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (' '..='~').contains(&c) => out.push(c),
            c => out.push_str(&format!("\\x{:02x}", c as u32)),
        }
    }
    out.push(quote);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_as_python() {
        assert_eq!(ascii_repr("ab").unwrap(), "'ab'");
        assert_eq!(ascii_repr("a'b").unwrap(), "\"a'b\"");
        assert_eq!(ascii_repr("a'\"b").unwrap(), "'a\\'\"b'");
        assert_eq!(ascii_repr("a\\\n\x01").unwrap(), "'a\\\\\\n\\x01'");
        assert!(ascii_repr("é").is_none());
    }
}
