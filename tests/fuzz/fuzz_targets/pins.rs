//! pylock.toml and requirements files: either pins or an error naming the file, never a
//! panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use venvfs::interpreter::{Interpreter, Markers};
use venvfs::tags::TagFacts;

fn env() -> pep508_rs::MarkerEnvironment {
    let s = |v: &str| v.to_owned();
    Interpreter {
        key: String::new(),
        markers: Markers {
            implementation_name: s("cpython"),
            implementation_version: s("3.11.7"),
            os_name: s("posix"),
            platform_machine: s("x86_64"),
            platform_python_implementation: s("CPython"),
            platform_release: s("6.18.0"),
            platform_system: s("Linux"),
            platform_version: s("#1 SMP"),
            python_full_version: s("3.11.7"),
            python_version: s("3.11"),
            sys_platform: s("linux"),
        },
        tag_facts: TagFacts {
            implementation: s("cpython"),
            version: (3, 11),
            ext_suffix: s(".cpython-311-x86_64-linux-gnu.so"),
            py_debug: false,
            gil_disabled: false,
            platform: s("linux-x86_64"),
            is_64bit: true,
            glibc: Some((2, 36)),
            musl: None,
            mac_version: None,
            machine: s("x86_64"),
        },
        bytecode: None,
    }
    .marker_env()
    .expect("a valid environment")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = env();
    for (parse, path) in [
        (
            venvfs::pins::pylock::parse as fn(_, _, _) -> _,
            "/nonexistent/pylock.toml",
        ),
        (venvfs::pins::requirements::parse, "/nonexistent/req.txt"),
    ] {
        match parse(text, Path::new(path), &env) {
            Ok(file) => {
                for pin in &file.pins {
                    assert!(!pin.name.is_empty() && !pin.version.is_empty());
                }
            }
            Err(e) => assert!(e.to_string().starts_with(path)),
        }
    }
});
