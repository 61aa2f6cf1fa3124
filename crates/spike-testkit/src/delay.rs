//! A TCP relay that delays every byte by a fixed time in each direction: a
//! stand-in for network latency where the kernel has no `netem` (this
//! machine's does not). Bytes keep their order; nothing is changed or lost.
//! Threads, not async: a test has a handful of connections.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A running relay; it stops taking connections when dropped.
#[derive(Debug)]
pub struct DelayRelay {
    addr: SocketAddr,
}

impl DelayRelay {
    /// Listens on `listen` and relays each connection to `target`, `delay`
    /// late in each direction.
    pub fn start(listen: SocketAddr, target: SocketAddr, delay: Duration) -> Self {
        let listener = TcpListener::bind(listen).expect("bind the delay relay");
        let addr = listener.local_addr().expect("relay address");
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) {
                    pipe(client, server2, delay);
                    pipe(server, client2, delay);
                }
            }
        });
        Self { addr }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if chunks
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (at, chunk) in due {
            thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
