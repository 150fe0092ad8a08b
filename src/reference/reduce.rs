//! Twins of `kernels::reduce`.

pub fn sum(x: &[f64]) -> f64 {
    x.iter().sum()
}

pub fn mean(x: &[f64]) -> f64 {
    sum(x) / x.len() as f64
}

pub fn column_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..cols).map(|c| (0..rows).map(|r| x[r * cols + c]).sum()).collect()
}

pub fn row_sum(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows).map(|r| x[r * cols..(r + 1) * cols].iter().sum()).collect()
}
