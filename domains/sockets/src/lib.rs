//! What the TCP services over the TCP/IP domain share (`echo`, `httpd`,
//! `kvstore`): [`serve_tcp`], the server loop (look `netstack/tcp` up,
//! listen, accept, a task per connection, and all of it again once the
//! stack is back after a crash), and [`write_all`], a whole response
//! written through one payload buffer.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::sync::Arc;
use core::future::Future;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use domain_sdk::{RRef, log, lookup, sleep, spawn};
use interfaces::socket::{PAYLOAD, Payload, Status, Tcp, TcpProxy};

/// Serves TCP `port` for ever: listens with `backlog` (logging "TCP:
/// listening on port N"), and runs `connection(tcp, socket)` as a task of
/// its own for every connection accepted. When the stack goes away (a
/// call fails, say because `netstack` crashed) it counts the restart in
/// `restarts`, waits 100 ms and starts again with a fresh lookup. A
/// connection whose task cannot be spawned (the domain's task quota) is
/// closed at once.
pub async fn serve_tcp<F, Fut>(port: u16, backlog: u16, restarts: &AtomicU64, connection: F)
where
    F: Fn(Arc<TcpProxy>, u32) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let Ok(tcp) = lookup::<dyn Tcp + Send + Sync>("netstack/tcp") else {
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        let tcp = Arc::new(tcp);
        match tcp.listen(port, backlog).await {
            Ok(opened) if opened.status == Status::Ok => {
                log(&alloc::format!("TCP: listening on port {port}"));
                loop {
                    match tcp.accept(opened.socket).await {
                        Ok(accepted) if accepted.status == Status::Ok => {
                            if spawn(connection(tcp.clone(), accepted.socket)).is_err() {
                                log("TCP: cannot start a task for a connection; closing it");
                                let _ = tcp.close(accepted.socket).await;
                            }
                        }
                        Ok(accepted) => {
                            log(&alloc::format!("TCP: accept: {:?}", accepted.status));
                            // Give the port back before listening again.
                            let _ = tcp.close(opened.socket).await;
                            break;
                        }
                        Err(e) => {
                            log(&alloc::format!("TCP: accept: {e}"));
                            break;
                        }
                    }
                }
            }
            Ok(opened) => log(&alloc::format!("TCP: listen: {:?}", opened.status)),
            Err(e) => log(&alloc::format!("TCP: listen: {e}")),
        }
        restarts.fetch_add(1, Ordering::Relaxed);
        sleep(Duration::from_millis(100)).await;
    }
}

/// Writes all of `bytes` on connection `id` through `buffer`, a payload at
/// a time; the buffer back if it all went (`None`: the connection failed
/// or the stack went away).
pub async fn write_all(
    tcp: &TcpProxy,
    id: u32,
    mut buffer: RRef<Payload>,
    bytes: &[u8],
) -> Option<RRef<Payload>> {
    for chunk in bytes.chunks(PAYLOAD) {
        buffer.set(chunk);
        buffer = tcp.write(id, buffer).await.ok()?;
        if buffer.status != Status::Ok {
            return None;
        }
    }
    Some(buffer)
}
