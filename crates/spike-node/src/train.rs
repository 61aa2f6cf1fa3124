//! A train run as a node serves it: the sold-out memo that refuses, from
//! memory, every purchase a fact central stock gave covers (a leg sold out
//! is sold out on every leg around it, and for every bigger group), and the
//! availability table per station pair. Both come from central's occupancy,
//! read at every refresh; the memo also learns from central's "sold out"
//! answers in between, and is replaced at the next refresh, so that seats
//! given back (expiry, cancellation) are for sale again from then on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde_json::{json, Value};
use spike_core::time::unix_millis;
use spike_core::train::{GridLog, LegAvailability};
use spike_core::{
    Occupancy, Passengers, SeatPreference, SeatRequest, SoldOutMemo, TrainLayout, TrainRun,
};
use spike_http::grid::grid_delta_json;

/// What a node knows of one train run.
#[derive(Debug)]
pub struct TrainState {
    layout: Arc<TrainLayout>,
    memo: Mutex<SoldOutMemo>,
    /// The availability table, serialized once at each refresh: a JSON
    /// object without its closing brace, which each answer closes with
    /// its age.
    availability: ArcSwap<String>,
    /// The occupancy it was built from.
    occupancy: ArcSwap<Occupancy>,
    /// The dashboard's grid: every seat's mask by version, watched by
    /// changes (`/stats/grid`).
    grid: Mutex<GridLog>,
    /// When the last refresh read central stock, Unix milliseconds (0: never).
    refreshed_at_ms: AtomicU64,
    /// Orders of seats this node has sold.
    sales: AtomicU64,
}

impl TrainState {
    /// A run with nothing known yet: no memo, every seat free until the
    /// first refresh says otherwise.
    pub fn new(layout: Arc<TrainLayout>) -> Self {
        let occupancy = Occupancy::empty(Arc::clone(&layout));
        Self {
            memo: Mutex::new(SoldOutMemo::new(layout.classes().len())),
            availability: ArcSwap::from(serialized(&availability_json(&occupancy, None))),
            occupancy: ArcSwap::from_pointee(occupancy),
            grid: Mutex::new(GridLog::default()),
            layout,
            refreshed_at_ms: AtomicU64::new(0),
            sales: AtomicU64::new(0),
        }
    }

    /// The run's stations and classes.
    pub fn layout(&self) -> &Arc<TrainLayout> {
        &self.layout
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, SoldOutMemo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order sequence after which `request` was known sold out, if a
    /// fact of the memo covers it.
    pub fn sold_out(&self, request: &SeatRequest) -> Option<u64> {
        self.memo().covering(request)
    }

    /// Remembers central's "sold out" for `request`, true after order `as_of`.
    pub fn learn(&self, request: &SeatRequest, as_of: u64) {
        self.memo().learn(request, as_of);
    }

    /// Counts one order of seats this node sold.
    pub fn count_sale(&self) {
        self.sales.fetch_add(1, Ordering::Relaxed);
    }

    /// Orders of seats this node has sold.
    pub fn sales(&self) -> u64 {
        self.sales.load(Ordering::Relaxed)
    }

    /// How many facts the memo holds.
    pub fn memo_len(&self) -> usize {
        self.memo().len()
    }

    /// Takes up central's occupancy: the memo becomes what it says is sold
    /// out (one passenger, every leg with no free seat), which lifts what
    /// returned seats freed; availability is rebuilt.
    pub fn refreshed(&self, occupancy: Occupancy, run: Option<&TrainRun>) {
        let mut memo = SoldOutMemo::new(self.layout.classes().len());
        let table = occupancy.availability();
        for LegAvailability { leg, free, .. } in &table {
            let leg = *leg;
            for (class, free) in free.iter().enumerate() {
                if *free == 0 {
                    let request = SeatRequest {
                        class,
                        leg,
                        passengers: Passengers::ONE,
                        preference: SeatPreference::ANY,
                    };
                    memo.learn(&request, occupancy.as_of);
                }
            }
        }
        *self.memo() = memo;
        let json = availability_json(&occupancy, Some((run, &table)));
        self.availability.store(serialized(&json));
        let masks = (occupancy.classes.iter())
            .map(|c| c.masks().to_vec())
            .collect();
        self.grid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(masks);
        self.occupancy.store(Arc::new(occupancy));
        self.refreshed_at_ms
            .store(unix_millis(SystemTime::now()), Ordering::Release);
    }

    /// The availability table, if the last refresh is younger than
    /// `stale_after` (an older one is not answered: its numbers could be
    /// wrong by more than a refresh period): the table as serialized at the
    /// refresh (without its closing brace), and the members that close it
    /// (`refreshed_at_ms`, `age_ms`).
    pub fn availability(&self, stale_after: Duration) -> Option<(Arc<String>, String)> {
        let refreshed = self.refreshed_at_ms.load(Ordering::Acquire);
        let now = unix_millis(SystemTime::now());
        let age = now.saturating_sub(refreshed);
        if refreshed == 0 || u128::from(age) > stale_after.as_millis() {
            return None;
        }
        let tail = format!(",\"refreshed_at_ms\":{refreshed},\"age_ms\":{age}}}");
        Some((self.availability.load_full(), tail))
    }

    /// The grid's legend for `/stats` (its masks come by changes, from
    /// [`TrainState::grid_since`]): stations, sold and capacity, each
    /// class's seats, and the grid's version.
    pub fn grid(&self) -> Value {
        let occupancy = self.occupancy.load();
        let classes: Vec<Value> = (self.layout.classes().iter())
            .map(|class| {
                json!({
                    "class": class.name(),
                    // Seat i is named class.seat_name(i): the first and last
                    // are enough for a legend.
                    "seats": class.seats(),
                    "first_seat": class.seat_name(0),
                    "last_seat": class.seat_name(class.seats().saturating_sub(1)),
                })
            })
            .collect();
        let version = self
            .grid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .version();
        json!({
            "stations": self.layout.stations(),
            "as_of_order": occupancy.as_of,
            "sold_segments": occupancy.sold_segments(),
            "capacity": self.layout.capacity(),
            "classes": classes,
            "grid_version": version,
        })
    }

    /// What changed in the grid since version `since` (0: everything), as
    /// `/stats/grid` answers it: `{"version", "full": [[mask…]…]}` or
    /// `{"version", "changes": [[class, seat, mask]…]}`, masks in hex (bit
    /// i is the segment from station i to i + 1; a mask may need all 64
    /// bits, more than a JSON number keeps exactly in a browser).
    pub fn grid_since(&self, since: u64) -> Value {
        let grid = self.grid.lock().unwrap_or_else(|p| p.into_inner());
        grid_delta_json(grid.version(), grid.since(since))
    }
}

/// The availability answer's table: per station pair, the free seats of
/// each class and how many parties of 2 to 5 could sit side by side; the
/// run's train, date and event when known. `table` is the occupancy's
/// availability, when already computed.
fn availability_json(
    occupancy: &Occupancy,
    known: Option<(Option<&TrainRun>, &[LegAvailability])>,
) -> Value {
    let layout = &occupancy.layout;
    let classes: Vec<&str> = layout.classes().iter().map(|c| c.name()).collect();
    let computed;
    let (run, table) = match known {
        Some((run, table)) => (run, table),
        None => {
            computed = occupancy.availability();
            (None, computed.as_slice())
        }
    };
    let legs: Vec<Value> = (table.iter())
        .map(|available| {
            let (from, to) = layout.leg_names(available.leg);
            let free: serde_json::Map<String, Value> = (classes.iter())
                .zip(&available.free)
                .map(|(class, free)| ((*class).to_owned(), (*free).into()))
                .collect();
            let parties: serde_json::Map<String, Value> = (classes.iter())
                .zip(&available.parties)
                .map(|(class, groups)| {
                    let sizes: serde_json::Map<String, Value> = (groups.iter().enumerate())
                        .map(|(i, groups)| ((i + 2).to_string(), (*groups).into()))
                        .collect();
                    ((*class).to_owned(), Value::Object(sizes))
                })
                .collect();
            json!({ "from": from, "to": to, "free": free, "parties": parties })
        })
        .collect();
    let mut json = json!({
        "stations": layout.stations(),
        "classes": (layout.classes().iter())
            .map(|c| json!({ "class": c.name(), "seats": c.seats() }))
            .collect::<Vec<_>>(),
        "as_of_order": occupancy.as_of,
        "legs": legs,
    });
    if let Some(run) = run {
        json["train"] = run.train().into();
        json["date"] = run.date().into();
        json["event"] = run.event().as_str().into();
    }
    json
}

/// `json` (an object) serialized, without its closing brace.
fn serialized(json: &Value) -> Arc<String> {
    let mut text = json.to_string();
    if text.ends_with('}') {
        text.pop();
    }
    Arc::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spike_core::{ClassOccupancy, Leg};

    fn layout() -> Arc<TrainLayout> {
        Arc::new(TrainLayout::new(&["A", "B", "C"], &["first:1x2"]).unwrap())
    }

    #[test]
    fn a_refresh_replaces_the_memo_with_what_central_holds() {
        let train = TrainState::new(layout());
        assert_eq!(
            train.availability(Duration::from_secs(1)),
            None,
            "never read"
        );
        let ab = SeatRequest {
            class: 0,
            leg: Leg::new(0, 1).unwrap(),
            passengers: Passengers::ONE,
            preference: SeatPreference::ANY,
        };
        train.learn(&ab, 3);
        assert_eq!(
            train.sold_out(&SeatRequest {
                leg: Leg::new(0, 2).unwrap(),
                ..ab
            }),
            Some(3)
        );
        // Central says both seats are sold A → B only.
        let mut first = ClassOccupancy::empty(2);
        first.take(&[0, 1], Leg::new(0, 1).unwrap());
        let occupancy = Occupancy {
            layout: layout(),
            classes: vec![first],
            as_of: 5,
        };
        train.refreshed(occupancy, None);
        assert_eq!(train.sold_out(&ab), Some(5));
        let bc = SeatRequest {
            leg: Leg::new(1, 2).unwrap(),
            ..ab
        };
        assert_eq!(train.sold_out(&bc), None);
        let (object, tail) = train.availability(Duration::from_secs(60)).unwrap();
        let table: Value = serde_json::from_str(&format!("{object}{tail}")).unwrap();
        assert_eq!(
            table["legs"][0],
            json!({"from": "A", "to": "B", "free": {"first": 0},
                "parties": {"first": {"2": 0, "3": 0, "4": 0, "5": 0}}})
        );
        assert_eq!(
            table["legs"][2],
            json!({"from": "B", "to": "C", "free": {"first": 2},
                "parties": {"first": {"2": 1, "3": 0, "4": 0, "5": 0}}})
        );
        assert_eq!(table["as_of_order"], 5);
        // Seats given back: the next refresh lifts the memo.
        train.refreshed(Occupancy::empty(layout()), None);
        assert_eq!(train.sold_out(&ab), None);
        assert_eq!(train.memo_len(), 0);
    }
}
