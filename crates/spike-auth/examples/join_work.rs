//! What proof of work costs: a node's check of one join's work, and a
//! solver's hashes per second in Rust (the page's are measured in
//! Chromium by the browser test). Run by `scripts/bench-join-work`:
//! `cargo run --release -p spike-auth --example join_work [BITS]`.

use std::hint::black_box;
use std::time::Instant;

use spike_auth::work::{solve, JoinWork};
use spike_auth::{KeyRing, SecretKey};
use spike_core::{EventId, UserId};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bits: u8 = std::env::args().nth(1).map_or(Ok(18), |b| b.parse())?;
    let keys = KeyRing::new(SecretKey::new(vec![7u8; 32])?, Vec::new());
    let work = JoinWork::new(keys, bits)?;
    let (event, user) = (EventId::parse("G1")?, UserId::parse("ann")?);

    let mut solved = Vec::new();
    let started = Instant::now();
    let mut hashes = 0;
    for i in 0..20u64 {
        let challenge = work.challenge(&event, &user, 1_000 + i);
        let (text, tried) = solve(&challenge.text, bits);
        hashes += tried;
        solved.push(text);
    }
    let took = started.elapsed();
    println!(
        "solve: {bits} bits, 20 challenges, {hashes} hashes in {:.2} s: {:.0} hashes/s, {:.0} ms a challenge",
        took.as_secs_f64(),
        hashes as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / 20.0
    );

    const CHECKS: u32 = 200_000;
    let started = Instant::now();
    for i in 0..CHECKS {
        let text = &solved[i as usize % solved.len()];
        black_box(work.verify(&event, &user, Some(black_box(text)), 2_000))?;
    }
    let took = started.elapsed();
    println!(
        "verify: {CHECKS} checks in {:.3} s: {:.2} µs a check",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / f64::from(CHECKS)
    );
    Ok(())
}
