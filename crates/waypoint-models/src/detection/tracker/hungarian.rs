//! Optimal assignment (the Hungarian algorithm).

/// Minimum-cost assignment of rows to columns (square or rectangular), O(n³).
pub fn hungarian(cost: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n_rows = cost.len();
    let n_cols = cost.first().map_or(0, Vec::len);
    let n = n_rows.max(n_cols);
    if n == 0 {
        return Vec::new();
    }
    let big = 1e9;
    let c = |i: usize, j: usize| if i < n_rows && j < n_cols { cost[i][j] } else { big };
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = c(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n_rows];
    for j in 1..=n {
        if p[j] > 0 && p[j] <= n_rows && j <= n_cols && cost[p[j] - 1][j - 1] < big / 2.0 {
            out[p[j] - 1] = Some(j - 1);
        }
    }
    out
}
