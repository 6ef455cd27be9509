//! Generated proxies against a host runtime that contains panics the way
//! the kernel contains crashes (the callee is marked dead; later calls fail
//! without running it).

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rrpc::proxy::{Runtime, install_runtime};
use rrpc::{Backend, Exchangeable, Owner, RRef, RpcError, RpcResult, install_backend, interface};

thread_local! {
    static CURRENT: Cell<Owner> = const { Cell::new(0) };
}

struct HostHeap;

impl Backend for HostHeap {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: every RRef allocation has a non-zero size.
        NonNull::new(unsafe { std::alloc::alloc(layout) })
    }
    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { std::alloc::dealloc(pointer.as_ptr(), layout) }
    }
    fn current_owner(&self) -> Owner {
        CURRENT.with(|c| c.get())
    }
}

/// Each test uses its own callee; a panic inside marks it dead.
struct HostRuntime {
    dead: [AtomicBool; 64],
    entries: AtomicU32,
}

impl Runtime for HostRuntime {
    fn current(&self) -> Owner {
        CURRENT.with(|c| c.get())
    }
    fn enter(&self, callee: Owner, f: &mut dyn FnMut()) -> Result<(), RpcError> {
        let slot = (callee >> 16) as usize;
        if self.dead[slot].load(Ordering::SeqCst) {
            return Err(RpcError::DomainNotAlive);
        }
        self.entries.fetch_add(1, Ordering::SeqCst);
        let previous = CURRENT.with(|c| c.replace(callee));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        CURRENT.with(|c| c.set(previous));
        result.map_err(|_| {
            self.dead[slot].store(true, Ordering::SeqCst);
            RpcError::DomainCrashed
        })
    }
}

static RUNTIME: HostRuntime = HostRuntime {
    dead: [const { AtomicBool::new(false) }; 64],
    entries: AtomicU32::new(0),
};
static HEAP: HostHeap = HostHeap;

fn setup(caller: Owner) {
    install_backend(&HEAP);
    install_runtime(&RUNTIME);
    CURRENT.with(|c| c.set(caller));
}

#[derive(Exchangeable)]
pub struct Packet {
    pub header: [u8; 4],
    pub payload: RRef<[u8; 64]>,
    pub length: u16,
}

#[interface]
pub trait Block {
    fn echo(&self, value: u64) -> RpcResult<u64>;
    fn fill(&self, buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>>;
    fn sum(&self, buffer: &RRef<[u8; 64]>) -> RpcResult<u64>;
    fn who(&self) -> RpcResult<Owner>;
    fn packet(&self, packet: RRef<Packet>) -> RpcResult<u16>;
    fn crash(&self) -> RpcResult<()>;
}

struct Device {
    seen_owner: AtomicU32,
}

impl Block for Device {
    fn echo(&self, value: u64) -> RpcResult<u64> {
        Ok(value)
    }
    fn fill(&self, mut buffer: RRef<[u8; 64]>, byte: u8) -> RpcResult<RRef<[u8; 64]>> {
        self.seen_owner.store(buffer.owner(), Ordering::SeqCst);
        buffer.iter_mut().for_each(|b| *b = byte);
        Ok(buffer)
    }
    fn sum(&self, buffer: &RRef<[u8; 64]>) -> RpcResult<u64> {
        Ok(buffer.iter().map(|&b| u64::from(b)).sum())
    }
    fn who(&self) -> RpcResult<Owner> {
        Ok(rrpc::proxy::current())
    }
    fn packet(&self, packet: RRef<Packet>) -> RpcResult<u16> {
        self.seen_owner.store(packet.owner(), Ordering::SeqCst);
        Ok(packet.length + u16::from(packet.payload[0]))
    }
    fn crash(&self) -> RpcResult<()> {
        panic!("device crashed");
    }
}

fn device(slot: u32) -> (BlockProxy, Arc<Device>, Owner) {
    let callee = slot << 16 | 1;
    let inner = Arc::new(Device {
        seen_owner: AtomicU32::new(0),
    });
    (BlockProxy::new(inner.clone(), callee), inner, callee)
}

#[test]
fn calls_run_as_the_callee_and_return_values() {
    let caller = 1 << 16 | 1;
    setup(caller);
    let (proxy, _, callee) = device(2);
    assert_eq!(proxy.echo(41), Ok(41));
    assert_eq!(proxy.who(), Ok(callee));
    assert_eq!(
        rrpc::proxy::current(),
        caller,
        "the caller is current again"
    );
}

#[test]
fn rrefs_move_to_the_callee_and_back() {
    let caller = 3 << 16 | 1;
    setup(caller);
    let (proxy, device, callee) = device(4);
    let buffer = RRef::new([0u8; 64]);
    let filled = proxy.fill(buffer, 9).unwrap();
    assert_eq!(
        device.seen_owner.load(Ordering::SeqCst),
        callee,
        "the callee owned it during the call"
    );
    assert_eq!(filled.owner(), caller, "the result came back to the caller");
    assert!(filled.iter().all(|&b| b == 9));
    assert_eq!(proxy.sum(&filled), Ok(9 * 64));
    assert_eq!(filled.owner(), caller, "a lent RRef does not move");
}

#[test]
fn derived_structs_cross_with_their_nested_rrefs() {
    let caller = 5 << 16 | 1;
    setup(caller);
    let (proxy, device, callee) = device(6);
    let packet = RRef::new(Packet {
        header: [1, 2, 3, 4],
        payload: RRef::new([7; 64]),
        length: 10,
    });
    assert_eq!(
        packet.payload.owner(),
        rrpc::registry::NESTED,
        "the payload is owned through the packet"
    );
    assert_eq!(proxy.packet(packet), Ok(17));
    assert_eq!(device.seen_owner.load(Ordering::SeqCst), callee);
}

#[test]
fn a_crash_is_an_error_and_later_calls_fail_without_entering() {
    setup(7 << 16 | 1);
    let (proxy, _, _) = device(8);
    assert_eq!(proxy.echo(1), Ok(1));
    assert_eq!(proxy.crash(), Err(RpcError::DomainCrashed));
    let before = RUNTIME.entries.load(Ordering::SeqCst);
    assert_eq!(proxy.echo(2), Err(RpcError::DomainNotAlive));
    assert_eq!(
        RUNTIME.entries.load(Ordering::SeqCst),
        before,
        "a dead callee is not entered"
    );
}
