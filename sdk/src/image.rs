//! What a separately built domain image needs besides its code: the entry
//! symbol the kernel's loader calls, a global allocator that allocates on
//! the domain's private heap, and a panic handler that crashes the domain
//! (contained). [`image!`](crate::image!) emits them into the image's
//! binary crate, which stays `#![forbid(unsafe_code)]`: the unsafe parts are
//! here, in the trusted SDK.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};

use crate::{Entry, Exports, Kernel};

/// The name of the entry symbol; the image is linked with it as the ELF
/// entry point, where the loader finds it.
pub const ENTRY_SYMBOL: &str = "domain_entry";

/// Runs in the new domain before its `init`: connects this image's copies
/// of the SDK and `rrpc` to the kernel.
pub fn start(kernel: &'static dyn Kernel) {
    crate::install(kernel);
    rrpc::registry::install_remote(kernel.rrpc_registry());
    rrpc::proxy::install_runtime(kernel.rrpc_runtime());
}

/// The entry a loaded image runs: installs, then `init`.
pub fn enter(kernel: &'static dyn Kernel, init: Entry) -> Result<Exports, alloc::string::String> {
    start(kernel);
    init(kernel)
}

/// The image's global allocator: the domain's private heap, through the
/// kernel.
pub struct Allocator;

// SAFETY: forwards to the kernel's allocator for the running domain, which
// upholds `GlobalAlloc`'s contract (fresh, aligned memory or null; frees of
// exactly what it returned).
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with our caller's obligations.
        unsafe { crate::kernel().alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { crate::kernel().dealloc(pointer, layout) }
    }
}

/// The image's panic handler: the domain crashes (its callers get
/// `RpcError::DomainCrashed`), nothing else does.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::kernel().crash(&format_args!("{info}"))
}

/// Makes a domain crate's binary target a loadable image:
///
/// ```ignore
/// // src/main.rs of domain crate `hello`
/// #![no_std]
/// #![no_main]
/// #![forbid(unsafe_code)]
/// domain_sdk::image!(hello::init);
/// ```
///
/// It defines the entry symbol ([`ENTRY_SYMBOL`]), which installs the
/// kernel's services and calls `init`, the global allocator and the panic
/// handler.
#[macro_export]
macro_rules! image {
    ($init:path) => {
        #[unsafe(no_mangle)]
        pub fn domain_entry(
            kernel: &'static dyn $crate::Kernel,
        ) -> ::core::result::Result<$crate::Exports, $crate::alloc_reexport::string::String> {
            $crate::image::enter(kernel, $init)
        }

        #[global_allocator]
        static DOMAIN_ALLOCATOR: $crate::image::Allocator = $crate::image::Allocator;

        #[panic_handler]
        fn domain_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::image::panic(info)
        }
    };
}
