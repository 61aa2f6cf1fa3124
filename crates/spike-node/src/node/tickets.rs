//! The tickets room: purchases of seats on a train run (which event a
//! `train` and `date` name, what seats a request asks for, the verdict of
//! `buy_seats`) and the availability table.

use std::sync::Arc;
use std::time::Instant;

use crate::answer::{Answer, SoldTicket};
use hyper::StatusCode;
use spike_core::{
    CentralError, CentralReply, CentralStock, EventId, OrderId, Passengers, Purchase,
    SeatPreference, SeatRequest, TicketPurchase, TrainLayout, TrainRun, Verdict,
};
use spike_http::{InFlight, RetryReason};

use super::event::{CentralLane, EventState};
use super::outcome::{verdict_answer, Outcome};
use super::refusal::try_again;
use super::Node;
use crate::batcher::LaneError;
use crate::proof::Proof;
use crate::query::TicketParams;

impl<C: CentralStock> Node<C> {
    /// A train ticket's last steps: ask central stock for the seats, learn
    /// a "sold out" into the memo, answer the seats central gave.
    pub(super) async fn complete_ticket(
        &self,
        purchase: Purchase,
        request: SeatRequest,
        state: Arc<EventState>,
        proof: Proof,
        in_flight: InFlight,
    ) -> Outcome {
        self.stats.count_central_call();
        let asked = Instant::now();
        let ticket = TicketPurchase {
            purchase,
            seats: request,
            replacing: None,
        };
        let reply = match &state.lane {
            Some(CentralLane::Seats(lane)) => lane.buy(ticket.clone(), in_flight).await,
            Some(CentralLane::Purchases(_)) | None => {
                // Boxed, as in ask_central: only purchases that reach central pay for it.
                let reply = Box::pin(self.central.buy_seats(&ticket)).await;
                drop(in_flight);
                self.central_gate.observe(asked.elapsed());
                reply.map_err(LaneError::from)
            }
        };
        self.metrics
            .central_duration
            .record(asked.elapsed().as_secs_f64());
        let TicketPurchase { purchase, .. } = ticket;
        let reply = match reply {
            Ok(reply) => Ok(reply),
            Err(LaneError::Central(error)) => Err(error),
            Err(LaneError::Shed) => {
                // Waited in the lane past its budget, never sent: nothing sold.
                self.central_gate.count_shed();
                let busy = try_again(RetryReason::CentralBusy, None);
                return Outcome::about(busy, purchase.event, purchase.user, &state)
                    .of_request(purchase.request);
            }
        };
        let order_key = |order: &OrderId| self.order_key_for(&state, order);
        let answer = match (reply, &state.train) {
            (Ok(reply), Some(train)) => match (reply.verdict, reply.ticket) {
                (verdict @ Verdict::Sold { .. }, Some(ticket)) => {
                    train.count_sale();
                    match self.withheld(&verdict, &purchase, &state, &proof) {
                        Some(withheld) => withheld,
                        None => {
                            let Verdict::Sold { order, .. } = verdict else {
                                unreachable!("matched as a sale")
                            };
                            let key = order_key(&order);
                            let sold = SoldTicket {
                                event: &purchase.event,
                                order,
                                order_key: key,
                                ticket,
                                preference: request.preference,
                            };
                            Answer::seats_sold(train.layout(), sold)
                        }
                    }
                }
                (Verdict::Sold { .. }, None) => self.undecided(
                    CentralError::Protocol("a sale of seats without its seats".into()),
                    &purchase,
                    &state,
                    &proof,
                ),
                (Verdict::SoldOut, _) => {
                    train.learn(&request, reply.as_of);
                    leg_sold_out(train.layout(), &request, reply.as_of)
                }
                (verdict, _) => {
                    if verdict == Verdict::NoSuchSale {
                        state.set_missing(true);
                    }
                    let reply = CentralReply {
                        verdict,
                        remaining: 0,
                    };
                    verdict_answer(reply, &purchase, order_key)
                }
            },
            (Ok(_), None) => try_again(RetryReason::SaleStateMissing, None),
            (Err(error), _) => self.undecided(error, &purchase, &state, &proof),
        };
        Outcome::about(answer, purchase.event, purchase.user, &state).of_request(purchase.request)
    }

    /// `GET /trains/{train}/{date}/availability`: free seats per station
    /// pair and class, from the node's memory (refreshed from central
    /// stock every refresh period; 503 when the last refresh is older
    /// than two periods).
    pub(super) fn availability(&self, train: &str, date: &str) -> Answer {
        let run = match TrainRun::parse(train, date) {
            Ok(run) => run,
            Err(error) => return Answer::bad_request(error.to_string()),
        };
        let event = run.event();
        let state = self.event(&event);
        let Some(train_state) = state.as_ref().and_then(|state| state.train.as_ref()) else {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                format!("no train run {train} on {date} is served here"),
            );
        };
        match train_state.availability(self.config.refresh_interval * 2) {
            Some((table, tail)) => Answer::from(spike_http::Answer::done_spliced(table, tail)),
            None => try_again(RetryReason::Unavailable, None),
        }
    }
}

/// What a purchase of a train run asks for (`None` for other sales), or
/// why it is refused: every part must name the run's stations and classes.
pub(super) fn seat_request(
    event: &EventId,
    state: &EventState,
    ticket: &TicketParams,
) -> Result<Option<SeatRequest>, Answer> {
    let Some(train) = &state.train else {
        return match ticket.any() {
            true => Err(Answer::bad_request(format!(
                "event {event} is not a train run: it takes no train, from, to, class or passengers"
            ))),
            false => Ok(None),
        };
    };
    let (Some(from), Some(to), Some(class)) = (&ticket.from, &ticket.to, &ticket.class) else {
        return Err(Answer::bad_request(format!(
            "{event} is a train run: give from, to and class (stations {}; classes {})",
            train.layout().stations().join(", "),
            (train.layout().classes().iter())
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let bad = |e: spike_core::TrainError| Answer::bad_request(e.to_string());
    let layout = train.layout();
    let preference = match &ticket.seat {
        None => SeatPreference::ANY,
        Some(seat) => SeatPreference::parse(seat).map_err(bad)?,
    };
    let passengers = match &ticket.passengers {
        None => Passengers::ONE,
        Some(count) => count
            .parse()
            .map_err(|_| spike_core::TrainError::Passengers)
            .and_then(Passengers::new)
            .map_err(bad)?,
    };
    Ok(Some(SeatRequest {
        class: layout.class_index(class).map_err(bad)?,
        leg: layout.leg(from, to).map_err(bad)?,
        passengers,
        preference,
    }))
}

/// "Sold out for this segment": what was asked, and the order sequence
/// after which it was true.
pub(super) fn leg_sold_out(layout: &TrainLayout, request: &SeatRequest, as_of: u64) -> Answer {
    let (from, to) = layout.leg_names(request.leg);
    let class = layout
        .classes()
        .get(request.class)
        .map_or("?", |c| c.name());
    Answer::SoldOutForLeg {
        asked: Box::new(serde_json::json!({
            "from": from,
            "to": to,
            "class": class,
            "passengers": request.passengers.get(),
            "as_of_order": as_of,
        })),
    }
}
