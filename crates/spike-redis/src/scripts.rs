//! The Lua scripts of `lua/`, and the reply codes they return, named once.
//!
//! Each reply code is declared here, in Rust, with its number and the Lua
//! constant that names it; a script is sent to Redis as a one-line prelude
//! declaring those constants (`local SOLD, REPLAYED, … = 1, 2, …`) followed
//! by the file. So the scripts say `return {SOLD_OUT, '', 0}` and the
//! adapter decodes the same table: neither side spells a bare number.

use redis::Script;
use spike_core::record::{RULE_FIELDS, TRAIN_FIELD};

/// Declares a script's reply codes: an enum, its numbers and Lua names.
macro_rules! reply_codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $number:literal as $lua:literal,)* }) => {
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
                match self { $($name::$variant => $number,)* }
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

reply_codes! {
    /// What `buy.lua` answers (and `buy_many.lua`, for each purchase, and
    /// `ticket.lua`).
    BuyCode {
        /// A seat was sold.
        Sold = 1 as "SOLD",
        /// This request id had bought a seat before: the same order again.
        Replayed = 2 as "REPLAYED",
        /// No seat left.
        SoldOut = -1 as "SOLD_OUT",
        /// The buyer's limit is reached.
        LimitReached = -2 as "LIMIT_REACHED",
        /// The sale has not opened.
        NotOpen = -3 as "NOT_OPEN",
        /// The sale needs a user id.
        UserRequired = -4 as "USER_REQUIRED",
        /// No such sale.
        NoSuchSale = -6 as "NO_SUCH_SALE",
        /// The request id bought for another buyer.
        RequestIdTaken = -7 as "REQUEST_ID_TAKEN",
        /// A queued sale, and no admitted position came with the purchase.
        NotAdmitted = -8 as "NOT_ADMITTED",
    }
}

reply_codes! {
    /// What `queue_join.lua` answers.
    JoinCode {
        /// The buyer has a place (its join index follows).
        Joined = 1 as "JOINED",
        /// Joining has not started (its time follows).
        NotYetOpen = 0 as "NOT_YET_OPEN",
        /// The sale has no waiting room.
        NoQueue = -1 as "NO_QUEUE",
        /// No such sale.
        NoSuchSale = -6 as "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `queue_tick.lua` answers.
    TickCode {
        /// The counters follow.
        Ticked = 1 as "TICKED",
        /// No such sale, or no waiting room.
        NoQueue = -1 as "NO_QUEUE",
    }
}

reply_codes! {
    /// What `release.lua` answers.
    ReleaseCode {
        /// The seat is for sale again.
        Released = 1 as "RELEASED",
        /// It had been given back before.
        AlreadyReleased = 0 as "ALREADY_RELEASED",
        /// The sale never sold this order to this request.
        NotSold = -1 as "NOT_SOLD",
        /// No such sale.
        NoSuchSale = -6 as "NO_SUCH_SALE",
    }
}

reply_codes! {
    /// What `create.lua` answers.
    CreateCode {
        /// The sale was created.
        Created = 1 as "CREATED",
        /// A sale exists and was not to be replaced.
        Exists = 0 as "EXISTS",
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

/// One script's name and its full source, as Redis receives it.
fn sources() -> [(&'static str, String); 10] {
    [
        ("ack", include_str!("../lua/ack.lua").to_owned()),
        ("buy", selling_rules() + include_str!("../lua/buy.lua")),
        (
            "ticket",
            selling_rules() + include_str!("../lua/ticket.lua"),
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
            ReleaseCode::lua_prelude() + include_str!("../lua/release.lua"),
        ),
        (
            "queue_join",
            JoinCode::lua_prelude() + include_str!("../lua/queue_join.lua"),
        ),
        (
            "queue_tick",
            TickCode::lua_prelude() + include_str!("../lua/queue_tick.lua"),
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
    pub(crate) occupancy: Script,
    pub(crate) buy_many: Script,
    pub(crate) create: Script,
    pub(crate) snapshot: Script,
    pub(crate) release: Script,
    pub(crate) queue_join: Script,
    pub(crate) queue_tick: Script,
}

impl Scripts {
    /// Every script of `lua/` with its prelude.
    pub(crate) fn load() -> Self {
        let [ack, buy, ticket, occupancy, buy_many, create, snapshot, release, queue_join, queue_tick] =
            sources().map(|(_, source)| Script::new(&source));
        Self {
            ack,
            buy,
            ticket,
            occupancy,
            buy_many,
            create,
            snapshot,
            release,
            queue_join,
            queue_tick,
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
            "local RELEASED, ALREADY_RELEASED, NOT_SOLD, NO_SUCH_SALE = 1, 0, -1, -6\n"
        );
        for code in BuyCode::ALL {
            assert_eq!(BuyCode::from_reply(code.number()), Some(*code));
        }
        assert_eq!(BuyCode::from_reply(99), None);
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
    /// record's schema defines, or one of the counters kept beside it: a
    /// rule renamed in spike-core cannot leave a script reading the old name.
    #[test]
    fn scripts_name_only_the_sale_fields_the_schema_defines() {
        let counters = [
            "sold",
            "order_seq",
            "event",
            "train_classes",
            "train_segments",
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
