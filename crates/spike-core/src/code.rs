//! Every answer code Spike speaks, in one table: its number (the articles'
//! JSON `code`), its name and its label. Answers, counters, metrics, the
//! stat log, the front door, the load generator, the dashboard and the
//! Redis scripts' reply codes all read codes from here, and nowhere else.
//! Their HTTP statuses are the HTTP layer's (`spike_http::status_of`).

use std::fmt;

/// An answer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// 0: an answer that is not a purchase's verdict (health, stats, an
    /// orders API request that was carried out).
    Ok,
    /// 1: a seat was sold (or this request id had bought it before).
    Success,
    /// -1: no seat left.
    SoldOut,
    /// -2: the buyer already holds as many orders as the sale allows.
    AlreadyPurchased,
    /// -3: the sale has not opened yet.
    NotOpen,
    /// -4: the request is wrong or not allowed; nothing changed.
    Refused,
    /// -5: could not be decided now; try again (with the same request id).
    TryAgain,
    /// -6: the request does not prove who sends it (a missing, expired,
    /// forged or mismatched token); nothing changed.
    Unauthorized,
    /// -7: the sale has a waiting room and the buyer is not admitted (no
    /// admission token, or one that is not theirs or expired); nothing
    /// changed.
    NotAdmitted,
    /// -8: the buyer, or their address, sent more requests than the node's
    /// rate limit allows; try again after `Retry-After`. Nothing changed.
    RateLimited,
}

/// One row of the code table.
struct Row {
    number: i8,
    number_text: &'static str,
    name: &'static str,
    label: &'static str,
}

impl Code {
    /// The codes `/buy/ticket` answers with, in the order nodes count them.
    pub const BUY: [Code; 9] = [
        Code::Success,
        Code::SoldOut,
        Code::AlreadyPurchased,
        Code::NotOpen,
        Code::Refused,
        Code::TryAgain,
        Code::Unauthorized,
        Code::NotAdmitted,
        Code::RateLimited,
    ];

    /// Every code: [`Code::Ok`], then [`Code::BUY`].
    pub const ALL: [Code; 10] = {
        let b = Code::BUY;
        [
            Code::Ok,
            b[0],
            b[1],
            b[2],
            b[3],
            b[4],
            b[5],
            b[6],
            b[7],
            b[8],
        ]
    };

    /// The table: the one place a code's number, name and label live.
    const fn row(self) -> Row {
        let (number, number_text, name, label) = match self {
            Code::Ok => (0, "0", "ok", "ok"),
            Code::Success => (1, "1", "success", "success"),
            Code::SoldOut => (-1, "-1", "sold_out", "sold out"),
            Code::AlreadyPurchased => (-2, "-2", "already_purchased", "already purchased"),
            Code::NotOpen => (-3, "-3", "not_open", "sale not open"),
            Code::Refused => (-4, "-4", "refused", "bad request"),
            Code::TryAgain => (-5, "-5", "try_again", "try again"),
            Code::Unauthorized => (-6, "-6", "unauthorized", "unauthorized"),
            Code::NotAdmitted => (-7, "-7", "not_admitted", "not admitted yet"),
            Code::RateLimited => (-8, "-8", "rate_limited", "too many requests"),
        };
        Row {
            number,
            number_text,
            name,
            label,
        }
    }

    /// The JSON `code` number.
    pub const fn number(self) -> i8 {
        self.row().number
    }

    /// The number as text (metric labels, dashboard keys).
    pub const fn number_text(self) -> &'static str {
        self.row().number_text
    }

    /// A stable snake_case name (`sold_out`).
    pub const fn name(self) -> &'static str {
        self.row().name
    }

    /// What a person reads: the answer's `msg` ("sold out").
    pub const fn label(self) -> &'static str {
        self.row().label
    }

    /// The code with this number, if there is one.
    pub fn from_number(number: i64) -> Option<Code> {
        Code::ALL
            .into_iter()
            .find(|code| i64::from(code.number()) == number)
    }

    /// This code's position in [`Code::BUY`], for per-code counters.
    pub fn buy_index(self) -> Option<usize> {
        Code::BUY.iter().position(|code| *code == self)
    }
}

impl fmt::Display for Code {
    /// The number, as the JSON carries it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.number_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_the_articles_and_round_trip() {
        let numbers: Vec<i8> = Code::BUY.iter().map(|c| c.number()).collect();
        assert_eq!(numbers, [1, -1, -2, -3, -4, -5, -6, -7, -8]);
        for code in Code::ALL {
            assert_eq!(Code::from_number(code.number().into()), Some(code));
            assert_eq!(code.number_text(), code.number().to_string());
        }
        assert_eq!(Code::from_number(-99), None);
    }

    #[test]
    fn buy_codes_have_distinct_counter_slots() {
        for (index, code) in Code::BUY.into_iter().enumerate() {
            assert_eq!(code.buy_index(), Some(index));
        }
        assert_eq!(Code::Ok.buy_index(), None);
    }

    #[test]
    fn labels_are_what_a_person_reads() {
        assert_eq!(Code::NotOpen.label(), "sale not open");
        assert_eq!(Code::SoldOut.label(), "sold out");
    }
}
