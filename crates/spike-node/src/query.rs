//! Reading a purchase's parameters from the query string, with every way it
//! can be wrong turned into a clear message (answered as 4xx).

use percent_encoding::percent_decode_str;
use spike_core::{EventId, IdError, RequestId, UserId};

/// Longest query string accepted; longer ones get 414.
pub const MAX_QUERY_LEN: usize = 2048;

/// What is wrong with a request's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The query string is longer than [`MAX_QUERY_LEN`].
    #[error("query string is longer than {MAX_QUERY_LEN} bytes")]
    QueryTooLong,
    /// A parameter is not valid UTF-8 once percent-decoded.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A parameter appears twice.
    #[error("{0} is given more than once")]
    Repeated(&'static str),
    /// A parameter is present but invalid.
    #[error(transparent)]
    Invalid(#[from] IdError),
}

/// The parameters of `/buy/ticket` and `/buy/result`, validated but not yet
/// checked against the sale (that needs the event).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuyParams {
    /// `user_id`, if given.
    pub user: Option<UserId>,
    /// `event`, if given.
    pub event: Option<EventId>,
    /// `request_id`, if given.
    pub request: Option<RequestId>,
    /// `token`, if given: a buyer token for tools that cannot send headers.
    pub token: Option<String>,
    /// `order_key`, if given: the key that opens one order of an open sale.
    pub order_key: Option<String>,
    /// `request_key`, if given: proves that the caller sent the purchase
    /// whose request id the node made (its 503 answer carried both).
    pub request_key: Option<String>,
    /// `admission`, if given: the admission token of a sale's waiting room.
    pub admission: Option<String>,
    /// `work`, if given: a join's proof of work (`--join-work`).
    pub work: Option<String>,
    /// A train run's purchase: `train`, `date`, `from`, `to`, `class`,
    /// `passengers`, as given (checked against the run's layout later).
    pub ticket: TicketParams,
}

/// The parameters of a train ticket purchase, decoded, not yet checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TicketParams {
    /// `train`, such as `G1`.
    pub train: Option<String>,
    /// `date`, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `from`: the boarding station.
    pub from: Option<String>,
    /// `to`: the station left at.
    pub to: Option<String>,
    /// `class`: the seat class.
    pub class: Option<String>,
    /// `passengers`: 1 to 5 (1 when absent).
    pub passengers: Option<String>,
    /// `seat`: `window`, `aisle`, or a letter of the row (any when absent).
    pub seat: Option<String>,
    /// `wait_minutes`: how long a waitlist order waits (`POST /waitlist`).
    pub wait_minutes: Option<String>,
}

impl TicketParams {
    /// Whether any of them was given.
    pub fn any(&self) -> bool {
        self.train.is_some()
            || self.date.is_some()
            || self.from.is_some()
            || self.to.is_some()
            || self.class.is_some()
            || self.passengers.is_some()
            || self.seat.is_some()
            || self.wait_minutes.is_some()
    }
}

pub(crate) fn decode(raw: &str, name: &'static str) -> Result<String, ParamError> {
    if !raw.contains(['%', '+']) {
        // The common case (user_id=12345): nothing to decode.
        return Ok(raw.to_owned());
    }
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ParamError::NotUtf8(name))
}

fn set<T>(
    slot: &mut Option<T>,
    name: &'static str,
    raw: &str,
    parse: impl Fn(String) -> Result<T, IdError>,
) -> Result<(), ParamError> {
    if slot.is_some() {
        return Err(ParamError::Repeated(name));
    }
    *slot = Some(parse(decode(raw, name)?)?);
    Ok(())
}

impl BuyParams {
    /// Parses a query string (without the `?`). Unknown parameters are ignored.
    pub fn parse(query: Option<&str>) -> Result<Self, ParamError> {
        let mut params = Self::default();
        let Some(query) = query else {
            return Ok(params);
        };
        if query.len() > MAX_QUERY_LEN {
            return Err(ParamError::QueryTooLong);
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "user_id" => set(&mut params.user, "user_id", value, UserId::parse)?,
                "event" => set(&mut params.event, "event", value, EventId::parse)?,
                "request_id" => set(&mut params.request, "request_id", value, RequestId::parse)?,
                "token" => set(&mut params.token, "token", value, Ok)?,
                "order_key" => set(&mut params.order_key, "order_key", value, Ok)?,
                "request_key" => set(&mut params.request_key, "request_key", value, Ok)?,
                "admission" => set(&mut params.admission, "admission", value, Ok)?,
                "work" => set(&mut params.work, "work", value, Ok)?,
                "train" => set(&mut params.ticket.train, "train", value, Ok)?,
                "date" => set(&mut params.ticket.date, "date", value, Ok)?,
                "from" => set(&mut params.ticket.from, "from", value, Ok)?,
                "to" => set(&mut params.ticket.to, "to", value, Ok)?,
                "class" => set(&mut params.ticket.class, "class", value, Ok)?,
                "passengers" => set(&mut params.ticket.passengers, "passengers", value, Ok)?,
                "seat" => set(&mut params.ticket.seat, "seat", value, Ok)?,
                "wait_minutes" => set(&mut params.ticket.wait_minutes, "wait_minutes", value, Ok)?,
                _ => {}
            }
        }
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_decoded_parameters_and_ignores_unknown_ones() {
        let params =
            BuyParams::parse(Some("user_id=%E5%BC%A0&event=G1&x=1&request_id=r-1")).unwrap();
        assert_eq!(params.user.unwrap().as_str(), "张");
        assert_eq!(params.event.unwrap().as_str(), "G1");
        assert_eq!(params.request.unwrap().as_str(), "r-1");
        assert_eq!(BuyParams::parse(None).unwrap(), BuyParams::default());
    }

    #[test]
    fn refuses_what_is_wrong_with_a_reason() {
        let err = |q: &str| BuyParams::parse(Some(q)).unwrap_err().to_string();
        assert_eq!(err("user_id="), "user_id is empty");
        assert_eq!(err("user_id=%FF%FE"), "user_id is not valid UTF-8");
        assert_eq!(err("user_id=a+b"), "user_id contains a forbidden character (allowed: printable UTF-8 except whitespace, format characters, , \" \\)");
        assert!(
            err("user_id=alice%E2%80%8B").contains("forbidden character"),
            "zero-width space"
        );
        assert!(err("user_id=cafe%CC%81").contains("NFC"));
        assert_eq!(
            err(&format!("user_id={}", "u".repeat(65))),
            "user_id is longer than 64 bytes"
        );
        assert_eq!(err("event=a&event=b"), "event is given more than once");
        assert_eq!(
            err(&"a".repeat(MAX_QUERY_LEN + 1)),
            "query string is longer than 2048 bytes"
        );
    }
}
