//! Spike's domain logic: what a sale is, who may buy, how a node's local stock
//! gates requests, and the contract every central stock (Redis or embedded)
//! must honour. Nothing in this crate performs I/O.

#![warn(missing_docs)]

pub mod central;
pub mod code;
pub mod control;
pub mod ids;
pub mod local_stock;
pub mod memory;
pub mod order;
pub mod order_stream;
pub mod purchase;
pub mod queue;
pub mod reconcile;
pub mod record;
pub mod sale;
pub mod secret;
pub mod stat;
pub mod time;
pub mod train;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use central::{
    CentralError, CentralStock, CreateSaleError, Holding, QueueJoin, QueueRecord, Release,
    Restoration,
};
pub use code::Code;
pub use control::{Control, ControlOutcome, OperatorEntry, OperatorOrder};
pub use ids::{EventId, IdError, NodeId, OperatorName, OrderId, RequestId, UserId};
pub use local_stock::{Admission, LocalStock, Reservation, Settlement};
pub use memory::MemoryCentral;
pub use order::{Order, OrderState, Refusal, Transition};
pub use order_stream::{Backlog, OrderStream, StreamEntry};
pub use purchase::{
    Batch, BatchRefusal, CentralReply, OfSale, Purchase, PurchaseBatch, RequestRecord, TicketBatch,
    TicketPurchase, TicketReply, Verdict, MAX_BATCH,
};
pub use queue::{QueueConfig, QueueCounters, QueueMode, Seal, Shuffle, Standing};
pub use record::SaleRecord;
pub use sale::{BuyerPolicy, SaleConfig, SaleFigures, SaleLife, SaleSnapshot, SaleUnit};
pub use secret::SecretUrl;
pub use train::{
    ClassOccupancy, Leg, Occupancy, Passengers, SeatClass, SeatPreference, SeatRequest,
    SoldOutMemo, Ticket, TrainError, TrainLayout, TrainRun, WaitEntry, WaitJoin, WaitRequest,
    WaitState, WaitStatus,
};
