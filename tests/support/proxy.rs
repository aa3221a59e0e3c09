//! A loopback TCP proxy that injects network faults between a process and
//! a real server (PostgreSQL, moto):
//!
//! - [`Proxy::refuse`]: connections are dropped and new ones closed at once,
//!   as when a server is down;
//! - [`Proxy::black_hole`]: nothing is forwarded and nothing is closed, as
//!   with a half-open connection after a failover: the client waits for an
//!   answer that never comes, and the server keeps its session (and whatever
//!   that session holds) open. A connection that lived through a black hole
//!   stays dead after [`Proxy::heal`]; new connections work again.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

const OPEN: u8 = 0;
const REFUSE: u8 = 1;
const BLACK_HOLE: u8 = 2;

#[derive(Debug, Default)]
struct State {
    fault: AtomicU8,
    /// Counts black holes begun: a connection born before the current
    /// count lived through one.
    holes: AtomicU64,
    stopped: AtomicBool,
}

impl State {
    fn fault(&self) -> u8 {
        self.fault.load(Ordering::SeqCst)
    }
}

/// The proxy; dropping it closes everything it holds.
#[derive(Debug)]
pub struct Proxy {
    /// The port to connect to instead of the upstream's.
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// Forwards a free loopback port to `upstream` (`host:port`).
    pub fn to(upstream: &str) -> Proxy {
        Proxy::to_on(0, upstream)
    }

    /// Forwards `127.0.0.1:port` to `upstream` (`host:port`).
    pub fn to_on(port: u16, upstream: &str) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let upstream = upstream.to_string();
        let s = state.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                if s.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(inbound) = inbound else { continue };
                match s.fault() {
                    REFUSE => continue,
                    // Accepted, never answered, never closed.
                    BLACK_HOLE => {
                        let s = s.clone();
                        std::thread::spawn(move || hold(inbound, &s));
                        continue;
                    }
                    _ => {}
                }
                let Ok(outbound) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let born = s.holes.load(Ordering::SeqCst);
                let (a, b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                let (s1, s2) = (s.clone(), s.clone());
                std::thread::spawn(move || pump(inbound, outbound, born, &s1));
                std::thread::spawn(move || pump(b, a, born, &s2));
            }
        });
        Proxy { port, state }
    }

    /// Drops every connection, and closes new ones at once.
    pub fn refuse(&self) {
        self.state.fault.store(REFUSE, Ordering::SeqCst);
    }

    /// Stops forwarding without closing anything (see the module doc).
    pub fn black_hole(&self) {
        self.state.holes.fetch_add(1, Ordering::SeqCst);
        self.state.fault.store(BLACK_HOLE, Ordering::SeqCst);
    }

    /// New connections work again.
    pub fn heal(&self) {
        self.state.fault.store(OPEN, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Keeps `stream` open, unread, until the proxy is dropped.
fn hold(stream: TcpStream, state: &State) {
    while !state.stopped.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stream);
}

/// Copies `from` to `to` while the connection is healthy.
fn pump(mut from: TcpStream, mut to: TcpStream, born: u64, state: &State) {
    let mut buf = [0u8; 16 * 1024];
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    loop {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        if state.holes.load(Ordering::SeqCst) != born {
            // It lived through a black hole: dead, but never closed.
            return hold(from, state);
        }
        if state.fault() == REFUSE {
            let _ = to.shutdown(std::net::Shutdown::Both);
            let _ = from.shutdown(std::net::Shutdown::Both);
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            // Read during a black hole: swallowed.
            Ok(_) if state.holes.load(Ordering::SeqCst) != born => {}
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
