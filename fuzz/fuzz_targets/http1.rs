//! Any conversation fed to the HTTP/1.x parser (split, replayed, truncated) yields
//! well-formed records or counted failures, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
// `l7` by name at the crate root: support/segments.rs reaches it as `crate::l7`.
use sightline_fuzz::l7::{self, L7Protocol};

#[path = "support/segments.rs"]
mod segments;

fuzz_target!(|data: &[u8]| {
    segments::run(L7Protocol::Http1, b"", data);
});
