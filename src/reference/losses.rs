//! Twins of `kernels::losses` (and of the terms in shaders/loss_terms.wgsl).

/// The clamp of probabilities inside the BCE (as in the WGSL).
pub const BCE_EPS: f64 = 1e-7;

fn clamp_p(p: f64) -> f64 {
    p.clamp(BCE_EPS, 1.0 - BCE_EPS)
}

pub fn bce_prob(p: &[f64], t: &[f64], scale: f64) -> f64 {
    scale
        * p.iter()
            .zip(t)
            .map(|(&p, &t)| {
                let pc = clamp_p(p);
                -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln())
            })
            .sum::<f64>()
}

pub fn bce_prob_backward(p: &[f64], t: &[f64], dloss: f64, scale: f64) -> Vec<f64> {
    p.iter()
        .zip(t)
        .map(|(&p, &t)| {
            let pc = clamp_p(p);
            dloss * scale * (pc - t) / (pc * (1.0 - pc))
        })
        .collect()
}

pub fn bce_logits(l: &[f64], t: &[f64], scale: f64) -> f64 {
    scale * l.iter().zip(t).map(|(&l, &t)| l.max(0.0) - l * t + (-l.abs()).exp().ln_1p()).sum::<f64>()
}

pub fn bce_logits_backward(l: &[f64], t: &[f64], dloss: f64, scale: f64) -> Vec<f64> {
    l.iter().zip(t).map(|(&l, &t)| dloss * scale * (1.0 / (1.0 + (-l).exp()) - t)).collect()
}

pub fn sq_err(a: &[f64], b: &[f64], scale: f64) -> f64 {
    scale * a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()
}

/// (da, db) with db = −da.
pub fn sq_err_backward(a: &[f64], b: &[f64], dloss: f64, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let da: Vec<f64> = a.iter().zip(b).map(|(x, y)| dloss * scale * 2.0 * (x - y)).collect();
    let db = da.iter().map(|g| -g).collect();
    (da, db)
}

fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// scale · Σ_rows (Σt·logsumexp(l) − Σ t·l).
pub fn softmax_ce(cols: usize, l: &[f64], t: &[f64], scale: f64) -> f64 {
    scale
        * l.chunks(cols)
            .zip(t.chunks(cols))
            .map(|(lr, tr)| tr.iter().sum::<f64>() * log_sum_exp(lr) - lr.iter().zip(tr).map(|(a, b)| a * b).sum::<f64>())
            .sum::<f64>()
}

pub fn softmax_ce_backward(cols: usize, l: &[f64], t: &[f64], dloss: f64, scale: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(l.len());
    for (lr, tr) in l.chunks(cols).zip(t.chunks(cols)) {
        let (lse, mass) = (log_sum_exp(lr), tr.iter().sum::<f64>());
        out.extend(lr.iter().zip(tr).map(|(a, b)| dloss * scale * ((a - lse).exp() * mass - b)));
    }
    out
}
