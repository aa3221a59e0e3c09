//! The half-open proxy of `tests/support/proxy.rs` as a process, for
//! `scripts/load-fault`: `halfopen LISTEN_PORT UPSTREAM CONTROL_FILE`
//! forwards 127.0.0.1:LISTEN_PORT to UPSTREAM (`host:port`), and
//! black-holes every connection (forwards nothing, closes nothing) while
//! CONTROL_FILE exists; a connection that lived through a black hole stays
//! dead, and new ones work again once the file is gone.

#[path = "../tests/support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, upstream, control] = &args[..] else {
        eprintln!("usage: halfopen LISTEN_PORT UPSTREAM CONTROL_FILE");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("halfopen: LISTEN_PORT must be a port number, found {port:?}");
        std::process::exit(2);
    };
    let proxy = proxy::Proxy::to_on(port, upstream);
    let mut cut = false;
    loop {
        let now = std::path::Path::new(control).exists();
        if now != cut {
            if now {
                proxy.black_hole();
            } else {
                proxy.heal();
            }
            eprintln!("halfopen: {}", if now { "black hole" } else { "healed" });
            cut = now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
