//! The `attack-impersonate` domain as a loadable image.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

domain_sdk::image!(domain_attack_impersonate::init);
