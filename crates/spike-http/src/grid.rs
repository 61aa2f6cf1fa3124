//! The wire form of a train run's grid changes (spike-core's
//! [`GridDelta`]), written and read only here: a node's `/stats/grid`, the
//! dashboard's reading of it, and the dashboard's page data.
//!
//! `{"version": V, "full": [[mask, …] per class]}` or `{"version": V,
//! "changes": [[class, seat, mask], …]}`, masks in hex (bit i is the
//! segment from station i to i + 1; a mask may need all 64 bits, more than
//! a JSON number keeps exactly in a browser).

use serde_json::{json, Value};
use spike_core::train::GridDelta;

/// `delta`, reaching `version`, as JSON.
pub fn grid_delta_json(version: u64, delta: GridDelta) -> Value {
    let hex = |mask: u64| format!("{mask:x}");
    match delta {
        GridDelta::Full(masks) => json!({
            "version": version,
            "full": (masks.iter())
                .map(|class| class.iter().map(|&m| hex(m)).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        }),
        GridDelta::Changes(changes) => json!({
            "version": version,
            "changes": (changes.into_iter())
                .map(|(class, seat, mask)| json!([class, seat, hex(mask)]))
                .collect::<Vec<_>>(),
        }),
    }
}

/// Reads [`grid_delta_json`]'s form: the version and the delta.
pub fn parse_grid_delta(answer: &Value) -> Option<(u64, GridDelta)> {
    let version = answer["version"].as_u64()?;
    let mask = |hex: &Value| u64::from_str_radix(hex.as_str()?, 16).ok();
    if let Some(full) = answer["full"].as_array() {
        let masks = (full.iter())
            .map(|class| {
                class
                    .as_array()?
                    .iter()
                    .map(mask)
                    .collect::<Option<Vec<u64>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        return Some((version, GridDelta::Full(masks)));
    }
    let changes = (answer["changes"].as_array()?.iter())
        .map(|change| {
            let class = usize::try_from(change[0].as_u64()?).ok()?;
            let seat = u32::try_from(change[1].as_u64()?).ok()?;
            Some((class, seat, mask(&change[2])?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((version, GridDelta::Changes(changes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_round_trip_their_wire_form() {
        for delta in [
            GridDelta::Full(vec![vec![0, u64::MAX], vec![5]]),
            GridDelta::Changes(vec![(0, 7, 0b101), (1, 0, 1 << 63)]),
        ] {
            let json = grid_delta_json(9, delta.clone());
            assert_eq!(parse_grid_delta(&json), Some((9, delta)));
        }
        assert_eq!(
            parse_grid_delta(&json!({"version": 1, "changes": [[0, 1, "zz"]]})),
            None
        );
    }
}
