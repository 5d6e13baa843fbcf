//! JSON Lines rows to events, for the rows whose meaning is plain: what
//! streams/contract/event_files.py makes of them is certain (the simulator's and
//! `record_to_row`'s form: text fields, integer minor units, `...Z` times). Any other row,
//! including every row that is wrong, goes back to the Python reader (`None` here), which
//! makes of it what it always does; so the native reader never differs from it, it is only
//! quicker on the common rows.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, Visitor};
use serde::Deserialize as DeriveDeserialize;

use crate::fold::{Body, Event};
use crate::limits::{id_too_long, time_in_bounds};
use crate::text::{days_from_civil, days_in_month, py_strip, MS_PER_DAY};

/// A JSON string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

#[derive(DeriveDeserialize)]
struct Item<'a> {
    #[serde(borrow)]
    sku: Option<Text<'a>>,
    #[serde(borrow)]
    category: Option<Text<'a>>,
    quantity: Option<i64>,
    unit_price_minor: Option<i64>,
    unit_price: Option<IgnoredAny>,
}

#[derive(DeriveDeserialize)]
struct Row<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    customer_id: Option<Text<'a>>,
    #[serde(borrow)]
    store_id: Option<Text<'a>>,
    #[serde(borrow)]
    occurred_at: Option<Text<'a>>,
    #[serde(borrow)]
    currency: Option<Text<'a>>,
    total_minor: Option<i64>,
    total: Option<IgnoredAny>,
    #[serde(borrow)]
    purchase_event_id: Option<Text<'a>>,
    amount_minor: Option<i64>,
    amount: Option<IgnoredAny>,
    score: Option<i64>,
    #[serde(borrow)]
    comment: Option<Text<'a>>,
    #[serde(borrow)]
    complaint_id: Option<Text<'a>>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    resolution: Option<Text<'a>>,
    #[serde(borrow)]
    items: Option<Vec<Item<'a>>>,
}

/// event_files._text: the stripped text, None when missing or blank.
fn text<'b>(value: &'b Option<Text<'_>>) -> Option<&'b str> {
    let stripped = py_strip(value.as_ref()?.0.as_ref());
    if stripped.is_empty() {
        None
    } else {
        Some(stripped)
    }
}

fn digits(bytes: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]Z` (or a space for the T), a time `datetime.fromisoformat`
/// reads as UTC, to epoch milliseconds truncated as parse_occurred_at truncates them.
pub fn parse_utc_time(value: &str) -> Option<i64> {
    let b = value.as_bytes();
    if !(b.len() == 20 || b.len() == 24 || b.len() == 27) || b[b.len() - 1] != b'Z' {
        return None;
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    let millis = match b.len() {
        20 => 0,
        _ => {
            if b[19] != b'.' {
                return None;
            }
            let fraction = &b[20..b.len() - 1];
            let value = digits(fraction)?;
            if fraction.len() == 3 {
                value
            } else {
                value / 1000
            }
        }
    };
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * MS_PER_DAY
            + ((hour * 60 + minute) * 60 + second) * 1000
            + millis,
    )
}

/// Per punch card, the quantity of the items in its category (fold._purchase's `given`), in
/// 128 bits: Python's sum of 64-bit quantities does not overflow.
pub fn card_quantities<'c>(
    cards: &[(String, i64)],
    items: impl Iterator<Item = (&'c str, i64)>,
) -> Vec<i128> {
    let mut given = vec![0i128; cards.len()];
    for (category, quantity) in items {
        for (index, (card, _)) in cards.iter().enumerate() {
            if category == card {
                given[index] += i128::from(quantity);
            }
        }
    }
    if given.iter().all(|quantity| *quantity == 0) {
        given.clear();
    }
    given
}

/// The first line item whose quantity is below 1 (fold._refuse_bad_quantities): its position,
/// from 1, and the quantity.
pub fn bad_quantity(quantities: impl Iterator<Item = i64>) -> Option<(usize, i64)> {
    quantities
        .enumerate()
        .find(|(_, quantity)| *quantity < 1)
        .map(|(index, quantity)| (index + 1, quantity))
}

/// A number event_files reads as it stands: within +-(2**63 - 1). The one 64-bit integer
/// beyond, -2**63, is a row error there.
fn plain(number: Option<i64>) -> bool {
    number != Some(i64::MIN)
}

/// The event's currency, upper-cased as event_files reads it (ASCII only here), when it is
/// not the program's; None when it is.
pub fn foreign_currency(currency: &str, program_currency: &str) -> Option<Box<str>> {
    let same = currency.len() == program_currency.len()
        && currency
            .bytes()
            .zip(program_currency.bytes())
            .all(|(ours, theirs)| ours.to_ascii_uppercase() == theirs);
    (!same).then(|| currency.to_ascii_uppercase().into_boxed_str())
}

/// The event of a JSON Lines row whose reading is certain, or None: ask the Python reader.
pub fn fast_row(
    line_text: &str,
    line: u64,
    default_type: Option<&str>,
    program_currency: &str,
    cards: &[(String, i64)],
    customer_number: &mut impl FnMut(&str) -> u32,
) -> Option<Event> {
    let row: Row = serde_json::from_str(line_text).ok()?;
    let kind = text(&row.kind).or(default_type)?;
    let currency = text(&row.currency).unwrap_or(program_currency);
    if !currency.is_ascii() {
        return None;
    }
    let currency = foreign_currency(currency, program_currency);
    // times and ids beyond streams/core/limits.py, and -2**63, are the Python reader's to
    // refuse (a row error with its reason)
    let event_id = text(&row.event_id)?.to_owned();
    let at_ms = parse_utc_time(row.occurred_at.as_ref()?.0.as_ref())?;
    let customer_id = text(&row.customer_id)?;
    if !time_in_bounds(at_ms) || id_too_long(&event_id) || id_too_long(customer_id) {
        return None;
    }
    if !(plain(row.total_minor) && plain(row.amount_minor) && plain(row.score)) {
        return None;
    }
    let _ = &row.store_id; // any text or none: the fold does not read it
    let mut has_items = false;
    let mut bad = None;
    let mut quantities = Vec::new();
    if matches!(kind, "purchase" | "return") {
        if let Some(items) = &row.items {
            for item in items {
                text(&item.sku)?;
                if item.unit_price_minor.is_none() || item.unit_price.is_some() {
                    return None;
                }
                if !(plain(item.quantity) && plain(item.unit_price_minor)) {
                    return None;
                }
            }
            has_items = !items.is_empty();
            bad = bad_quantity(items.iter().map(|item| item.quantity.unwrap_or(1)));
            quantities = card_quantities(
                cards,
                items.iter().map(|item| {
                    (
                        text(&item.category).unwrap_or(""),
                        item.quantity.unwrap_or(1),
                    )
                }),
            );
        }
    }
    let body = match kind {
        "purchase" => {
            if row.total.is_some() {
                return None;
            }
            Body::Purchase {
                total_minor: row.total_minor?,
            }
        }
        "return" => {
            if row.amount.is_some() {
                return None;
            }
            let purchase_event_id = text(&row.purchase_event_id)?;
            if id_too_long(purchase_event_id) {
                return None;
            }
            Body::Return {
                purchase_event_id: purchase_event_id.to_owned(),
                amount_minor: row.amount_minor,
            }
        }
        "nps" => {
            let _ = &row.comment;
            Body::Nps { score: row.score? }
        }
        "complaint_opened" => {
            let _ = &row.reason;
            let complaint_id = text(&row.complaint_id)?;
            if id_too_long(complaint_id) {
                return None;
            }
            Body::ComplaintOpened {
                complaint_id: complaint_id.to_owned(),
            }
        }
        "complaint_resolved" => {
            let _ = &row.resolution;
            let complaint_id = text(&row.complaint_id)?;
            if id_too_long(complaint_id) {
                return None;
            }
            Body::ComplaintResolved {
                complaint_id: complaint_id.to_owned(),
            }
        }
        _ => return None,
    };
    Some(Event {
        event_id,
        customer: customer_number(customer_id),
        at_ms,
        line,
        currency,
        has_items,
        bad_quantity: bad,
        card_quantities: quantities,
        body,
    })
}

/// The lines of a text as Python's text files in newline="" mode yield them: each ends after
/// "\n", "\r\n" or a lone "\r", the ending kept.
pub struct Lines<'a> {
    rest: &'a str,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Lines<'a> {
        Lines { rest: text }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let bytes = self.rest.as_bytes();
        let end = match memchr2(bytes) {
            Some(index) if bytes[index] == b'\r' && bytes.get(index + 1) == Some(&b'\n') => {
                index + 2
            }
            Some(index) => index + 1,
            None => bytes.len(),
        };
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
    }
}

fn memchr2(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n' || *b == b'\r')
}

pub fn is_blank(line: &str) -> bool {
    py_strip(line).is_empty()
}

/// event_files.count_rows of a JSON Lines text: its lines that are not blank. Only lines with
/// non-ASCII bytes are decoded (and so checked to be UTF-8).
pub fn count_rows(data: &[u8]) -> Result<u64, std::str::Utf8Error> {
    let mut rows = 0;
    let mut rest = data;
    while !rest.is_empty() {
        let end = match rest.iter().position(|b| *b == b'\n' || *b == b'\r') {
            Some(index) if rest[index] == b'\r' && rest.get(index + 1) == Some(&b'\n') => index + 2,
            Some(index) => index + 1,
            None => rest.len(),
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        let blank = if line.is_ascii() {
            line.iter()
                .all(|b| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' '))
        } else {
            is_blank(std::str::from_utf8(line)?)
        };
        if !blank {
            rows += 1;
        }
    }
    Ok(rows)
}
