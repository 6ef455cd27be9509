#![no_std]
#![no_main]
#![forbid(unsafe_code)]
domain_sdk::image!(domain_kvstore::init);
