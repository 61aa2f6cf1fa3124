//! The live sale dashboard. A poller asks every node for `/stats` (and one
//! node for `/sale`) twice a second and keeps two minutes of history; a small
//! server serves the page (`/dashboard`, one HTML file embedded in the
//! binary: no build step) and the data it polls (`/dashboard/data`).

#![warn(missing_docs)]

pub mod history;
pub mod server;

pub use server::{serve_dashboard, DashboardConfig, RunningDashboard};
