//! RECORD files (CSV), as read from wheels and from installed venvs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use venvfs::install::record::{parse_record, write_record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut rows) = parse_record(text) {
        // what venvfs writes (sorted), it reads back the same
        let written = write_record(&rows);
        let again = parse_record(&written).expect("a written RECORD parses");
        rows.sort();
        assert_eq!(rows, again);
    }
});
