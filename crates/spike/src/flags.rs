//! Errors in the command line's words. The domain names its rules ("the
//! admission rate must be at most …"); a user of `spike` set them with
//! flags, so here, and only here, an error is told with the flags that
//! change it. `main` prints every error through [`explain`].

use spike_core::queue::{QueueConfigError, MAX_ADMIT_RATE};
use spike_core::sale::{SaleConfigError, MAX_STOCK};
use spike_core::CreateSaleError;
use spike_node::NodeError;
use spike_orders::OrdersError;

use crate::app::AppError;

/// `error` as a `spike` user reads it: the first error of its chain that a
/// flag can change, told with that flag; otherwise the whole chain.
pub fn explain(error: &anyhow::Error) -> String {
    let told = (error.chain()).find_map(|cause| {
        if let Some(error) = cause.downcast_ref::<SaleConfigError>() {
            return Some(sale_rule(error));
        }
        if let Some(error) = cause.downcast_ref::<QueueConfigError>() {
            return Some(queue_rule(error));
        }
        if let Some(CreateSaleError::AlreadyExists(event)) = cause.downcast_ref() {
            return Some(format!(
                "event {event} already has a sale (use --force to replace it and lose its orders)"
            ));
        }
        if let Some(error) = cause.downcast_ref::<NodeError>() {
            return node(error);
        }
        if let Some(AppError::Node(error)) = cause.downcast_ref::<AppError>() {
            return node(error);
        }
        if let Some(OrdersError::UnknownSale(event)) = cause.downcast_ref() {
            return Some(format!(
                "the ledger has no rules for {event} and central stock has no sale: \
                 recreate it with `spike sale create --database-url …`"
            ));
        }
        None
    });
    told.unwrap_or_else(|| format!("{error:#}"))
}

fn sale_rule(error: &SaleConfigError) -> String {
    match error {
        SaleConfigError::NoStock => "--stock must be at least 1".to_owned(),
        SaleConfigError::TooMuchStock => format!("--stock must be at most {MAX_STOCK}"),
        SaleConfigError::NoPaymentWindow => "--payment-window must be longer than zero".to_owned(),
        SaleConfigError::PaymentWindowTooLong => {
            "--payment-window must be at most 30 days".to_owned()
        }
        SaleConfigError::TokenNeedsBuyers => {
            "--auth token needs identified buyers; an anonymous sale (--anonymous) has none"
                .to_owned()
        }
        SaleConfigError::QueueNeedsBuyers => {
            "--queue needs identified buyers; an anonymous sale (--anonymous) has none".to_owned()
        }
        SaleConfigError::QueueNeedsTokens => {
            "--queue needs buyers who prove who they are: add --auth token".to_owned()
        }
        SaleConfigError::JoinsAfterOpening => {
            "--queue-opens-at must be before the sale opens (--opens-at)".to_owned()
        }
        SaleConfigError::Queue(error) => queue_rule(error),
        other => other.to_string(),
    }
}

fn queue_rule(error: &QueueConfigError) -> String {
    match error {
        QueueConfigError::RateTooHigh => format!("--admit-rate must be at most {MAX_ADMIT_RATE}/s"),
        QueueConfigError::NoWindow => "--admit-window must be longer than zero".to_owned(),
        QueueConfigError::WindowTooLong => "--admit-window must be at most 30 days".to_owned(),
    }
}

fn node(error: &NodeError) -> Option<String> {
    match error {
        NodeError::NoSuchSale(event) => Some(format!(
            "event {event} has no sale in central stock (create it with `spike sale create`)"
        )),
        NodeError::NoTokenKey(event) => Some(format!(
            "event {event} is a token sale (--auth token); start the node with --token-key-file"
        )),
        NodeError::NoAdmissionKey(event) => Some(format!(
            "event {event} has a waiting room (--queue); start the node with --order-key-file"
        )),
        NodeError::Central(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_are_told_with_their_flags() {
        let queue = anyhow::Error::from(SaleConfigError::Queue(QueueConfigError::RateTooHigh));
        assert!(explain(&queue).starts_with("--admit-rate must be at most"));
        let exists = anyhow::Error::from(CreateSaleError::AlreadyExists(
            spike_core::EventId::parse("e").unwrap(),
        ))
        .context("creating the sale");
        assert!(explain(&exists).contains("--force"), "{}", explain(&exists));
        let other = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(explain(&other), "writing: disk full");
    }
}
