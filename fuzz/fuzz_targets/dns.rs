//! Any byte string fed to the DNS parser gives a message or an error, never a panic,
//! and a parsed message never claims more answers than the bytes could hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_fuzz::dns;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = dns::parse(data) {
        // Every answer record takes at least 11 bytes after the 12-byte header.
        assert!(message.rrtypes.len() * 11 <= data.len().saturating_sub(12));
        assert!(message.query.len() <= 255 * 4);
    }
});
