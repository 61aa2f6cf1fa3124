//! The Lua scripts of `lua/`, and the reply codes they return, named once.
//!
//! Each reply code is declared here, in Rust, with its number and the Lua
//! constant that names it; a script is sent to Redis as a one-line prelude
//! declaring those constants (`local SOLD, REPLAYED, … = 1, 2, …`) followed
//! by the file. So the scripts say `return {SOLD_OUT, '', 0}` and the
//! adapter decodes the same table: neither side spells a bare number.

use redis::Script;
use spike_core::queue::ADMISSION_BURST_MS;
use spike_core::record::{RULE_FIELDS, TRAIN_FIELD};
use spike_core::Code;

/// Declares a script's reply codes: an enum, its numbers and Lua names.
macro_rules! reply_codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $number:expr => $lua:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every code.
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The number the script returns.
            pub(crate) fn number(self) -> i64 {
                match self { $($name::$variant => i64::from($number),)* }
            }

            /// The Lua constant naming it.
            pub(crate) fn lua_name(self) -> &'static str {
                match self { $($name::$variant => $lua,)* }
            }

            /// The code a script returned, if it is one of these.
            pub(crate) fn from_reply(number: i64) -> Option<Self> {
                Self::ALL.iter().copied().find(|code| code.number() == number)
            }

            /// `local A, B = 1, 2`: the codes as Lua constants, on one line.
            fn lua_prelude() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.lua_name()).collect();
                let numbers: Vec<String> = Self::ALL.iter().map(|c| c.number().to_string()).collect();
                format!("local {} = {}\n", names.join(", "), numbers.join(", "))
            }
        }
    };
}

/// The purchase scripts speak the answer codes' numbering ([`Code`]): a
/// verdict that is an answer has its answer's number. The verdicts no
/// answer carries as such get numbers no answer code has, so that no
/// number means two things anywhere in Spike.
const REPLAYED: i64 = 2;
/// No such sale (every script that can say it says it with this number).
const NO_SUCH_SALE: i64 = -20;
/// The request id bought for another buyer.
const REQUEST_ID_TAKEN: i64 = -21;
/// An operator paused the sale (a purchase answers "try again", with why).
const PAUSED: i64 = -22;

reply_codes! {
    /// What `buy.lua` answers (and `buy_many.lua`, for each purchase, and
    /// `ticket.lua`).
    BuyCode {
        /// A seat was sold.
        Sold = Code::Success.number() => "SOLD",
        /// This request id had bought a seat before: the same order again.
        Replayed = REPLAYED => "REPLAYED",
        /// No seat left.
        SoldOut = Code::SoldOut.number() => "SOLD_OUT",
        /// The buyer's limit is reached.
        LimitReached = Code::AlreadyPurchased.number() => "LIMIT_REACHED",
        /// The sale has not opened.
        NotOpen = Code::NotOpen.number() => "NOT_OPEN",
        /// The sale needs a user id.
        UserRequired = Code::Refused.number() => "USER_REQUIRED",
        /// A queued sale, and no admitted position came with the purchase.
        NotAdmitted = Code::NotAdmitted.number() => "NOT_ADMITTED",
        /// No such sale.
        NoSuchSale = NO_SUCH_SALE => "NO_SUCH_SALE",
        /// The request id bought for another buyer.
        RequestIdTaken = REQUEST_ID_TAKEN => "REQUEST_ID_TAKEN",
        /// An operator paused the sale.
        Paused = PAUSED => "PAUSED",
    }
}

reply_codes! {
    /// What `queue_join.lua` answers.
    JoinCode {
        /// The buyer has a place (its join index follows).
        Joined = 1 => "JOINED",
        /// The buyer passed straight through a spillover room (now or
        /// before): admitted at the position of its join index, which follows.
        Passed = 2 => "PASSED",
        /// Joining has not started (its time follows).
        NotYetOpen = 0 => "NOT_YET_OPEN",
        /// The sale has no waiting room.
        NoQueue = -1 => "NO_QUEUE",
        /// No such sale.
        NoSuchSale = NO_SUCH_SALE => "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `queue_tick.lua` answers.
    TickCode {
        /// The counters follow.
        Ticked = 1 => "TICKED",
        /// No such sale, or no waiting room.
        NoQueue = -1 => "NO_QUEUE",
    }
}

reply_codes! {
    /// What `release.lua` answers.
    ReleaseCode {
        /// The seat is for sale again.
        Released = 1 => "RELEASED",
        /// It had been given back before.
        AlreadyReleased = 0 => "ALREADY_RELEASED",
        /// The sale never sold this order to this request.
        NotSold = -1 => "NOT_SOLD",
        /// No such sale.
        NoSuchSale = NO_SUCH_SALE => "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `waitlist.lua` answers. A name `sell.lua` also speaks has the
    /// same number as there (the two preludes run in one script).
    WaitlistCode {
        /// This request id's entry (new, or placed before) follows.
        Placed = 1 => "PLACED",
        /// The traveller's waiting entry (another request id's) follows.
        AlreadyWaiting = 2 => "ALREADY_WAITING",
        /// Seats are free for the request: nothing changed.
        Bookable = 3 => "BOOKABLE",
        /// The traveller's latest entry follows.
        Found = 4 => "FOUND",
        /// The entry, now withdrawn, follows.
        Withdrawn = 5 => "WITHDRAWN",
        /// A refill ran; how many it filled follows.
        Refilled = 6 => "REFILLED",
        /// Nothing of the traveller's (waits).
        Nothing = 0 => "NONE",
        /// The request id bought seats: nothing changed.
        RequestIdTaken = REQUEST_ID_TAKEN => "REQUEST_ID_TAKEN",
        /// The run is not on sale yet.
        NotOpen = Code::NotOpen.number() => "NOT_OPEN",
        /// The traveller's limit is reached (their latest order follows).
        LimitReached = Code::AlreadyPurchased.number() => "LIMIT_REACHED",
        /// No such sale, not a train run, or no such class or station.
        NoSuchSale = NO_SUCH_SALE => "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `control.lua` answers.
    ControlCode {
        /// The control took effect (its log index and entry follow).
        Applied = 1 => "APPLIED",
        /// The control needs a waiting room and the sale has none.
        NoQueue = -1 => "NO_QUEUE",
        /// No such sale.
        NoSuchSale = NO_SUCH_SALE => "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `create.lua` answers.
    CreateCode {
        /// The sale was created.
        Created = 1 => "CREATED",
        /// A sale exists and was not to be replaced.
        Exists = 0 => "EXISTS",
    }
}

/// Where `create.lua`'s arguments take the sale's rules: ARGV[1] is the
/// force flag and ARGV[2] the event id.
pub(crate) const CREATE_RULES_AT: usize = 3;

/// The sale record's schema as Lua constants: `RULES`, the rule fields'
/// names in their order (spike-core's `RULE_FIELDS`), `RULES_AT` (see
/// [`CREATE_RULES_AT`]) and `TRAIN_FIELD`.
fn record_prelude() -> String {
    let names: Vec<String> = RULE_FIELDS.iter().map(|name| format!("'{name}'")).collect();
    format!(
        "local RULES, RULES_AT, TRAIN_FIELD = {{{}}}, {CREATE_RULES_AT}, '{TRAIN_FIELD}'\n",
        names.join(", ")
    )
}

/// The selling rules both purchase scripts run: the reply codes, then
/// `sell.lua`'s functions.
fn selling_rules() -> String {
    BuyCode::lua_prelude() + include_str!("../lua/sell.lua")
}

/// A train run's seat rule after the selling rules: what `ticket.lua`
/// needs, and the start of what the waitlist's scripts need.
fn seat_rules() -> String {
    selling_rules() + include_str!("../lua/seats.lua")
}

/// The waitlist's rules and its fill, after the seat rule: what
/// `release.lua` and `waitlist.lua` run, with their own codes first.
fn waitlist_rules(codes: String) -> String {
    codes + &seat_rules() + include_str!("../lua/waitlist_rules.lua")
}

/// The admission rule both waiting-room scripts run: the bucket's burst,
/// then `admission.lua`'s functions.
fn admission_rule() -> String {
    format!("local ADMISSION_BURST_MS = {ADMISSION_BURST_MS}\n")
        + include_str!("../lua/admission.lua")
}

/// One script's name and its full source, as Redis receives it.
fn sources() -> [(&'static str, String); 14] {
    [
        ("ack", include_str!("../lua/ack.lua").to_owned()),
        ("buy", selling_rules() + include_str!("../lua/buy.lua")),
        ("ticket", seat_rules() + include_str!("../lua/ticket.lua")),
        (
            "ticket_many",
            seat_rules() + include_str!("../lua/ticket_many.lua"),
        ),
        ("occupancy", include_str!("../lua/occupancy.lua").to_owned()),
        (
            "buy_many",
            selling_rules() + include_str!("../lua/buy_many.lua"),
        ),
        (
            "create",
            CreateCode::lua_prelude() + &record_prelude() + include_str!("../lua/create.lua"),
        ),
        (
            "snapshot",
            record_prelude() + include_str!("../lua/snapshot.lua"),
        ),
        (
            "release",
            waitlist_rules(ReleaseCode::lua_prelude()) + include_str!("../lua/release.lua"),
        ),
        (
            "waitlist",
            waitlist_rules(WaitlistCode::lua_prelude()) + include_str!("../lua/waitlist.lua"),
        ),
        (
            "queue_join",
            JoinCode::lua_prelude() + &admission_rule() + include_str!("../lua/queue_join.lua"),
        ),
        (
            "queue_tick",
            TickCode::lua_prelude() + &admission_rule() + include_str!("../lua/queue_tick.lua"),
        ),
        (
            "control",
            ControlCode::lua_prelude() + include_str!("../lua/control.lua"),
        ),
        (
            "reset_queue",
            include_str!("../lua/reset_queue.lua").to_owned(),
        ),
    ]
}

/// The names of the scripts, for `spike scripts`.
pub fn script_names() -> Vec<&'static str> {
    sources().iter().map(|(name, _)| *name).collect()
}

/// A script's source exactly as Redis runs it (prelude included), for
/// review or for `redis-benchmark`; `None` for an unknown name.
pub fn script_source(name: &str) -> Option<String> {
    sources()
        .into_iter()
        .find(|(known, _)| *known == name)
        .map(|(_, source)| source)
}

/// The scripts, ready to run with `EVALSHA` (reloaded on `NOSCRIPT`).
pub(crate) struct Scripts {
    pub(crate) ack: Script,
    pub(crate) buy: Script,
    pub(crate) ticket: Script,
    pub(crate) ticket_many: Script,
    pub(crate) occupancy: Script,
    pub(crate) buy_many: Script,
    pub(crate) create: Script,
    pub(crate) snapshot: Script,
    pub(crate) release: Script,
    pub(crate) queue_join: Script,
    pub(crate) queue_tick: Script,
    pub(crate) waitlist: Script,
    pub(crate) control: Script,
    pub(crate) reset_queue: Script,
}

impl Scripts {
    /// Every script of `lua/` with its prelude.
    pub(crate) fn load() -> Self {
        let [ack, buy, ticket, ticket_many, occupancy, buy_many, create, snapshot, release, waitlist, queue_join, queue_tick, control, reset_queue] =
            sources().map(|(_, source)| Script::new(&source));
        Self {
            ack,
            buy,
            ticket,
            ticket_many,
            occupancy,
            buy_many,
            create,
            snapshot,
            release,
            queue_join,
            queue_tick,
            waitlist,
            control,
            reset_queue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preludes_declare_every_code_once() {
        assert_eq!(
            ReleaseCode::lua_prelude(),
            "local RELEASED, ALREADY_RELEASED, NOT_SOLD, NO_SUCH_SALE = 1, 0, -1, -20\n"
        );
        for code in BuyCode::ALL {
            assert_eq!(BuyCode::from_reply(code.number()), Some(*code));
        }
        assert_eq!(BuyCode::from_reply(99), None);
    }

    /// One numbering: a purchase script's code that shares its number with
    /// an answer code means that answer.
    #[test]
    fn purchase_codes_speak_the_answer_codes_numbering() {
        for code in BuyCode::ALL {
            let answer = match code {
                BuyCode::Sold => Some(Code::Success),
                BuyCode::SoldOut => Some(Code::SoldOut),
                BuyCode::LimitReached => Some(Code::AlreadyPurchased),
                BuyCode::NotOpen => Some(Code::NotOpen),
                BuyCode::UserRequired => Some(Code::Refused),
                BuyCode::NotAdmitted => Some(Code::NotAdmitted),
                BuyCode::Replayed
                | BuyCode::NoSuchSale
                | BuyCode::RequestIdTaken
                | BuyCode::Paused => None,
            };
            assert_eq!(Code::from_number(code.number()), answer, "{code:?}");
        }
    }

    /// A script whose preludes declare one name twice gives it one number:
    /// the later declaration would otherwise change what the earlier
    /// rules' functions return.
    #[test]
    fn no_script_gives_one_code_name_two_numbers() {
        for (name, source) in sources() {
            let mut seen = std::collections::HashMap::new();
            for line in source
                .lines()
                .filter(|l| l.starts_with("local ") && l.contains(" = "))
            {
                let Some((names, numbers)) = line["local ".len()..].split_once(" = ") else {
                    continue;
                };
                if !names
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c == ',' || c == ' ')
                {
                    continue;
                }
                for (code, number) in names.split(", ").zip(numbers.split(", ")) {
                    let earlier = seen.insert(code.to_owned(), number.to_owned());
                    assert!(
                        earlier.as_deref().is_none_or(|e| e == number),
                        "{name}.lua declares {code} as {earlier:?} and {number}"
                    );
                }
            }
        }
    }

    #[test]
    fn scripts_use_names_not_numbers() {
        for (name, source) in sources() {
            let body = source.split_once('\n').map_or("", |(_, body)| body);
            for line in body
                .lines()
                .filter(|l| l.trim_start().starts_with("return {"))
            {
                let first = line.trim_start()["return {".len()..].trim_start();
                assert!(
                    !first.starts_with(|c: char| c == '-' || c.is_ascii_digit()),
                    "{name}.lua returns a bare code: {line}"
                );
            }
        }
        assert!(script_source("buy").is_some_and(|s| s.starts_with("local SOLD, ")));
        assert_eq!(script_source("nope"), None);
    }

    /// Every field of the sale hash a script names by hand is one the
    /// record's schema defines, or one of the counters (and the operator's
    /// pause, `control.lua`) kept beside it: a
    /// rule renamed in spike-core cannot leave a script reading the old name.
    #[test]
    fn scripts_name_only_the_sale_fields_the_schema_defines() {
        let counters = [
            "sold",
            "order_seq",
            "event",
            "train_classes",
            "train_segments",
            "paused",
        ];
        let known: Vec<&str> = (RULE_FIELDS.iter().copied())
            .chain([TRAIN_FIELD])
            .chain(counters)
            .collect();
        for (name, source) in sources() {
            for line in source.lines().filter(|line| line.contains("KEYS[1]")) {
                let call = line.trim_start();
                if !(call.contains("'HMGET'") || call.contains("'HSET'") || call.contains("'HGET'"))
                {
                    continue;
                }
                // The quoted words after KEYS[1] on the line are field names
                // (the command itself comes before it).
                let after = line.split("KEYS[1]").nth(1).unwrap_or_default();
                let words = after.split('\'').skip(1).step_by(2);
                // Format strings ('%d') are values, not names.
                for field in words.filter(|word| !word.starts_with('%')) {
                    assert!(
                        known.contains(&field) || field.starts_with("class:"),
                        "{name}.lua names sale field {field:?}, which the schema does not define"
                    );
                }
            }
        }
        assert!(record_prelude().contains("'queue_max_active'"));
    }
}
