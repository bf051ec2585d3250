//! The security descriptor every file of the volume shows (`GetFileSecurity`).
//!
//! venvfs keeps no Windows ACLs: the upper layer holds plain files and the layers are
//! read-only caches. So every file answers with one fixed descriptor that lets everyone do
//! everything (the core's own checks, read-only files and share modes, still apply), owned
//! by the built-in Administrators group with no system ACL. Tools that read ACLs (Explorer's
//! Security tab, `icacls`, Python's `os.access` does not) see something sensible rather than
//! an error.

/// The descriptor in SDDL: owner and group BUILTIN\Administrators; a protected DACL with
/// one ACE granting Everyone full access, inherited by files and directories.
pub const SDDL: &str = "O:BAG:BAD:P(A;OICI;FA;;;WD)";

/// The descriptor as Windows stores it (self-relative), made once from [`SDDL`].
#[cfg(windows)]
pub fn descriptor() -> &'static [u8] {
    use std::sync::OnceLock;
    static DESCRIPTOR: OnceLock<Vec<u8>> = OnceLock::new();
    DESCRIPTOR.get_or_init(|| from_sddl(SDDL).unwrap_or_default())
}

#[cfg(windows)]
fn from_sddl(sddl: &str) -> Option<Vec<u8>> {
    use std::ptr;

    use winapi::shared::sddl::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
    };
    use winapi::um::winbase::LocalFree;

    let wide: Vec<u16> = sddl.encode_utf16().chain(Some(0)).collect();
    let mut sd = ptr::null_mut();
    let mut len = 0u32;
    // SAFETY: `wide` is NUL-terminated; on success Windows allocates `len` bytes at `sd`
    // (LocalAlloc), which are copied out and freed here.
    unsafe {
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            wide.as_ptr(),
            SDDL_REVISION_1 as u32,
            &mut sd,
            &mut len,
        ) == 0
        {
            return None;
        }
        let bytes = std::slice::from_raw_parts(sd as *const u8, len as usize).to_vec();
        LocalFree(sd);
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sddl_grants_everyone_full_access() {
        assert!(super::SDDL.contains("(A;OICI;FA;;;WD)"));
    }

    /// Windows (or Wine) parses the SDDL into a self-relative descriptor.
    #[cfg(windows)]
    #[test]
    fn descriptor_is_built() {
        let sd = super::descriptor();
        assert!(sd.len() > 20, "{} bytes", sd.len());
        assert_eq!(sd[0], 1, "revision 1");
    }
}
