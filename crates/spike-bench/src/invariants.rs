//! The sale's invariants, checked from what the load generator saw and what
//! central stock says: never more successes than seats, no order twice, no
//! user over the limit, every success confirmed centrally, and (when buyers
//! outnumber seats) every seat sold.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// What central stock said after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CentralView {
    /// Seats for sale.
    pub total: u64,
    /// Seats sold.
    pub sold: u64,
    /// Distinct buyers, when the sale allows one order per user (then it
    /// must equal `sold`); `None` otherwise.
    pub buyers: Option<u64>,
}

/// One invariant and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The numbers behind it.
    pub detail: String,
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.to_string(),
        passed,
        detail,
    }
}

/// Checks the run's successes (`(user, order)` pairs) against central stock.
/// `expect_sell_out`: buyers outnumbered seats, so every seat must be sold.
pub fn check_all(
    successes: &[(u64, String)],
    central: Option<CentralView>,
    expect_sell_out: bool,
) -> Vec<Check> {
    let count = successes.len() as u64;
    let mut checks = Vec::new();
    let orders: HashSet<&str> = successes.iter().map(|(_, o)| o.as_str()).collect();
    checks.push(check(
        "no order given twice",
        orders.len() as u64 == count,
        format!("{} successes, {} distinct orders", count, orders.len()),
    ));
    let mut per_user: HashMap<u64, u64> = HashMap::new();
    for (user, _) in successes {
        *per_user.entry(*user).or_default() += 1;
    }
    let twice = per_user.values().filter(|&&n| n > 1).count();
    checks.push(check(
        "no user with two orders",
        twice == 0,
        format!("{twice} users answered success more than once"),
    ));
    if let Some(central) = central {
        checks.push(check(
            "successes <= stock",
            count <= central.total,
            format!("{count} successes, {} seats", central.total),
        ));
        checks.push(check(
            "successes = central sold",
            count == central.sold,
            format!("{count} successes answered, central sold {}", central.sold),
        ));
        if let Some(buyers) = central.buyers {
            checks.push(check(
                "central buyers = central sold (one order per buyer)",
                buyers == central.sold,
                format!("{buyers} buyers, {} sold", central.sold),
            ));
        }
        if expect_sell_out {
            checks.push(check(
                "every seat sold (no undersell)",
                central.sold == central.total,
                format!("{} of {} seats sold", central.sold, central.total),
            ));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sales(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
        pairs.iter().map(|(u, o)| (*u, o.to_string())).collect()
    }

    #[test]
    fn a_clean_sale_passes_everything() {
        let central = CentralView {
            total: 2,
            sold: 2,
            buyers: Some(2),
        };
        let checks = check_all(&sales(&[(1, "a"), (2, "b")]), Some(central), true);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert_eq!(checks.len(), 6);
    }

    #[test]
    fn each_violation_is_caught() {
        let failed = |checks: Vec<Check>| -> Vec<String> {
            checks
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect()
        };
        let twice = sales(&[(1, "a"), (1, "b")]);
        assert_eq!(
            failed(check_all(&twice, None, false)),
            ["no user with two orders"]
        );
        let same_order = sales(&[(1, "a"), (2, "a")]);
        assert_eq!(
            failed(check_all(&same_order, None, false)),
            ["no order given twice"]
        );
        let oversold = CentralView {
            total: 1,
            sold: 2,
            buyers: Some(2),
        };
        let found = failed(check_all(
            &sales(&[(1, "a"), (2, "b")]),
            Some(oversold),
            true,
        ));
        assert!(
            found.contains(&"successes <= stock".to_string()),
            "{found:?}"
        );
        let undersold = CentralView {
            total: 3,
            sold: 2,
            buyers: Some(2),
        };
        let found = failed(check_all(
            &sales(&[(1, "a"), (2, "b")]),
            Some(undersold),
            true,
        ));
        assert_eq!(found, ["every seat sold (no undersell)"]);
        let unconfirmed = CentralView {
            total: 3,
            sold: 1,
            buyers: Some(1),
        };
        let found = failed(check_all(
            &sales(&[(1, "a"), (2, "b")]),
            Some(unconfirmed),
            false,
        ));
        assert_eq!(found, ["successes = central sold"]);
    }
}
