//! Frames and HPACK blocks after a valid connection preface: any bytes yield well-formed
//! records or counted failures, never a panic (nor runaway HPACK table memory).
#![no_main]

use libfuzzer_sys::fuzz_target;
// `l7` by name at the crate root: support/segments.rs reaches it as `crate::l7`.
use sightline_fuzz::l7::{self, L7Protocol};

#[path = "support/segments.rs"]
mod segments;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    segments::run(L7Protocol::Http2, PREFACE, data);
});
