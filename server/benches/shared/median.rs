//! The median the benches judge their targets on: the machine is shared, and one window can meet a busy neighbour.
//! Shared with `#[path = "shared/median.rs"] mod median;`.

/// The middle value, or the mean of the middle two for an even count; `None` for no values.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[middle]),
        _ => Some((values[middle - 1] + values[middle]) / 2.0),
    }
}
