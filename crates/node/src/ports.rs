//! Loopback ports for processes that bind them later (the devnet's validators and chain).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback port nothing listens on, or `None` when every candidate is taken.
///
/// Picked below the kernel's ephemeral range (`ip_local_port_range`): the ports the kernel
/// hands out for `:0` binds and for outgoing connections never come from there. A port found by
/// binding `:0` and letting it go could be handed out again before the process meant to use it
/// bound it (`Address already in use`). Each process starts at an offset of its own (its process
/// id), so processes picking ports at once rarely try the same ones.
pub fn free_loopback_port() -> Option<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000, ephemeral_low.clamp(12_000, 32768));
    let offset = std::process::id().wrapping_mul(7919);
    loop {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        if i >= high - low {
            return None;
        }
        let port = (low + offset.wrapping_add(i) % (high - low)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Some(port);
        }
    }
}
