//! The output events, written as `streams.tools.replay.output_line` writes them: one JSON
//! object per line, `schema` and `topic` first, then the record's fields in their dataclass
//! order, separators "," and ":" and ASCII-only strings.

use crate::fold::{Event, REASON_NAMES};
use crate::program::Program;
use crate::text::{output_event_id, write_float, write_iso_ms, write_json_str, Cause};

pub const KIND_NAMES: [&str; 5] = [
    "ChurnRiskChanged",
    "PointsExpired",
    "RewardEarned",
    "TierChanged",
    "TierDowngradeWarning",
];
const CHURN: usize = 0;
const EXPIRED: usize = 1;
const REWARD: usize = 2;
const TIER: usize = 3;
const WARNING: usize = 4;

/// Counts the outputs by kind and, when asked, keeps their lines until they are written.
pub struct Sink {
    pub counts: [u64; 5],
    pub text: Option<String>,
}

impl Sink {
    pub fn new(with_text: bool) -> Sink {
        Sink {
            counts: [0; 5],
            text: if with_text {
                Some(String::with_capacity(1 << 20))
            } else {
                None
            },
        }
    }

    /// Starts a line (or returns None when only counting): the common head of every output.
    #[allow(clippy::too_many_arguments)]
    fn head(
        &mut self,
        kind: usize,
        schema: &str,
        topic: &str,
        id_kind: &str,
        customer_id: &str,
        at_ms: i64,
        cause: Cause,
        p: &Program,
    ) -> Option<&mut String> {
        self.counts[kind] += 1;
        let out = self.text.as_mut()?;
        out.push_str("{\"schema\":\"");
        out.push_str(schema);
        out.push_str("\",\"topic\":\"");
        out.push_str(topic);
        out.push_str("\",\"event_id\":\"");
        let cause = cause.text();
        out.push_str(&output_event_id(customer_id, id_kind, &cause));
        out.push_str("\",\"customer_id\":");
        write_json_str(out, customer_id);
        out.push_str(",\"occurred_at\":\"");
        write_iso_ms(out, at_ms);
        out.push_str("\",\"caused_by\":");
        write_json_str(out, &cause);
        out.push_str(",\"rules_version\":");
        write_json_str(out, &p.version);
        Some(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn tier_changed(
        &mut self,
        customer_id: &str,
        at_ms: i64,
        cause: Cause,
        p: &Program,
        previous: usize,
        new: usize,
        reason: &str,
        rolling: i64,
        requalify_ms: Option<i64>,
    ) {
        let Some(out) = self.head(
            TIER,
            "loyalty.v1.TierChanged",
            "tier_changes",
            "tier",
            customer_id,
            at_ms,
            cause,
            p,
        ) else {
            return;
        };
        out.push_str(",\"previous_tier\":");
        write_json_str(out, &p.tier_names[previous]);
        out.push_str(",\"new_tier\":");
        write_json_str(out, &p.tier_names[new]);
        out.push_str(if new > previous {
            ",\"direction\":\"UP\""
        } else {
            ",\"direction\":\"DOWN\""
        });
        out.push_str(",\"reason\":\"");
        out.push_str(reason);
        out.push_str("\",\"rolling_spend_minor\":");
        out.push_str(&rolling.to_string());
        out.push_str(",\"currency\":");
        write_json_str(out, &p.currency);
        out.push_str(",\"requalify_at\":");
        match requalify_ms {
            Some(ms) => {
                out.push('"');
                write_iso_ms(out, ms);
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str("}\n");
    }

    #[allow(clippy::too_many_arguments)]
    pub fn downgrade_warning(
        &mut self,
        customer_id: &str,
        at_ms: i64,
        cause: Cause,
        p: &Program,
        current: usize,
        expected: usize,
        downgrade_ms: i64,
        rolling: i64,
        to_keep: i64,
    ) {
        let Some(out) = self.head(
            WARNING,
            "loyalty.v1.TierDowngradeWarning",
            "tier_changes",
            "warning",
            customer_id,
            at_ms,
            cause,
            p,
        ) else {
            return;
        };
        out.push_str(",\"current_tier\":");
        write_json_str(out, &p.tier_names[current]);
        out.push_str(",\"expected_tier\":");
        write_json_str(out, &p.tier_names[expected]);
        out.push_str(",\"downgrade_at\":\"");
        write_iso_ms(out, downgrade_ms);
        out.push_str("\",\"rolling_spend_minor\":");
        out.push_str(&rolling.to_string());
        out.push_str(",\"spend_to_keep_minor\":");
        out.push_str(&to_keep.to_string());
        out.push_str(",\"currency\":");
        write_json_str(out, &p.currency);
        out.push_str("}\n");
    }

    #[allow(clippy::too_many_arguments)]
    pub fn churn_changed(
        &mut self,
        customer_id: &str,
        at_ms: i64,
        cause: Cause,
        p: &Program,
        level: usize,
        previous: usize,
        p_alive: f64,
        reasons: u8,
    ) {
        let Some(out) = self.head(
            CHURN,
            "loyalty.v1.ChurnRiskChanged",
            "churn_risk",
            "churn",
            customer_id,
            at_ms,
            cause,
            p,
        ) else {
            return;
        };
        out.push_str(",\"level\":");
        write_json_str(out, &p.level_names[level]);
        out.push_str(",\"previous_level\":");
        write_json_str(out, &p.level_names[previous]);
        out.push_str(",\"p_alive\":");
        write_float(out, p_alive);
        out.push_str(",\"reasons\":");
        write_reasons(out, reasons);
        out.push_str("}\n");
    }

    pub fn points_expired(
        &mut self,
        customer_id: &str,
        at_ms: i64,
        cause: Cause,
        p: &Program,
        points: i64,
        last_ms: i64,
    ) {
        let Some(out) = self.head(
            EXPIRED,
            "loyalty.v1.PointsExpired",
            "rewards",
            "expiry",
            customer_id,
            at_ms,
            cause,
            p,
        ) else {
            return;
        };
        out.push_str(",\"points\":");
        out.push_str(&points.to_string());
        out.push_str(",\"last_purchase_at\":\"");
        write_iso_ms(out, last_ms);
        out.push_str("\"}\n");
    }

    pub fn punch_card_reward(
        &mut self,
        customer_id: &str,
        event: &Event,
        p: &Program,
        category: &str,
        n: i64,
        rewards: i64,
    ) {
        let id_kind = format!("punch:{category}:{rewards}");
        let Some(out) = self.head(
            REWARD,
            "loyalty.v1.RewardEarned",
            "rewards",
            &id_kind,
            customer_id,
            event.at_ms,
            Cause::Event(&event.event_id),
            p,
        ) else {
            return;
        };
        out.push_str(",\"reward_kind\":\"PUNCH_CARD\",\"punch_card\":");
        write_json_str(out, category);
        out.push_str(",\"complaint_id\":null,\"description\":");
        write_json_str(
            out,
            &format!("{n} x {category} bought: the next one is on us"),
        );
        out.push_str("}\n");
    }

    pub fn service_recovery(
        &mut self,
        customer_id: &str,
        event: &Event,
        p: &Program,
        complaint_id: &str,
        tier: usize,
    ) {
        let id_kind = format!("recovery:{complaint_id}");
        let Some(out) = self.head(
            REWARD,
            "loyalty.v1.RewardEarned",
            "rewards",
            &id_kind,
            customer_id,
            event.at_ms,
            Cause::Event(&event.event_id),
            p,
        ) else {
            return;
        };
        out.push_str(",\"reward_kind\":\"SERVICE_RECOVERY\",\"punch_card\":null,\"complaint_id\":");
        write_json_str(out, complaint_id);
        out.push_str(",\"description\":");
        write_json_str(
            out,
            &format!(
                "service recovery for complaint {complaint_id} of a {} customer",
                p.tier_names[tier]
            ),
        );
        out.push_str("}\n");
    }
}

pub fn write_reasons(out: &mut String, reasons: u8) {
    out.push('[');
    let mut first = true;
    for (flag, name) in REASON_NAMES {
        if reasons & flag != 0 {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(name);
            out.push('"');
        }
    }
    out.push(']');
}
