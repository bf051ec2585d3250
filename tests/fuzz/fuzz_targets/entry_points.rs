//! entry_points.txt (an INI dialect), as read from wheels.
#![no_main]

use libfuzzer_sys::fuzz_target;
use venvfs::install::entry_points::parse_entry_points;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_entry_points(text);
    }
});
