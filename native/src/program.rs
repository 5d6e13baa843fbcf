//! streams.core.rules.Program as plain values (handed over by streams/tools/replay_native.py).

pub struct Program {
    pub version: String,
    pub currency: String,
    pub tier_names: Vec<String>,
    pub tier_thresholds: Vec<i64>,
    pub points_rate: Vec<(i64, i64)>, // per tier: points = spend * numerator // denominator
    pub points_expiry_days: i64,
    pub qualification_window_days: i64,
    pub requalification_days: i64,
    pub downgrade_warning_days: i64,
    pub cards: Vec<(String, i64)>, // punch cards: category, stamps
    pub return_window_days: i64,
    pub complaint_sla_hours: i64,
    pub service_recovery_rank: usize,
    pub attached_visits: i64,
    pub attached_window_days: i64,
    pub category_window_days: i64,
    pub occasional_from_visits: i64,
    pub regular_from_visits: i64,
    pub promoter_from_score: i64,
    pub detractor_up_to_score: i64,
    pub recent_receipts: usize,
    pub longest_window_days: i64,
    // churn: BG/NBD parameters and unit
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    pub unit_is_days: bool,
    pub per_unit: f64,
    // churn levels: names by rank, the [low, high) score range each holds, and the levels
    // above the base (raise_at, clear_below)
    pub level_names: Vec<String>,
    pub level_holds: Vec<(f64, f64)>,
    pub levels_above: Vec<(f64, f64)>,
    // churn weights
    pub w_detractor: f64,
    pub w_overdue_complaint: f64,
    pub w_falling_average_check: f64,
    pub w_gap_beyond_cadence: f64,
    pub gap_cadence_factor: f64,
    pub gap_min_repeat_visits: i64,
    pub low_p_alive_below: f64,
    pub falling_check_ratio: f64,
}

impl Program {
    pub fn tier_for_spend(&self, rolling_spend_minor: i64) -> usize {
        let mut rank = 0;
        for (index, threshold) in self.tier_thresholds.iter().enumerate() {
            if rolling_spend_minor >= *threshold {
                rank = index;
            }
        }
        rank
    }

    pub fn points_for(&self, spend_minor: i64, tier: usize) -> Result<i64, String> {
        let points = self.points_for_wide(spend_minor, tier);
        i64::try_from(points).map_err(|_| format!("points {points} beyond 64 bits"))
    }

    /// Rules.points_for in 128 bits: a 64-bit spend times a 64-bit rate always fits.
    pub fn points_for_wide(&self, spend_minor: i64, tier: usize) -> i128 {
        let (numerator, denominator) = self.points_rate[tier];
        (i128::from(spend_minor) * i128::from(numerator)).div_euclid(i128::from(denominator))
    }

    /// churn.next_level, by ranks.
    pub fn next_level(&self, current: usize, score: f64) -> usize {
        let mut higher = self.levels_above.len();
        while higher > current {
            if score >= self.levels_above[higher - 1].0 {
                return higher;
            }
            higher -= 1;
        }
        let mut rank = current;
        while rank > 0 && score < self.levels_above[rank - 1].1 {
            rank -= 1;
        }
        rank
    }

    pub fn level_holds(&self, level: usize, score: f64) -> bool {
        let (low, high) = self.level_holds[level];
        low <= score && score < high
    }
}
