//! Per-core GDT and TSS. Every core gets its own TSS whose interrupt stack
//! table gives double fault, NMI, machine check and page fault separate,
//! guarded stacks: a kernel stack overflow then lands on a good stack and is
//! reported (and, inside a domain, contained) instead of triple-faulting.

use alloc::boxed::Box;

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use crate::mem::stacks;

pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;
pub const IST_PAGE_FAULT: u8 = 4;
/// Every hardware interrupt and IPI (vectors 32 and up) runs here, never
/// on the stack it interrupted: a domain that has all but exhausted its
/// core's stack (deep recursion, about to hit the guard page) must not
/// make the interrupt's own frame overflow it. That overflow happens in
/// the delivery, before the handler could account for it, so it was taken
/// for the domain's crash and the interrupt was never acknowledged: the
/// core's timer went deaf and the core slept for good. Handlers never
/// re-enable interrupts, so they cannot nest on this stack.
pub const IST_INTERRUPTS: u8 = 5;
const IST_STACK_SIZE: u64 = 16 * 1024;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;

/// Builds and loads this core's GDT and TSS. Called once per core.
pub fn init_this_cpu() {
    let mut tss = Box::new(TaskStateSegment::new());
    for ist in [
        IST_DOUBLE_FAULT,
        IST_NMI,
        IST_MACHINE_CHECK,
        IST_PAGE_FAULT,
        IST_INTERRUPTS,
    ] {
        let stack = stacks::alloc(IST_STACK_SIZE).expect("no memory for IST stacks");
        tss.interrupt_stack_table[usize::from(ist - 1)] = VirtAddr::new(stack.top);
    }
    let tss: &'static TaskStateSegment = Box::leak(tss);

    let gdt: &'static mut GlobalDescriptorTable<8> =
        Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    debug_assert_eq!(code.0, KERNEL_CS);
    debug_assert_eq!(data.0, KERNEL_DS);
    let gdt: &'static GlobalDescriptorTable<8> = gdt;
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded, whose descriptors
    // are a flat 64-bit code segment, a data segment and our TSS.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(tss_sel);
    }
}
