//! The shared heap: memory that belongs to no domain's private heap.
//!
//! It is where `RRef` objects will live (passed between domains without
//! copying, with ownership tracked by the RRef registry) and where drivers
//! find buffers a device can reach: every allocation has a device
//! (physical) address. Slabs and page runs are backed by physically
//! contiguous frames, so an object never straddles a physical
//! discontinuity and one address describes all of it.
//!
//! Allocations come from here whichever domain is running (the global
//! allocator is not involved). One lock for now; the per-core caches of
//! the domain heaps (`kcore::domheap::CoreCache`) can front it the same way.

use core::alloc::Layout;
use core::ptr::NonNull;

use kcore::domheap::{DomainHeap, PageSource};
use spin::Mutex;

use crate::cpu;
use crate::mem::{PAGE_SIZE, frames, paging};

pub const BASE: u64 = 0xFFFF_C800_0000_0000;
pub const SIZE: u64 = 64 << 30;

static HEAP: Mutex<Option<DomainHeap>> = Mutex::new(None);

/// Maps physically contiguous frames for each growth step.
struct ContiguousMapper;

impl PageSource for ContiguousMapper {
    fn map(&mut self, at: u64, pages: usize) -> bool {
        let Some(first) = frames::alloc_contiguous_zeroed(pages) else {
            return false;
        };
        let mapped = paging::with_kernel(|pt| {
            for i in 0..pages as u64 {
                pt.map_4k(
                    at + i * PAGE_SIZE,
                    first + i * PAGE_SIZE,
                    paging::WRITABLE | paging::NO_EXECUTE,
                )?;
            }
            Ok::<(), paging::MapError>(())
        });
        if mapped.is_err() {
            for i in 0..pages as u64 {
                let _ = paging::with_kernel(|pt| pt.unmap_4k(at + i * PAGE_SIZE));
                frames::free(first + i * PAGE_SIZE);
            }
            return false;
        }
        true
    }
}

pub fn init() {
    *HEAP.lock() = Some(DomainHeap::new(BASE, BASE + SIZE));
    rrpc::install_backend(&RREF_BACKEND);
    rrpc::proxy::install_runtime(&PROXY_RUNTIME);
}

/// What generated proxies call: a domain entry.
struct ProxyRuntime;

static PROXY_RUNTIME: ProxyRuntime = ProxyRuntime;

impl rrpc::proxy::Runtime for ProxyRuntime {
    fn current(&self) -> rrpc::Owner {
        cpu::current_owner()
    }

    fn suspended(&self, callee: rrpc::Owner, waker: &core::task::Waker) {
        if let (Some(task), Some(domain)) = (
            executor::task_id_of(waker),
            crate::domain::get((callee >> 16) as usize),
        ) {
            domain.add_waiter(task);
        }
    }

    fn enter(&self, callee: rrpc::Owner, f: &mut dyn FnMut()) -> Result<(), rrpc::RpcError> {
        crate::domain::enter(callee, f).map_err(rrpc::RpcError::from)
    }
}

/// `RRef`s live here.
struct RRefBackend;

static RREF_BACKEND: RRefBackend = RRefBackend;

impl rrpc::Backend for RRefBackend {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        alloc(layout)
    }

    unsafe fn free(&self, pointer: NonNull<u8>, layout: Layout) {
        free(pointer, layout)
    }

    fn current_owner(&self) -> rrpc::Owner {
        cpu::current_owner()
    }

    fn device_address(&self, pointer: *const u8) -> Option<u64> {
        device_address(pointer)
    }
}

/// Allocates `layout` on the shared heap.
pub fn alloc(layout: Layout) -> Option<NonNull<u8>> {
    cpu::kernel_section(|| {
        let mut heap = HEAP.lock();
        let address =
            heap.as_mut()?
                .alloc(layout.size().max(1), layout.align(), &mut ContiguousMapper)?;
        NonNull::new(address as *mut u8)
    })
}

/// Frees an allocation made by [`alloc`] with the same layout.
pub fn free(pointer: NonNull<u8>, layout: Layout) {
    cpu::kernel_section(|| {
        let mut heap = HEAP.lock();
        if let Some(heap) = heap.as_mut()
            && let Err(e) = heap.free(
                pointer.as_ptr() as u64,
                layout.size().max(1),
                layout.align(),
            )
        {
            crate::warn!("shared heap: bad free of {:p}: {e}", pointer.as_ptr());
        }
    });
}

/// The address a device uses for `pointer` (its physical address), if it
/// is in the shared heap.
pub fn device_address(pointer: *const u8) -> Option<u64> {
    let address = pointer as u64;
    if !(BASE..BASE + SIZE).contains(&address) {
        return None;
    }
    paging::translate(address).map(|(physical, _)| physical)
}

/// (bytes in use, pages mapped).
pub fn usage() -> (u64, u64) {
    HEAP.lock().as_ref().map_or((0, 0), |heap| {
        let stats = heap.stats();
        (stats.bytes_in_use as u64, stats.mapped_pages as u64)
    })
}
