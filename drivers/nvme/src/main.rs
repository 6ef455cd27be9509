//! The NVMe driver as a loadable image.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

domain_sdk::image!(driver_nvme::init);
