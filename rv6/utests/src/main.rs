//! The `utests` program as a loadable image.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

domain_sdk::image!(rv6_utests::init);
