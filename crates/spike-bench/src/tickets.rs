//! What a simulated train buyer asks for: a random station pair (from
//! before to), a class and a party of 1 to 5, drawn from the request's
//! index with a seed, so that a run replays exactly. The bench appends it
//! to each purchase as `&from=…&to=…&class=…&passengers=…`.

use crate::seeded::splitmix64;

/// Parties of 1 to 5, weighted toward one traveller: 60 % travel alone,
/// 20 % in twos, 10 % in threes, 5 % in fours and fives.
const PARTY_SIZES: [u32; 20] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5];

/// The ticket choices of a train run's buyers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketChoices {
    /// The run's stations, in route order (at least two).
    pub stations: Vec<String>,
    /// Its class names (at least one).
    pub classes: Vec<String>,
    /// Seeds the draws.
    pub seed: u64,
}

impl TicketChoices {
    /// The query parameters request `index` adds, percent-encoded.
    pub fn query_of(&self, index: u64) -> String {
        let draw = |salt: u64, n: usize| {
            let n = n.max(1) as u64;
            (splitmix64(self.seed ^ salt ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % n) as usize
        };
        let stations = self.stations.len().max(2);
        // A uniform station pair: from in 0..n-1, to in from+1..n.
        let pairs = stations * (stations - 1) / 2;
        let mut pair = draw(1, pairs);
        let mut from = 0;
        while pair >= stations - 1 - from {
            pair -= stations - 1 - from;
            from += 1;
        }
        let to = from + 1 + pair;
        let name = |i: usize| self.stations.get(i).map_or("", String::as_str);
        let class = self
            .classes
            .get(draw(2, self.classes.len()))
            .map_or("", String::as_str);
        let passengers = PARTY_SIZES[draw(3, PARTY_SIZES.len())];
        format!(
            "from={}&to={}&class={}&passengers={passengers}",
            encode(name(from)),
            encode(name(to)),
            encode(class)
        )
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn choices() -> TicketChoices {
        TicketChoices {
            stations: ["A", "B", "C", "D"].map(String::from).to_vec(),
            classes: vec!["first".into(), "second".into()],
            seed: 7,
        }
    }

    #[test]
    fn every_station_pair_is_drawn_about_equally_and_in_order() {
        let mut seen: HashMap<(String, String), u64> = HashMap::new();
        for index in 0..60_000 {
            let query = choices().query_of(index);
            let part = |key: &str| {
                (query.split('&'))
                    .find_map(|kv| kv.strip_prefix(key))
                    .unwrap()
                    .to_owned()
            };
            let (from, to) = (part("from="), part("to="));
            assert!(from < to, "{query}");
            let passengers: u32 = part("passengers=").parse().unwrap();
            assert!((1..=5).contains(&passengers));
            *seen.entry((from, to)).or_default() += 1;
        }
        assert_eq!(seen.len(), 6, "all pairs of four stations");
        assert!(
            seen.values().all(|&n| (9_000..11_000).contains(&n)),
            "{seen:?}"
        );
        assert_eq!(choices().query_of(5), choices().query_of(5), "replays");
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(encode("Jinan West"), "Jinan%20West");
        assert_eq!(encode("济南"), "%E6%B5%8E%E5%8D%97");
        assert_eq!(encode("a&b=c"), "a%26b%3Dc");
    }
}
