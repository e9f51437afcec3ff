//! Hostile fixture `open-socket`: tries to open a TCP connection to
//! 127.0.0.1:9 (discard) with `std::net::TcpStream`.
//!
//! On wasm32-wasip2 Rust's std implements sockets over `wasi:sockets`, so
//! this component imports `wasi:sockets/*` (tcp, tcp-create-socket, network,
//! instance-network, ...). Expected host behaviour: those imports are linked
//! (wasmtime-wasi p2) with networking denied, so the connect fails and the
//! worker returns a **fatal** error starting with "sandbox held: connect
//! 127.0.0.1:9: ..." — or, on a host that links no `wasi:sockets`, the
//! component is refused at registration. If the connect succeeds the worker
//! *succeeds* with `"connected"`: the sandbox leaked.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use multiagents_worker::{Call, WorkerError, codec};

fn probe(_call: &Call, _input: Vec<u8>) -> Result<Vec<u8>, WorkerError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 9));
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => Ok(codec::to_cbor("connected")?),
        Err(e) => Err(WorkerError::fatal(format!("sandbox held: connect {addr}: {e}"))),
    }
}

multiagents_worker::export_worker!(raw: probe);
