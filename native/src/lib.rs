//! loyalty_native: the `loyalty replay` engine in Rust. It reads JSON Lines event files (rows
//! it cannot read with certainty go back to the Python reader), folds every customer through
//! a port of streams/core (fold.py, churn.py, customer.py) and writes the same state lines and
//! output events, byte for byte, as the Python engine. streams/tools/replay_native.py drives it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

mod fold;
mod limits;
mod out;
mod parse;
mod program;
mod text;

use fold::{Applied, Body, Event, State};
use out::{write_reasons, Sink, KIND_NAMES};
use program::Program;
use text::{py_strip, write_date, write_float, write_iso_ms, write_json_str, MS_PER_DAY};

create_exception!(
    loyalty_native,
    Unsupported,
    PyException,
    "Input the native engine does not handle (a number beyond 64 bits, a program it cannot read): use --engine python."
);

const PROGRESS_EVERY: u64 = 1 << 14;

fn get<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    values: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<T> {
    match values.get_item(key)? {
        Some(value) => value.extract::<T>().map_err(|error| {
            let error: PyErr = error.into();
            PyValueError::new_err(format!("program value {key}: {error}"))
        }),
        None => Err(PyValueError::new_err(format!(
            "program value {key} is missing"
        ))),
    }
}

fn program_from(values: &Bound<'_, PyDict>) -> PyResult<Program> {
    let levels_above: Vec<(f64, f64)> = get(values, "levels_above")?;
    let unit: String = get(values, "unit")?;
    Ok(Program {
        version: get(values, "version")?,
        currency: get(values, "currency")?,
        tier_names: get(values, "tier_names")?,
        tier_thresholds: get(values, "tier_thresholds")?,
        points_rate: get(values, "points_rate")?,
        points_expiry_days: get(values, "points_expiry_days")?,
        qualification_window_days: get(values, "qualification_window_days")?,
        requalification_days: get(values, "requalification_days")?,
        downgrade_warning_days: get(values, "downgrade_warning_days")?,
        cards: get(values, "punch_cards")?,
        return_window_days: get(values, "return_window_days")?,
        complaint_sla_hours: get(values, "complaint_sla_hours")?,
        service_recovery_rank: get(values, "service_recovery_rank")?,
        attached_visits: get(values, "attached_visits")?,
        attached_window_days: get(values, "attached_window_days")?,
        category_window_days: get(values, "category_window_days")?,
        occasional_from_visits: get(values, "occasional_from_visits")?,
        regular_from_visits: get(values, "regular_from_visits")?,
        promoter_from_score: get(values, "promoter_from_score")?,
        detractor_up_to_score: get(values, "detractor_up_to_score")?,
        recent_receipts: get(values, "recent_receipts")?,
        longest_window_days: get(values, "longest_window_days")?,
        r: get(values, "r")?,
        alpha: get(values, "alpha")?,
        a: get(values, "a")?,
        b: get(values, "b")?,
        unit_is_days: unit == "days",
        per_unit: get(values, "per_unit")?,
        level_names: get(values, "level_names")?,
        level_holds: get(values, "level_holds")?,
        levels_above,
        w_detractor: get(values, "w_detractor")?,
        w_overdue_complaint: get(values, "w_overdue_complaint")?,
        w_falling_average_check: get(values, "w_falling_average_check")?,
        w_gap_beyond_cadence: get(values, "w_gap_beyond_cadence")?,
        gap_cadence_factor: get(values, "gap_cadence_factor")?,
        gap_min_repeat_visits: get(values, "gap_min_repeat_visits")?,
        low_p_alive_below: get(values, "low_p_alive_below")?,
        falling_check_ratio: get(values, "falling_check_ratio")?,
    })
}

/// A Python int beyond 64 bits is input the engine refuses, not a crash.
fn unsupported_overflow(error: PyErr, py: Python<'_>, what: &str) -> PyErr {
    if error.is_instance_of::<PyOverflowError>(py) {
        Unsupported::new_err(format!("{what}: a number beyond 64 bits"))
    } else {
        error
    }
}

type PyRow = (
    String,
    String,
    String,
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Vec<(String, i64)>,
);

#[pyclass(unsendable)]
struct Engine {
    program: Program,
    events: Vec<Event>,
    rows: u64,
    rejected: Vec<(u64, String)>,
    violations: Vec<(u64, String)>,
    applied: u64,
    duplicates: u64,
    after_as_of: u64,
    states: Vec<State>,
    counts: [u64; 5],
    /// customer ids by number (events carry the number), and numbers by id
    customer_ids: Vec<String>,
    customer_numbers: HashMap<String, u32>,
}

fn customer_number(
    numbers: &mut HashMap<String, u32>,
    ids: &mut Vec<String>,
    customer_id: &str,
) -> u32 {
    if let Some(number) = numbers.get(customer_id) {
        return *number;
    }
    let number = ids.len() as u32;
    ids.push(customer_id.to_owned());
    numbers.insert(customer_id.to_owned(), number);
    number
}

impl Engine {
    fn event_from_row(&mut self, line: u64, row: PyRow) -> PyResult<Event> {
        let (
            kind,
            event_id,
            customer_id,
            at_ms,
            currency,
            money,
            purchase_event_id,
            score,
            complaint_id,
            items,
        ) = row;
        let has_items = !items.is_empty();
        let bad_quantity = parse::bad_quantity(items.iter().map(|(_, quantity)| *quantity));
        let card_quantities = parse::card_quantities(
            &self.program.cards,
            items
                .iter()
                .map(|(category, quantity)| (category.as_str(), *quantity)),
        );
        let missing =
            |field: &str| PyValueError::new_err(format!("line {line}: {kind} without {field}"));
        let body = match kind.as_str() {
            "purchase" => Body::Purchase {
                total_minor: money.ok_or_else(|| missing("total_minor"))?,
            },
            "return" => Body::Return {
                purchase_event_id: purchase_event_id.ok_or_else(|| missing("purchase_event_id"))?,
                amount_minor: money,
            },
            "nps" => Body::Nps {
                score: score.ok_or_else(|| missing("score"))?,
            },
            "complaint_opened" => Body::ComplaintOpened {
                complaint_id: complaint_id.ok_or_else(|| missing("complaint_id"))?,
            },
            "complaint_resolved" => Body::ComplaintResolved {
                complaint_id: complaint_id.ok_or_else(|| missing("complaint_id"))?,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "line {line}: unknown kind {other}"
                )))
            }
        };
        let customer = customer_number(
            &mut self.customer_numbers,
            &mut self.customer_ids,
            &customer_id,
        );
        let currency = parse::foreign_currency(&currency, &self.program.currency);
        Ok(Event {
            event_id,
            customer,
            at_ms,
            line,
            currency,
            has_items,
            bad_quantity,
            card_quantities,
            body,
        })
    }

    fn add_py_row(&mut self, line: u64, row: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = row.py();
        let row: PyRow = row
            .extract()
            .map_err(|error: PyErr| unsupported_overflow(error, py, &format!("line {line}")))?;
        let event = self.event_from_row(line, row)?;
        self.events.push(event);
        Ok(())
    }
}

/// A step of the fold: its error, or a panic (an i64 overflow: Python's ints have none), as
/// `Unsupported`, so that the replay stops rather than writes a wrong number.
fn guarded<T>(step: impl FnOnce() -> Result<T, String>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Unsupported::new_err(error)),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            Err(Unsupported::new_err(format!("the fold stopped: {reason}")))
        }
    }
}

fn tick(progress: &Bound<'_, PyAny>, pending: &mut u64) -> PyResult<()> {
    *pending += 1;
    if *pending >= PROGRESS_EVERY {
        progress.call1((*pending,))?;
        *pending = 0;
    }
    Ok(())
}

fn flush_progress(progress: &Bound<'_, PyAny>, pending: &mut u64) -> PyResult<()> {
    if *pending > 0 {
        progress.call1((*pending,))?;
        *pending = 0;
    }
    Ok(())
}

#[pymethods]
impl Engine {
    #[new]
    fn new(program: &Bound<'_, PyDict>) -> PyResult<Self> {
        let program =
            program_from(program).map_err(|error| Unsupported::new_err(error.to_string()))?;
        Ok(Engine {
            program,
            events: Vec::new(),
            rows: 0,
            rejected: Vec::new(),
            violations: Vec::new(),
            applied: 0,
            duplicates: 0,
            after_as_of: 0,
            states: Vec::new(),
            counts: [0; 5],
            customer_ids: Vec::new(),
            customer_numbers: HashMap::new(),
        })
    }

    /// Rows of a JSON Lines text: its lines that are not blank (event_files.count_rows).
    #[staticmethod]
    fn count_jsonl_rows(data: &[u8]) -> PyResult<u64> {
        parse::count_rows(data).map_err(|error| PyValueError::new_err(error.to_string()))
    }

    /// Reads every row of a JSON Lines file's bytes (valid UTF-8: the caller checks). A row
    /// the fast reader is not sure of goes to `fallback(text, line)`, which answers with a
    /// row tuple (see replay_native.native_row) or the message of a rejected row.
    #[pyo3(signature = (data, default_type, fallback, progress))]
    fn read_jsonl(
        &mut self,
        data: &[u8],
        default_type: Option<&str>,
        fallback: &Bound<'_, PyAny>,
        progress: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let text =
            std::str::from_utf8(data).map_err(|error| PyValueError::new_err(error.to_string()))?;
        let mut pending = 0;
        for (index, line_text) in parse::Lines::new(text).enumerate() {
            let line = index as u64 + 1;
            if parse::is_blank(line_text) {
                continue;
            }
            self.rows += 1;
            tick(progress, &mut pending)?;
            let (numbers, ids) = (&mut self.customer_numbers, &mut self.customer_ids);
            if let Some(event) = parse::fast_row(
                line_text,
                line,
                default_type,
                &self.program.currency,
                &self.program.cards,
                &mut |customer_id| customer_number(numbers, ids, customer_id),
            ) {
                self.events.push(event);
                continue;
            }
            let answer = fallback.call1((line_text, line))?;
            if let Ok(message) = answer.cast::<PyString>() {
                self.rejected.push((line, message.to_str()?.to_owned()));
            } else {
                self.add_py_row(line, &answer)?;
            }
        }
        flush_progress(progress, &mut pending)
    }

    /// A row the Python reader read (a CSV file's): a row tuple, or None and a message.
    fn add_row(
        &mut self,
        line: u64,
        row: &Bound<'_, PyAny>,
        message: Option<String>,
    ) -> PyResult<()> {
        self.rows += 1;
        match message {
            Some(message) => {
                self.rejected.push((line, message));
                Ok(())
            }
            None => self.add_py_row(line, row),
        }
    }

    fn event_count(&self) -> usize {
        self.events.len()
    }

    /// Folds the events in event-time order (stable) up to as_of, then advances every
    /// customer to as_of; the output events go to events_out when given.
    #[pyo3(signature = (as_of_ms, events_out, progress))]
    fn fold(
        &mut self,
        as_of_ms: i64,
        events_out: Option<PathBuf>,
        progress: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut writer = match events_out {
            Some(path) => Some(BufWriter::with_capacity(1 << 20, File::create(path)?)),
            None => None,
        };
        let mut sink = Sink::new(writer.is_some());
        self.events.sort_by_key(|event| event.at_ms);
        let events = std::mem::take(&mut self.events);
        // per customer number, where its state is in `states` (insertion order, as Python's
        // dict of states: the final advance goes through them in that order)
        let mut index: Vec<Option<usize>> = vec![None; self.customer_ids.len()];
        let mut states: Vec<State> = Vec::new();
        let program = &self.program;
        let mut pending = 0;
        for event in &events {
            tick(progress, &mut pending)?;
            if event.at_ms > as_of_ms {
                self.after_as_of += 1;
                continue;
            }
            let known = index[event.customer as usize];
            let result = match known {
                Some(position) => {
                    guarded(|| fold::apply(&mut states[position], event, program, &mut sink))?
                }
                None => {
                    let mut state = State::new(&self.customer_ids[event.customer as usize]);
                    let result = guarded(|| fold::apply(&mut state, event, program, &mut sink))?;
                    if matches!(result, Applied::Changed) {
                        index[event.customer as usize] = Some(states.len());
                        states.push(state);
                    }
                    result
                }
            };
            match result {
                Applied::Duplicate => self.duplicates += 1,
                Applied::Violation(reason) => self.violations.push((event.line, reason)),
                Applied::Changed => self.applied += 1,
            }
            write_out(&mut sink, &mut writer)?;
        }
        flush_progress(progress, &mut pending)?;
        for state in states.iter_mut() {
            guarded(|| fold::advance(state, as_of_ms, program, &mut sink))?;
            write_out(&mut sink, &mut writer)?;
        }
        drop(index);
        if let Some(text) = sink.text.as_mut() {
            if let Some(writer) = writer.as_mut() {
                writer.write_all(text.as_bytes())?;
                text.clear();
                writer.flush()?;
            }
        }
        self.counts = sink.counts;
        self.states = states;
        Ok(())
    }

    /// One JSON line per customer, in customer-id order (replay.write_states).
    fn write_states(&self, out: PathBuf, as_of_ms: i64, as_of_iso: &str) -> PyResult<()> {
        let mut writer = BufWriter::with_capacity(1 << 20, File::create(out)?);
        let mut order: Vec<&State> = self.states.iter().collect();
        order.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        let mut line = String::with_capacity(1024);
        for state in order {
            line.clear();
            state_line(&mut line, state, as_of_ms, as_of_iso, &self.program);
            writer.write_all(line.as_bytes())?;
        }
        writer.flush()?;
        Ok(())
    }

    /// rows, applied, duplicates, after_as_of, customers, outputs (by kind), rejected_rows
    /// and violations (line, message), as replay.ReplaySummary holds them.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let summary = PyDict::new(py);
        summary.set_item("rows", self.rows)?;
        summary.set_item("applied", self.applied)?;
        summary.set_item("duplicates", self.duplicates)?;
        summary.set_item("after_as_of", self.after_as_of)?;
        summary.set_item("customers", self.states.len())?;
        let outputs = PyDict::new(py);
        for (name, count) in KIND_NAMES.iter().zip(self.counts) {
            if count > 0 {
                outputs.set_item(name, count)?;
            }
        }
        summary.set_item("outputs", outputs)?;
        let problems = |list: &Vec<(u64, String)>| -> PyResult<Bound<'py, PyList>> {
            let items: Vec<Bound<'py, PyTuple>> = list
                .iter()
                .map(|(line, message)| {
                    PyTuple::new(
                        py,
                        [
                            line.into_pyobject(py)?.into_any(),
                            PyString::new(py, message).into_any(),
                        ],
                    )
                })
                .collect::<PyResult<_>>()?;
            PyList::new(py, items)
        };
        summary.set_item("rejected_rows", problems(&self.rejected)?)?;
        summary.set_item("violations", problems(&self.violations)?)?;
        Ok(summary)
    }
}

fn write_out(sink: &mut Sink, writer: &mut Option<BufWriter<File>>) -> PyResult<()> {
    if let (Some(text), Some(writer)) = (sink.text.as_mut(), writer.as_mut()) {
        if text.len() >= 1 << 20 {
            writer.write_all(text.as_bytes())?;
            text.clear();
        }
    }
    Ok(())
}

fn visits_within(s: &State, as_of_day: i64, window_days: i64) -> i64 {
    let start = as_of_day - window_days;
    s.spend_days
        .iter()
        .filter(|(day, _)| start < *day && *day <= as_of_day)
        .count() as i64
}

fn push_opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => write_json_str(out, value),
        None => out.push_str("null"),
    }
}

fn push_opt_int(out: &mut String, value: Option<i64>) {
    match value {
        Some(value) => out.push_str(&value.to_string()),
        None => out.push_str("null"),
    }
}

/// replay.state_line of customer.describe, in its field order.
fn state_line(out: &mut String, s: &State, as_of_ms: i64, as_of_iso: &str, p: &Program) {
    let day = as_of_ms.div_euclid(MS_PER_DAY);
    // customer.classify
    let in_category_window = visits_within(s, day, p.category_window_days);
    let category = if in_category_window >= p.regular_from_visits {
        Some("regular")
    } else if in_category_window >= p.occasional_from_visits {
        Some("occasional")
    } else if in_category_window >= 1 {
        Some("one_time")
    } else {
        None
    };
    let frequent = category == Some("regular");
    let nps_class = s.nps_score.map(|score| {
        if score >= p.promoter_from_score {
            "promoter"
        } else if score <= p.detractor_up_to_score {
            "detractor"
        } else {
            "passive"
        }
    });
    let open_complaints = s.complaints.len();
    let overdue = s.complaints.iter().filter(|c| c.overdue).count();
    let attitude = if nps_class == Some("promoter") && open_complaints == 0 {
        "positive"
    } else if nps_class == Some("detractor") || overdue > 0 {
        "negative"
    } else {
        "unknown"
    };
    let loyalty_type = match attitude {
        "positive" => Some(if frequent { "true" } else { "latent" }),
        "negative" => Some(if frequent { "spurious" } else { "none" }),
        _ => None,
    };
    let stage = if s.visits == 0 {
        "prospect"
    } else if visits_within(s, day, p.attached_window_days) >= p.attached_visits {
        if attitude == "positive" {
            "loyal"
        } else {
            "attached"
        }
    } else if s.visits >= 2 {
        "repeat"
    } else {
        "first_purchase"
    };
    let (_, p_alive, reasons) = fold::risk_on(s, day, p);

    out.push_str("{\"customer_id\":");
    write_json_str(out, &s.customer_id);
    out.push_str(",\"tier\":");
    write_json_str(out, &p.tier_names[s.tier]);
    out.push_str(",\"points\":");
    out.push_str(&s.points.to_string());
    out.push_str(",\"lifetime_spend_minor\":");
    out.push_str(&s.lifetime_spend_minor.to_string());
    out.push_str(",\"rolling_spend_minor\":");
    out.push_str(&fold::rolling_spend(s, day, p).to_string());
    out.push_str(",\"visits\":");
    out.push_str(&s.visits.to_string());
    for (name, visit) in [
        ("first_visit", s.first_visit_day),
        ("last_visit", s.last_visit_day),
    ] {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        match visit {
            Some(visit) => {
                out.push('"');
                write_date(out, visit);
                out.push('"');
            }
            None => out.push_str("null"),
        }
    }
    out.push_str(",\"stage\":\"");
    out.push_str(stage);
    out.push_str("\",\"category\":");
    push_opt_str(out, category);
    out.push_str(",\"nps_class\":");
    push_opt_str(out, nps_class);
    out.push_str(",\"p_alive\":");
    write_float(out, p_alive);
    out.push_str(",\"churn_level\":");
    write_json_str(out, &p.level_names[s.churn_level]);
    out.push_str(",\"churn_reasons\":");
    write_reasons(out, reasons);
    out.push_str(",\"loyalty_type\":");
    push_opt_str(out, loyalty_type);
    out.push_str(",\"frequency\":\"");
    out.push_str(if frequent { "frequent" } else { "rare" });
    out.push_str("\",\"attitude\":\"");
    out.push_str(attitude);
    out.push_str("\",\"nps_score\":");
    push_opt_int(out, s.nps_score);
    out.push_str(",\"receipts\":");
    out.push_str(&s.receipts.to_string());
    out.push_str(",\"average_check_minor\":");
    push_opt_int(
        out,
        (s.receipts != 0).then(|| s.lifetime_spend_minor.div_euclid(s.receipts)),
    );
    out.push_str(",\"open_complaints\":");
    out.push_str(&open_complaints.to_string());
    out.push_str(",\"overdue_complaints\":");
    out.push_str(&overdue.to_string());
    // {card.category: stamps on the card now} over zip(program cards, state cards), then
    // every program card's category at 0 if missing: a dict, so a repeated category keeps
    // its first place and its last value
    let mut cards: Vec<(&str, i64)> = Vec::with_capacity(p.cards.len());
    for ((category, n), (stamps, rewards)) in p.cards.iter().zip(&s.punch_cards) {
        let now = 0.max(stamps - rewards * n);
        match cards.iter_mut().find(|(c, _)| *c == category.as_str()) {
            Some(entry) => entry.1 = now,
            None => cards.push((category.as_str(), now)),
        }
    }
    for (category, _) in &p.cards {
        if !cards.iter().any(|(c, _)| *c == category.as_str()) {
            cards.push((category.as_str(), 0));
        }
    }
    out.push_str(",\"punch_cards\":{");
    for (position, (category, now)) in cards.iter().enumerate() {
        if position > 0 {
            out.push(',');
        }
        write_json_str(out, category);
        out.push(':');
        out.push_str(&now.to_string());
    }
    out.push_str("},\"requalify_at\":");
    match s.requalify_ms {
        Some(ms) => {
            out.push('"');
            write_iso_ms(out, ms);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"currency\":");
    write_json_str(out, &p.currency);
    out.push_str(",\"as_of\":");
    write_json_str(out, as_of_iso);
    out.push_str("}\n");
}

/// repr(x) as the native engine writes floats (for tests against Python's repr).
#[pyfunction]
fn float_repr(x: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, x);
    out
}

/// json.dumps(s) as the native engine writes strings (for tests).
#[pyfunction]
fn json_string(s: &str) -> String {
    let mut out = String::new();
    write_json_str(&mut out, s);
    out
}

/// str.strip() as the native reader strips (for tests).
#[pyfunction]
fn strip(s: &str) -> String {
    py_strip(s).to_owned()
}

/// events.output_event_id (for tests).
#[pyfunction]
fn output_event_id(customer_id: &str, kind: &str, cause: &str) -> String {
    text::output_event_id(customer_id, kind, cause)
}

/// The epoch milliseconds of a time the fast reader accepts, or None (for tests).
#[pyfunction]
fn parse_time(value: &str) -> Option<i64> {
    parse::parse_utc_time(value)
}

#[pymodule]
fn loyalty_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add("Unsupported", m.py().get_type::<Unsupported>())?;
    m.add_function(wrap_pyfunction!(float_repr, m)?)?;
    m.add_function(wrap_pyfunction!(json_string, m)?)?;
    m.add_function(wrap_pyfunction!(strip, m)?)?;
    m.add_function(wrap_pyfunction!(output_event_id, m)?)?;
    m.add_function(wrap_pyfunction!(parse_time, m)?)?;
    Ok(())
}
