//! The name of the whiteout that hides a layer entry in the venv directory, for the
//! commands that write whiteouts into an unmounted venv (which build on every platform,
//! unlike the upper layer of a mount).

use std::ffi::{OsStr, OsString};

/// `.wh.NAME`: the whiteout that hides the layer entry NAME of the same directory.
pub fn whiteout_name(name: &OsStr) -> OsString {
    let mut n = OsString::from(".wh.");
    n.push(name);
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn whiteout_name() {
        assert_eq!(super::whiteout_name("mod.py".as_ref()), ".wh.mod.py");
    }
}
