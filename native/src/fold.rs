//! streams/core/fold.py, function for function: one customer's state through their events
//! and through time. The same integer arithmetic (floor division), the same float operations
//! in the same order (so P(alive) and the scores are the same f64), the same output ids.
//!
//! One difference of shape, not of result: Python's `apply` changes a draft and drops it when
//! the event turns out to break the contract (a `RuleViolation`), so the state stays as it
//! was, un-advanced. Here every violation is checked first (`violation`), against the state
//! as `apply` would see it after advancing and pruning, and only then is the state changed in
//! place; nothing is emitted for a violating event. The one check that needs the advanced
//! state itself (the points balance, which expiry and a downgrade change) advances a copy,
//! and only when the balance could pass its bound at all. The core's limits
//! (streams/core/limits.py, here `limits`) are checked where `apply` checks them.

use std::collections::VecDeque;

use crate::limits::{
    event_time_problem, id_problem, id_too_long, time_in_bounds, AVRO_LONG_MAX,
    MAX_OPEN_COMPLAINTS, MAX_RETURNABLE_PURCHASES, MAX_REWARDS_PER_PURCHASE,
};
use crate::out::Sink;
use crate::program::Program;
use crate::text::{Cause, MS_PER_DAY, MS_PER_HOUR};

pub const RECENT_IDS: usize = 8;

pub enum Body {
    Purchase {
        total_minor: i64,
    },
    Return {
        purchase_event_id: String,
        amount_minor: Option<i64>,
    },
    Nps {
        score: i64,
    },
    ComplaintOpened {
        complaint_id: String,
    },
    ComplaintResolved {
        complaint_id: String,
    },
}

pub struct Event {
    pub event_id: String,
    /// the customer's number: Engine::customer_ids holds the id
    pub customer: u32,
    pub at_ms: i64,
    pub line: u64,
    /// the event's currency when it is not the program's
    pub currency: Option<Box<str>>,
    pub has_items: bool,
    /// the first item whose quantity is below 1: its position (from 1) and quantity
    pub bad_quantity: Option<(usize, i64)>,
    /// per punch card of the program: the quantity of the event's items in its category
    /// (wide: the sum of many 64-bit quantities); empty when every one is zero
    pub card_quantities: Vec<i128>,
    pub body: Body,
}

#[derive(Clone)]
pub struct PurchaseRecord {
    pub event_id: String,
    pub at_ms: i64,
    pub spend_left_minor: i64,
    pub points_left: i64,
    pub stamps_left: Vec<i64>,
    pub upgraded_from: Option<usize>,
    pub requalify_before_ms: Option<i64>,
}

#[derive(Clone)]
pub struct Complaint {
    pub complaint_id: String,
    pub opened_ms: i64,
    pub overdue: bool,
}

#[derive(Clone)]
pub struct State {
    pub customer_id: String,
    pub tier: usize,
    pub requalify_ms: Option<i64>,
    pub warned_ms: Option<i64>,
    pub points: i64,
    pub last_purchase_ms: Option<i64>,
    pub lifetime_spend_minor: i64,
    pub receipts: i64,
    pub visits: i64,
    pub first_visit_day: Option<i64>,
    pub last_visit_day: Option<i64>,
    pub spend_days: Vec<(i64, i64)>,
    pub recent_checks: VecDeque<i64>,
    pub punch_cards: Vec<(i64, i64)>, // (stamps, rewards); empty until the first stamp
    pub purchases: Vec<PurchaseRecord>,
    pub nps_score: Option<i64>,
    pub nps_ms: Option<i64>,
    pub complaints: Vec<Complaint>,
    pub churn_level: usize,
    pub churn_day: Option<i64>,
    pub recent_ids: VecDeque<String>,
}

impl State {
    pub fn new(customer_id: &str) -> State {
        State {
            customer_id: customer_id.to_owned(),
            tier: 0,
            requalify_ms: None,
            warned_ms: None,
            points: 0,
            last_purchase_ms: None,
            lifetime_spend_minor: 0,
            receipts: 0,
            visits: 0,
            first_visit_day: None,
            last_visit_day: None,
            spend_days: Vec::new(),
            recent_checks: VecDeque::new(),
            punch_cards: Vec::new(),
            purchases: Vec::new(),
            nps_score: None,
            nps_ms: None,
            complaints: Vec::new(),
            churn_level: 0,
            churn_day: None,
            recent_ids: VecDeque::with_capacity(RECENT_IDS),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheduled {
    Overdue,
    Expiry,
    Warning,
    Requalification,
}

impl Scheduled {
    fn name(self) -> &'static str {
        match self {
            Scheduled::Overdue => "overdue",
            Scheduled::Expiry => "expiry",
            Scheduled::Warning => "warning",
            Scheduled::Requalification => "requalification",
        }
    }
}

pub enum Applied {
    Duplicate,
    Violation(String),
    Changed,
}

// ---- public API -------------------------------------------------------------------------------

fn is_duplicate(s: &State, event: &Event) -> bool {
    if s.recent_ids.iter().any(|id| *id == event.event_id) {
        return true;
    }
    matches!(event.body, Body::Purchase { .. })
        && s.purchases.iter().any(|p| p.event_id == event.event_id)
}

pub fn apply(
    s: &mut State,
    event: &Event,
    p: &Program,
    sink: &mut Sink,
) -> Result<Applied, String> {
    // the time and the ids first, before the duplicate check (fold.apply)
    if !time_in_bounds(event.at_ms) || id_too_long(&event.event_id) || id_too_long(&s.customer_id) {
        let reason = match event_time_problem(event.at_ms) {
            Some(reason) => Some(reason),
            None => match id_problem("event_id", &event.event_id)? {
                Some(reason) => Some(reason),
                None => id_problem("customer_id", &s.customer_id)?,
            },
        };
        if let Some(reason) = reason {
            return Ok(Applied::Violation(reason));
        }
    }
    if is_duplicate(s, event) {
        return Ok(Applied::Duplicate);
    }
    let at_ms = event.at_ms;
    if let Some(reason) = violation(s, event, at_ms, p)? {
        return Ok(Applied::Violation(reason));
    }
    advance_to(s, at_ms, p, sink)?;
    prune(s, at_ms, p);
    match &event.body {
        Body::Purchase { total_minor } => purchase(s, event, *total_minor, at_ms, p, sink)?,
        Body::Return {
            purchase_event_id,
            amount_minor,
        } => give_back(s, event, purchase_event_id, *amount_minor, at_ms, p, sink),
        Body::Nps { score } => {
            if s.nps_ms.is_none() || Some(at_ms) >= s.nps_ms {
                s.nps_score = Some(*score);
                s.nps_ms = Some(at_ms);
            }
        }
        Body::ComplaintOpened { complaint_id } => {
            complaint_opened(s, event, complaint_id, at_ms, p, sink)
        }
        Body::ComplaintResolved { complaint_id } => {
            s.complaints.retain(|c| c.complaint_id != *complaint_id);
        }
    }
    assess_churn(s, at_ms, Cause::Event(&event.event_id), p, sink);
    if s.recent_ids.len() >= RECENT_IDS {
        s.recent_ids.pop_front();
    }
    s.recent_ids.push_back(event.event_id.clone());
    Ok(Applied::Changed)
}

/// `advance(state, now)`: everything time alone changes up to and including `now`.
pub fn advance(s: &mut State, now_ms: i64, p: &Program, sink: &mut Sink) -> Result<(), String> {
    advance_to(s, now_ms, p, sink)
}

fn bad_quantity(event: &Event) -> Option<String> {
    let (position, quantity) = event.bad_quantity.filter(|_| event.has_items)?;
    Some(format!("items[{position}].quantity {quantity} is below 1"))
}

/// The RuleViolation reason `apply` would raise, checked before anything changes; an Err when
/// the engine cannot tell.
fn violation(s: &State, event: &Event, at_ms: i64, p: &Program) -> Result<Option<String>, String> {
    Ok(match &event.body {
        Body::Purchase { total_minor } => {
            if let Some(currency) = &event.currency {
                return Ok(Some(format!(
                    "currency {currency} is not the program's {}",
                    p.currency
                )));
            }
            if *total_minor < 0 {
                return Ok(Some(format!("total_minor {total_minor} is negative")));
            }
            if let Some(reason) = bad_quantity(event) {
                return Ok(Some(reason));
            }
            purchase_limits(s, event, *total_minor, at_ms, p)?
        }
        Body::Return {
            purchase_event_id,
            amount_minor,
        } => {
            if let Some(currency) = &event.currency {
                return Ok(Some(format!(
                    "currency {currency} is not the program's {}",
                    p.currency
                )));
            }
            if let Some(reason) = id_problem("purchase_event_id", purchase_event_id)? {
                return Ok(Some(reason));
            }
            if let Some(reason) = bad_quantity(event) {
                return Ok(Some(reason));
            }
            // the records `apply` sees after pruning at the event's time: the stale prefix goes
            let stale = stale_purchases(s, at_ms, p);
            let return_ms = p.return_window_days * MS_PER_DAY;
            let record = s.purchases[stale..]
                .iter()
                .find(|r| r.event_id == *purchase_event_id);
            let record = match record {
                Some(record) if record.at_ms + return_ms > at_ms => record,
                _ => {
                    return Ok(Some(format!(
                        "purchase {purchase_event_id} is unknown for this customer, past the {}-day return window, or older than the customer's last {MAX_RETURNABLE_PURCHASES} purchases",
                        p.return_window_days
                    )))
                }
            };
            let left = record.spend_left_minor;
            let full = amount_minor.is_none();
            let amount = amount_minor.unwrap_or(left);
            if amount < 0 {
                return Ok(Some(format!("amount_minor {amount} is negative")));
            }
            if amount > left {
                return Ok(Some(format!(
                    "amount_minor {amount} is more than the {left} that remains of purchase {}",
                    record.event_id
                )));
            }
            if full
                && left == 0
                && record.points_left == 0
                && !record.stamps_left.iter().any(|x| *x != 0)
            {
                return Ok(Some(format!(
                    "purchase {} is already fully returned",
                    record.event_id
                )));
            }
            None
        }
        Body::Nps { score } => {
            if !(0..=10).contains(score) {
                return Ok(Some(format!("score {score} is not within 0..10")));
            }
            None
        }
        Body::ComplaintOpened { complaint_id } => {
            // advancing marks complaints overdue, it never closes one: these are apply's
            if s.complaints.iter().any(|c| c.complaint_id == *complaint_id) {
                return Ok(None);
            }
            if let Some(reason) = id_problem("complaint_id", complaint_id)? {
                return Ok(Some(reason));
            }
            if s.complaints.len() >= MAX_OPEN_COMPLAINTS {
                return Ok(Some(format!(
                    "the customer already has {} open complaints, the most one customer may \
                     have: resolve some (complaint_resolved) before opening {complaint_id}",
                    s.complaints.len()
                )));
            }
            None
        }
        Body::ComplaintResolved { .. } => None,
    })
}

/// fold._purchase's limits, on the sums the state would hold: lifetime spend, points (at the
/// rate of the tier held once time has advanced to the purchase) and punch-card rewards.
fn purchase_limits(
    s: &State,
    event: &Event,
    spend: i64,
    at_ms: i64,
    p: &Program,
) -> Result<Option<String>, String> {
    if i128::from(s.lifetime_spend_minor) + i128::from(spend) > AVRO_LONG_MAX {
        return Ok(Some(format!(
            "total_minor {spend} would take the customer's lifetime spend past {AVRO_LONG_MAX} \
             (the largest amount the contract carries): check the amount's unit"
        )));
    }
    // Advancing only expires points and lowers the tier: when no tier up to the one held
    // could earn enough to pass the bound, the balance stays within it whatever is due.
    let most = (0..=s.tier)
        .map(|tier| p.points_for_wide(spend, tier))
        .max()
        .unwrap_or(0);
    if i128::from(s.points) + most > AVRO_LONG_MAX {
        // the balance and tier apply sees: a copy of the state advanced to the purchase
        let mut advanced = s.clone();
        let mut scratch = Sink::new(false);
        advance_to(&mut advanced, at_ms, p, &mut scratch)?;
        let points = p.points_for_wide(spend, advanced.tier);
        if i128::from(advanced.points) + points > AVRO_LONG_MAX {
            return Ok(Some(format!(
                "total_minor {spend} would earn {points} points, taking the balance past \
                 {AVRO_LONG_MAX} (the largest number the contract carries): check the amount's \
                 unit"
            )));
        }
    }
    if !p.cards.is_empty() && event.has_items && event.card_quantities.iter().any(|q| *q != 0) {
        // a card fills at every N stamps not yet rewarded: max(0, stamps // N - rewards) times
        let mut earned: i128 = 0;
        for (index, (_, n)) in p.cards.iter().enumerate() {
            let (stamps, rewards) = s.punch_cards.get(index).copied().unwrap_or((0, 0));
            let filled = (i128::from(stamps) + event.card_quantities[index])
                .div_euclid(i128::from(*n))
                - i128::from(rewards);
            earned += filled.max(0);
        }
        if earned > MAX_REWARDS_PER_PURCHASE {
            return Ok(Some(format!(
                "its items would fill punch cards {earned} times, more than the \
                 {MAX_REWARDS_PER_PURCHASE} one purchase may earn: a bulk sale should not name \
                 the punch card's category on its lines"
            )));
        }
    }
    Ok(None)
}

// ---- time -------------------------------------------------------------------------------------

fn advance_to(s: &mut State, now_ms: i64, p: &Program, sink: &mut Sink) -> Result<(), String> {
    loop {
        let scheduled = next_scheduled(s, p);
        let horizon = match scheduled {
            Some((due, _)) if due <= now_ms => due,
            _ => now_ms,
        };
        if let Some(change_day) = silent_churn_change(s, horizon.div_euclid(MS_PER_DAY), p) {
            let at_ms = change_day * MS_PER_DAY;
            assess_churn(s, at_ms, Cause::Due("churn", at_ms), p, sink);
            continue;
        }
        match scheduled {
            Some((due_ms, kind)) if due_ms <= now_ms => {
                fire(s, due_ms, kind, p, sink)?;
                assess_churn(s, due_ms, Cause::Due(kind.name(), due_ms), p, sink);
            }
            _ => return Ok(()),
        }
    }
}

fn next_scheduled(s: &State, p: &Program) -> Option<(i64, Scheduled)> {
    let mut best: Option<(i64, Scheduled)> = None;
    let better = |best: &Option<(i64, Scheduled)>, due: i64| best.is_none_or(|(b, _)| due < b);
    if !s.complaints.is_empty() {
        let sla_ms = p.complaint_sla_hours * MS_PER_HOUR;
        for complaint in &s.complaints {
            if !complaint.overdue {
                let due = complaint.opened_ms + sla_ms;
                if better(&best, due) {
                    best = Some((due, Scheduled::Overdue));
                }
            }
        }
    }
    if s.points > 0 {
        if let Some(last) = s.last_purchase_ms {
            let due = last + p.points_expiry_days * MS_PER_DAY;
            if better(&best, due) {
                best = Some((due, Scheduled::Expiry));
            }
        }
    }
    if let Some(requalify_ms) = s.requalify_ms {
        if s.warned_ms != Some(requalify_ms) {
            let due = requalify_ms - p.downgrade_warning_days * MS_PER_DAY;
            if better(&best, due) {
                best = Some((due, Scheduled::Warning));
            }
        }
        if better(&best, requalify_ms) {
            best = Some((requalify_ms, Scheduled::Requalification));
        }
    }
    best
}

fn fire(
    s: &mut State,
    at_ms: i64,
    kind: Scheduled,
    p: &Program,
    sink: &mut Sink,
) -> Result<(), String> {
    let cause = Cause::Due(kind.name(), at_ms);
    match kind {
        Scheduled::Overdue => {
            let sla_ms = p.complaint_sla_hours * MS_PER_HOUR;
            for c in s.complaints.iter_mut() {
                if !c.overdue && c.opened_ms + sla_ms <= at_ms {
                    c.overdue = true;
                }
            }
        }
        Scheduled::Expiry => {
            let last = s.last_purchase_ms.ok_or("expiry without a purchase")?;
            sink.points_expired(&s.customer_id, at_ms, cause, p, s.points, last);
            s.points = 0;
        }
        Scheduled::Warning => {
            prune(s, at_ms, p);
            warn_of_downgrade(s, at_ms, cause, p, sink);
        }
        Scheduled::Requalification => {
            prune(s, at_ms, p);
            requalify(s, at_ms, cause, p, sink);
        }
    }
    Ok(())
}

// ---- tiers ------------------------------------------------------------------------------------

pub fn rolling_spend(s: &State, day: i64, p: &Program) -> i64 {
    window_spend(&s.spend_days, day, p)
}

fn window_spend(spend_days: &[(i64, i64)], day: i64, p: &Program) -> i64 {
    let start = day - p.qualification_window_days;
    spend_days
        .iter()
        .filter(|(d, _)| start < *d && *d <= day)
        .map(|(_, spend)| spend)
        .sum()
}

fn warn_of_downgrade(s: &mut State, at_ms: i64, cause: Cause, p: &Program, sink: &mut Sink) {
    let requalify_ms = s
        .requalify_ms
        .expect("a warning is due only with a re-qualification time");
    s.warned_ms = Some(requalify_ms);
    let projected = rolling_spend(s, requalify_ms.div_euclid(MS_PER_DAY), p);
    let expected = p.tier_for_spend(projected);
    if expected >= s.tier {
        return;
    }
    let rolling = rolling_spend(s, at_ms.div_euclid(MS_PER_DAY), p);
    let to_keep = p.tier_thresholds[s.tier] - projected;
    sink.downgrade_warning(
        &s.customer_id,
        at_ms,
        cause,
        p,
        s.tier,
        expected,
        requalify_ms,
        rolling,
        to_keep,
    );
}

fn requalify(s: &mut State, at_ms: i64, cause: Cause, p: &Program, sink: &mut Sink) {
    let spend = rolling_spend(s, at_ms.div_euclid(MS_PER_DAY), p);
    let held = p.tier_for_spend(spend).min(s.tier);
    let requalify_ms = if held > 0 {
        Some(at_ms + p.requalification_days * MS_PER_DAY)
    } else {
        None
    };
    if held < s.tier {
        sink.tier_changed(
            &s.customer_id,
            at_ms,
            cause,
            p,
            s.tier,
            held,
            "requalification",
            spend,
            requalify_ms,
        );
    }
    s.tier = held;
    s.requalify_ms = requalify_ms;
}

// ---- purchases and returns --------------------------------------------------------------------

fn stale_purchases(s: &State, at_ms: i64, p: &Program) -> usize {
    let expired_before = at_ms - p.return_window_days * MS_PER_DAY;
    s.purchases
        .iter()
        .take_while(|r| r.at_ms <= expired_before)
        .count()
}

fn prune(s: &mut State, at_ms: i64, p: &Program) {
    let oldest_kept = at_ms.div_euclid(MS_PER_DAY) - p.longest_window_days;
    let stale_days = s
        .spend_days
        .iter()
        .take_while(|(day, _)| *day <= oldest_kept)
        .count();
    if stale_days > 0 {
        s.spend_days.drain(..stale_days);
    }
    let stale = stale_purchases(s, at_ms, p);
    if stale > 0 {
        s.purchases.drain(..stale);
    }
}

/// Adds spend to `day` (kept sorted); true when the day was not a visit yet.
fn with_spend(spend_days: &mut Vec<(i64, i64)>, day: i64, spend_minor: i64) -> bool {
    match spend_days.last_mut() {
        None => {
            spend_days.push((day, spend_minor));
            return true;
        }
        Some(last) if last.0 < day => {
            spend_days.push((day, spend_minor));
            return true;
        }
        Some(last) if last.0 == day => {
            last.1 += spend_minor;
            return false;
        }
        _ => {}
    }
    for index in 0..spend_days.len() {
        if spend_days[index].0 == day {
            spend_days[index].1 += spend_minor;
            return false;
        }
        if spend_days[index].0 > day {
            spend_days.insert(index, (day, spend_minor));
            return true;
        }
    }
    unreachable!("the last bucket is after day")
}

fn purchase(
    s: &mut State,
    event: &Event,
    spend: i64,
    at_ms: i64,
    p: &Program,
    sink: &mut Sink,
) -> Result<(), String> {
    let day = at_ms.div_euclid(MS_PER_DAY);
    let points = p.points_for(spend, s.tier)?;
    let new_day = with_spend(&mut s.spend_days, day, spend);
    match (s.first_visit_day, s.last_visit_day) {
        (Some(first), Some(last)) => {
            if new_day && day != first && day != last {
                s.visits += 1;
            }
            if day < first {
                s.first_visit_day = Some(day);
            }
            if day > last {
                s.last_visit_day = Some(day);
            }
        }
        _ => {
            s.first_visit_day = Some(day);
            s.last_visit_day = Some(day);
            s.visits = 1;
        }
    }

    let mut stamps_given: Vec<i64> = Vec::new();
    if !p.cards.is_empty() && event.has_items && event.card_quantities.iter().any(|q| *q != 0) {
        stamps_given = event
            .card_quantities
            .iter()
            .map(|q| i64::try_from(*q).map_err(|_| format!("stamps {q} beyond 64 bits")))
            .collect::<Result<_, _>>()?;
        stamp(s, &stamps_given, event, p, sink);
    }

    let rolling = window_spend(&s.spend_days, day, p);
    let reached = p.tier_for_spend(rolling);
    let mut upgraded_from = None;
    let requalify_before = s.requalify_ms;
    if reached > s.tier {
        upgraded_from = Some(s.tier);
        let requalify_ms = at_ms + p.requalification_days * MS_PER_DAY;
        sink.tier_changed(
            &s.customer_id,
            at_ms,
            Cause::Event(&event.event_id),
            p,
            s.tier,
            reached,
            "purchase",
            rolling,
            Some(requalify_ms),
        );
        s.tier = reached;
        s.requalify_ms = Some(requalify_ms);
    }
    if s.purchases.len() >= MAX_RETURNABLE_PURCHASES {
        // the oldest are forgotten: a return of one is refused as an unknown purchase
        let forgotten = s.purchases.len() - MAX_RETURNABLE_PURCHASES + 1;
        s.purchases.drain(..forgotten);
    }
    s.purchases.push(PurchaseRecord {
        event_id: event.event_id.clone(),
        at_ms,
        spend_left_minor: spend,
        points_left: points,
        stamps_left: stamps_given,
        upgraded_from,
        requalify_before_ms: if upgraded_from.is_some() {
            requalify_before
        } else {
            None
        },
    });
    s.points += points;
    if s.last_purchase_ms.is_none_or(|last| at_ms > last) {
        s.last_purchase_ms = Some(at_ms);
    }
    s.lifetime_spend_minor += spend;
    s.receipts += 1;
    if s.recent_checks.len() >= p.recent_receipts {
        s.recent_checks.pop_front();
    }
    s.recent_checks.push_back(spend);
    Ok(())
}

fn stamp(s: &mut State, given: &[i64], event: &Event, p: &Program, sink: &mut Sink) {
    if s.punch_cards.is_empty() {
        s.punch_cards = vec![(0, 0); p.cards.len()];
    }
    for (index, (category, n)) in p.cards.iter().enumerate() {
        let (mut stamps, mut rewards) = s.punch_cards[index];
        stamps += given[index];
        while stamps - rewards * n >= *n {
            rewards += 1;
            sink.punch_card_reward(&s.customer_id, event, p, category, *n, rewards);
        }
        s.punch_cards[index] = (stamps, rewards);
    }
}

fn give_back(
    s: &mut State,
    event: &Event,
    purchase_event_id: &str,
    amount_minor: Option<i64>,
    at_ms: i64,
    p: &Program,
    sink: &mut Sink,
) {
    let index = s
        .purchases
        .iter()
        .position(|r| r.event_id == purchase_event_id)
        .expect("checked by violation()");
    let record = s.purchases[index].clone();
    let left = record.spend_left_minor;
    let full = amount_minor.is_none();
    let amount = amount_minor.unwrap_or(left);
    let left_after = left - amount;
    let everything = full || left_after == 0;

    let points_left = if everything {
        0
    } else {
        proportion(record.points_left, left_after, left)
    };
    let mut stamps_left = record.stamps_left.clone();
    if !stamps_left.is_empty() {
        if everything {
            stamps_left.iter_mut().for_each(|x| *x = 0);
        } else if event.has_items {
            for (position, held) in stamps_left.iter_mut().enumerate() {
                let back = event.card_quantities.get(position).copied().unwrap_or(0);
                // at most the held count, which is an i64
                *held = i64::try_from((i128::from(*held) - back).max(0)).unwrap_or(*held);
            }
        } else {
            for held in stamps_left.iter_mut() {
                *held = proportion(*held, left_after, left);
            }
        }
        if stamps_left != record.stamps_left {
            for ((card, before), after) in s
                .punch_cards
                .iter_mut()
                .zip(&record.stamps_left)
                .zip(&stamps_left)
            {
                card.0 -= before - after;
            }
        }
    }
    s.points = 0.max(s.points - (record.points_left - points_left));
    s.lifetime_spend_minor -= amount;
    let day = record.at_ms.div_euclid(MS_PER_DAY);
    if amount != 0 && s.spend_days.iter().any(|(d, _)| *d == day) {
        with_spend(&mut s.spend_days, day, -amount);
    }
    {
        let updated = &mut s.purchases[index];
        updated.spend_left_minor = left_after;
        updated.points_left = points_left;
        updated.stamps_left = stamps_left;
    }

    // an upgrade this purchase caused is undone if the rest of the spend no longer holds it
    let upgraded_from = match record.upgraded_from {
        Some(from) if s.tier > from => from,
        _ => return,
    };
    let rolling = rolling_spend(s, at_ms.div_euclid(MS_PER_DAY), p);
    let tier = upgraded_from.max(p.tier_for_spend(rolling).min(s.tier));
    if tier >= s.tier {
        return;
    }
    let mut requalify_ms = s.requalify_ms;
    if tier == upgraded_from {
        requalify_ms = record.requalify_before_ms;
        if let Some(before) = requalify_ms {
            let moved = before.max(at_ms);
            requalify_ms = Some(moved);
            if moved - p.downgrade_warning_days * MS_PER_DAY <= at_ms {
                s.warned_ms = Some(moved);
            }
        }
    }
    sink.tier_changed(
        &s.customer_id,
        at_ms,
        Cause::Event(&event.event_id),
        p,
        s.tier,
        tier,
        "return",
        rolling,
        requalify_ms,
    );
    s.tier = tier;
    s.requalify_ms = requalify_ms;
}

// ---- feedback ---------------------------------------------------------------------------------

fn complaint_opened(
    s: &mut State,
    event: &Event,
    complaint_id: &str,
    at_ms: i64,
    p: &Program,
    sink: &mut Sink,
) {
    if s.complaints.iter().any(|c| c.complaint_id == complaint_id) {
        return;
    }
    s.complaints.push(Complaint {
        complaint_id: complaint_id.to_owned(),
        opened_ms: at_ms,
        overdue: false,
    });
    if s.tier < p.service_recovery_rank {
        return;
    }
    sink.service_recovery(&s.customer_id, event, p, complaint_id, s.tier);
}

// ---- churn ------------------------------------------------------------------------------------

pub const REASON_LOW_P_ALIVE: u8 = 1;
pub const REASON_DETRACTOR: u8 = 2;
pub const REASON_OVERDUE: u8 = 4;
pub const REASON_FALLING: u8 = 8;
pub const REASON_GAP: u8 = 16;
pub const REASON_NAMES: [(u8, &str); 5] = [
    (REASON_LOW_P_ALIVE, "low_p_alive"),
    (REASON_DETRACTOR, "detractor"),
    (REASON_OVERDUE, "overdue_complaint"),
    (REASON_FALLING, "falling_average_check"),
    (REASON_GAP, "gap_beyond_cadence"),
];

fn is_detractor(s: &State, p: &Program) -> bool {
    s.nps_score
        .is_some_and(|score| score <= p.detractor_up_to_score)
}

fn has_overdue(s: &State) -> bool {
    s.complaints.iter().any(|c| c.overdue)
}

/// fold._falling_check / churn.is_average_check_falling
fn falling_check(s: &State, p: &Program) -> bool {
    let held = s.recent_checks.len();
    if held < p.recent_receipts || s.receipts < 2 * held as i64 {
        return false;
    }
    let recent_sum = s.recent_checks.iter().map(|x| i128::from(*x)).sum::<i128>();
    let recent_average = true_division(recent_sum, held as i128);
    let lifetime_average =
        true_division(i128::from(s.lifetime_spend_minor), i128::from(s.receipts));
    lifetime_average > 0.0 && recent_average < p.falling_check_ratio * lifetime_average
}

/// Python's `int / int`: the quotient correctly rounded to a float (one rounding, where
/// `n as f64 / d as f64` rounds twice once n passes 2**53). `d` is positive.
fn true_division(n: i128, d: i128) -> f64 {
    let (a, b) = (n.unsigned_abs(), d.unsigned_abs());
    let exact = 1u128 << 53;
    let magnitude = if a == 0 {
        0.0
    } else if a <= exact && b <= exact {
        a as f64 / b as f64
    } else {
        // a quotient of 65 or 66 bits, truncated, its lowest bit set when anything was cut
        // off: the one rounding to 53 bits (u128 as f64 rounds to nearest, ties to even) is
        // then the rounding of the exact quotient
        let bits = |x: u128| 128 - i64::from(x.leading_zeros());
        let shift = 65 + bits(b) - bits(a);
        let (quotient, remainder) = if shift >= 0 {
            let scaled = a << shift;
            (scaled / b, scaled % b)
        } else {
            let scaled = b << -shift;
            (a / scaled, a % scaled)
        };
        let rounded = (quotient | u128::from(remainder != 0)) as f64;
        rounded * 2f64.powi(-(shift as i32))
    };
    if n < 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// `part * numerator // denominator` (denominator positive, the result within `part`).
fn proportion(part: i64, numerator: i64, denominator: i64) -> i64 {
    let exact = (i128::from(part) * i128::from(numerator)).div_euclid(i128::from(denominator));
    i64::try_from(exact).expect("a share of an i64 is an i64")
}

/// churn._expit_neg(churn._log_odds_dropped(x, t_x, T)), expression for expression.
fn p_alive(x: i64, t_x: f64, big_t: f64, p: &Program) -> f64 {
    let growth = ((big_t - t_x) / (p.alpha + t_x)).ln_1p();
    let log_odds = (p.r + x as f64) * growth + p.a.ln() - (p.b + x as f64 - 1.0).ln();
    if log_odds > 700.0 {
        (-log_odds).exp()
    } else {
        1.0 / (1.0 + log_odds.exp())
    }
}

/// fold.risk_on: the risk score, P(alive) and reasons as of a day (never before the last
/// visit), as churn.risk_score computes them.
pub fn risk_on(s: &State, day: i64, p: &Program) -> (f64, f64, u8) {
    let day = match s.last_visit_day {
        Some(last) if day < last => last,
        _ => day,
    };
    let mut alive = 1.0;
    let mut gap_from = None;
    if let (Some(first), Some(last)) = (s.first_visit_day, s.last_visit_day) {
        let x = s.visits - 1;
        if x != 0 {
            let t_x = (last - first) as f64 / p.per_unit;
            let big_t = (day - first) as f64 / p.per_unit;
            alive = p_alive(x, t_x, big_t, p);
        }
        if x >= p.gap_min_repeat_visits {
            let mean_gap_days = (last - first) as f64 / x as f64;
            gap_from = Some(last + (p.gap_cadence_factor * mean_gap_days).floor() as i64 + 1);
        }
    }
    let mut score = 1.0 - alive;
    let mut reasons = 0;
    if alive < p.low_p_alive_below {
        reasons |= REASON_LOW_P_ALIVE;
    }
    if is_detractor(s, p) {
        score += p.w_detractor;
        reasons |= REASON_DETRACTOR;
    }
    if has_overdue(s) {
        score += p.w_overdue_complaint;
        reasons |= REASON_OVERDUE;
    }
    if falling_check(s, p) {
        score += p.w_falling_average_check;
        reasons |= REASON_FALLING;
    }
    if gap_from.is_some_and(|from| day >= from) {
        score += p.w_gap_beyond_cadence;
        reasons |= REASON_GAP;
    }
    (score.min(1.0), alive, reasons)
}

/// fold.risk_score_on: the score alone, the same arithmetic.
fn risk_score_on(s: &State, day: i64, p: &Program) -> f64 {
    let (first, last) = (s.first_visit_day, s.last_visit_day);
    let mut day = day;
    let mut alive = 1.0;
    let repeat = s.visits - 1;
    if let (Some(first), Some(last)) = (first, last) {
        if day < last {
            day = last;
        }
        if repeat > 0 {
            let (t_x, big_t) = if p.unit_is_days {
                ((last - first) as f64, (day - first) as f64)
            } else {
                (
                    (last - first) as f64 / p.per_unit,
                    (day - first) as f64 / p.per_unit,
                )
            };
            alive = p_alive(repeat, t_x, big_t, p);
        }
    }
    let mut score = 1.0 - alive;
    if is_detractor(s, p) {
        score += p.w_detractor;
    }
    if has_overdue(s) {
        score += p.w_overdue_complaint;
    }
    if falling_check(s, p) {
        score += p.w_falling_average_check;
    }
    if let (Some(first), Some(last)) = (first, last) {
        if repeat >= p.gap_min_repeat_visits {
            let mean_gap_days = (last - first) as f64 / repeat as f64;
            // "the first whole day strictly beyond factor x mean gap", as churn.gap_sign_from
            #[allow(clippy::int_plus_one)]
            if day >= last + (p.gap_cadence_factor * mean_gap_days).floor() as i64 + 1 {
                score += p.w_gap_beyond_cadence;
            }
        }
    }
    score.min(1.0)
}

fn assess_churn(s: &mut State, at_ms: i64, cause: Cause, p: &Program, sink: &mut Sink) {
    let day = at_ms.div_euclid(MS_PER_DAY);
    if s.churn_day.is_none_or(|churn_day| day > churn_day) {
        s.churn_day = Some(day);
    }
    if p.level_holds(s.churn_level, risk_score_on(s, day, p)) {
        return;
    }
    let (score, alive, reasons) = risk_on(s, day, p);
    let level = p.next_level(s.churn_level, score);
    if level == s.churn_level {
        return;
    }
    sink.churn_changed(
        &s.customer_id,
        at_ms,
        cause,
        p,
        level,
        s.churn_level,
        alive,
        reasons,
    );
    s.churn_level = level;
}

fn silent_churn_change(s: &State, horizon_day: i64, p: &Program) -> Option<i64> {
    let churn_day = s.churn_day?;
    if horizon_day <= churn_day || s.visits == 0 {
        return None;
    }
    let holds = |day: i64| p.level_holds(s.churn_level, risk_score_on(s, day, p));
    if holds(horizon_day) {
        return None;
    }
    let mut low = churn_day + 1;
    if low == horizon_day || !holds(low) {
        return Some(low);
    }
    if let Some(guess) = guess_churn_day(s, p) {
        if low < guess && guess <= horizon_day && !holds(guess) && holds(guess - 1) {
            return Some(guess);
        }
    }
    let mut high = horizon_day;
    while high - low > 1 {
        let middle = (low + high).div_euclid(2);
        if holds(middle) {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(high)
}

/// Python's ints do not overflow: a guess this far out compares as "beyond any horizon".
const FAR: i64 = i64::MAX / 4;

fn floor_to_day(x: f64) -> i64 {
    let floored = x.floor();
    if floored >= FAR as f64 {
        FAR
    } else if floored <= -(FAR as f64) {
        -FAR
    } else {
        floored as i64
    }
}

fn guess_churn_day(s: &State, p: &Program) -> Option<i64> {
    let (first, last) = (s.first_visit_day?, s.last_visit_day?);
    let repeat = s.visits - 1;
    if repeat < 1 {
        return None;
    }
    let mut fixed = 0.0;
    if is_detractor(s, p) {
        fixed += p.w_detractor;
    }
    if has_overdue(s) {
        fixed += p.w_overdue_complaint;
    }
    if falling_check(s, p) {
        fixed += p.w_falling_average_check;
    }
    let raise_at = p.level_holds[s.churn_level].1;
    let per_unit = p.per_unit;
    let t_x = (last - first) as f64 / per_unit;

    let first_day_below = |bound: f64| -> Option<i64> {
        if bound >= 1.0 {
            return Some(last);
        }
        if bound <= 0.0 {
            return None;
        }
        let target = (-bound).ln_1p() - bound.ln();
        let growth = (target - p.a.ln() + (p.b + repeat as f64 - 1.0).ln()) / (p.r + repeat as f64);
        if growth > 700.0 {
            return None;
        }
        let big_t = t_x + (p.alpha + t_x) * growth.exp_m1();
        Some(
            first
                .saturating_add(floor_to_day(big_t * per_unit))
                .saturating_add(1),
        )
    };

    let bound = 1.0 - raise_at + fixed;
    let mut guesses: Vec<i64> = first_day_below(bound).into_iter().collect();
    if repeat >= p.gap_min_repeat_visits {
        let mean_gap_days = (last - first) as f64 / repeat as f64;
        let gap_day = last + (p.gap_cadence_factor * mean_gap_days).floor() as i64 + 1;
        if let Some(with_gap) = first_day_below(bound + p.w_gap_beyond_cadence) {
            guesses.push(gap_day.max(with_gap));
        }
    }
    guesses.into_iter().min()
}

#[cfg(test)]
mod tests {
    use super::true_division;

    #[test]
    fn true_division_rounds_once_as_python() {
        // Python: 2355859469081156426 / 3 == 785286489693718784.0; the sum as f64 first
        // and then divided lands one unit off
        let n: i128 = 2_355_859_469_081_156_426;
        assert_eq!(true_division(n, 3), 785_286_489_693_718_784.0);
        assert_ne!(n as f64 / 3.0, true_division(n, 3));
        assert_eq!(true_division(-n, 3), -785_286_489_693_718_784.0);
        assert_eq!(true_division(7, 2), 3.5);
        assert_eq!(true_division(0, 5), 0.0);
    }
}
