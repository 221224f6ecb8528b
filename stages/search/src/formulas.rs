//! The paper's formulas as plain functions, so each one can be tested by hand.

/// P(s) = Q(s) / max_s' Q(s') * maxProb, with Q(s) = Q(s,+) + Q(s,-).
///
/// Returns 0 when `q_max` is not positive (cannot happen with q_min > 0).
pub fn mutation_probability(q_s: f64, q_max: f64, max_prob: f64) -> f64 {
    if q_max > 0.0 && q_s.is_finite() {
        (q_s / q_max * max_prob).clamp(0.0, max_prob.max(0.0))
    } else {
        0.0
    }
}

/// Probability of the + direction: Q(s,+) / (Q(s,+) + Q(s,-)); 0.5 when both are 0.
pub fn plus_probability(q_plus: f64, q_minus: f64) -> f64 {
    let total = q_plus + q_minus;
    if total > 0.0 && total.is_finite() {
        q_plus / total
    } else {
        0.5
    }
}

/// Q(s,a) <- max(q_min, Q(s,a) + alpha * (r - r_parent)).
///
/// A bit's flip (stored as Q(s,+) = Q(s,-)) applies this with alpha / 2 to each half, so
/// Q(s) = Q(s,+) + Q(s,-) moves by alpha * (r - r_parent), as for a micro move (SPEC §5).
pub fn q_update(q: f64, alpha: f64, reward: f64, parent_reward: f64, q_min: f64) -> f64 {
    let next = q + alpha * (reward - parent_reward);
    if next.is_finite() {
        next.max(q_min)
    } else {
        q_min
    }
}

/// The rank signal of `value` among `reference` (SPEC §5's open point; `Reward::Rank`): its
/// mid-rank u = (#below + #equal / 2) / n mapped to 2u - 1 in [-1, 1], so +1 beats every
/// reference value, -1 is below every one, and a tie with all of them is 0. Scale-free: the
/// same for accuracy differences of 0.001 or 0.1. An empty reference is taken as [0].
pub fn rank_signal(reference: &[f64], value: f64) -> f64 {
    let zero = [0.0];
    let reference = if reference.is_empty() {
        &zero[..]
    } else {
        reference
    };
    let below = reference.iter().filter(|&&x| x < value).count() as f64;
    let equal = reference.iter().filter(|&&x| x == value).count() as f64;
    2.0 * (below + equal / 2.0) / reference.len() as f64 - 1.0
}

/// sign(s - mu) with sign(0) = 0.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Mean rule: mu <- mu + k * sign(s - mu) * (p - p_bar) (SPEC §5 adds the sign the paper's
/// prose describes: a good sample above the mean pulls the mean up, a bad one pushes it down).
pub fn mean_update(mu: f64, k: f64, s: f64, p: f64, p_bar: f64) -> f64 {
    mu + k * sign(s - mu) * (p - p_bar)
}

/// Distance-based variance rule as SPEC §5 reads the paper's prose (before clamping):
/// with d = |(s - mu) / sigma_old|, outside (mu - sigma, mu + sigma) (d >= 1):
/// var + k (d - 1)(p - p_bar) (a good sample far out widens the search); inside (d < 1):
/// var - k (1 - d)(p - p_bar) (a good sample near the mean narrows it: "narrower focus when
/// optimal values are close to the mean").
pub fn variance_distance(var: f64, k: f64, s: f64, mu: f64, p: f64, p_bar: f64) -> f64 {
    let d = distance(var, s, mu);
    if d >= 1.0 {
        var + k * (d - 1.0) * (p - p_bar)
    } else {
        var - k * (1.0 - d) * (p - p_bar)
    }
}

/// Distance-based variance rule exactly as the paper prints it (before clamping), kept for
/// ablation (`distance-literal`): as [`variance_distance`] outside, but inside (d < 1)
/// var + k (1 - d)(p - p_bar), the sign the paper's prose contradicts.
pub fn variance_distance_literal(var: f64, k: f64, s: f64, mu: f64, p: f64, p_bar: f64) -> f64 {
    let d = distance(var, s, mu);
    if d >= 1.0 {
        var + k * (d - 1.0) * (p - p_bar)
    } else {
        var + k * (1.0 - d) * (p - p_bar)
    }
}

/// |(s - mu) / sigma| with sigma = sqrt(var).
fn distance(var: f64, s: f64, mu: f64) -> f64 {
    ((s - mu) / var.sqrt()).abs()
}

/// Moment-based variance rule, exactly as the paper writes it (before clamping):
/// var + k * ((s - mu)^2 - var) / var * (p - p_bar).
pub fn variance_moment(var: f64, k: f64, s: f64, mu: f64, p: f64, p_bar: f64) -> f64 {
    var + k * (((s - mu).powi(2) - var) / var) * (p - p_bar)
}

/// Keeps `v` within [lo, hi] without panicking on odd bounds; NaN becomes `lo`.
pub(crate) fn clamp(v: f64, lo: f64, hi: f64) -> f64 {
    if v.is_nan() {
        return lo;
    }
    v.max(lo).min(hi)
}
