//! The Dokan glue: `dokan::FileSystemHandler` for a [`Volume`]. Each callback converts
//! Dokan's arguments, calls one `Volume` method, and turns a failure into its NTSTATUS in
//! [`crate::ntstatus`]; nothing else happens here (see volume.rs for what each one does).

use dokan::{
    CreateFileInfo, DiskSpaceInfo, FileInfo, FileSystemHandler, FileTimeOperation, FillDataResult,
    FindData, OperationInfo, OperationResult, VolumeInfo, IO_SECURITY_CONTEXT,
};
use venvfs_api::FileSystem;
use widestring::{U16CStr, U16CString};
use winapi::shared::ntdef::NTSTATUS;
use winapi::um::winnt::{ACCESS_MASK, PSECURITY_DESCRIPTOR};

use crate::info::{self, FileInformation, TimeChange};
use crate::ntstatus::{self, Failure};
use crate::plan::CreateRequest;
use crate::volume::{Handle, Volume};
use crate::{path, security};

/// The handler Dokan drives: a [`Volume`] over the core.
pub struct Handler<F> {
    volume: Volume<F>,
}

impl<F: FileSystem> Handler<F> {
    pub fn new(fs: F) -> Handler<F> {
        Handler {
            volume: Volume::new(fs),
        }
    }
}

/// A Dokan path as text.
fn text(name: &U16CStr) -> Result<String, Failure> {
    path::from_utf16(name.as_slice())
}

/// The one exit of every callback: success as is, a failure logged and as its NTSTATUS.
fn done<T>(op: &'static str, name: &U16CStr, r: Result<T, Failure>) -> OperationResult<T> {
    r.map_err(|f| fail(op, &name.to_string_lossy(), &f))
}

fn fail(op: &'static str, path: &str, f: &Failure) -> NTSTATUS {
    let status: NTSTATUS = ntstatus::ntstatus(f);
    ntstatus::log_failure(op, path, f, status);
    status
}

fn offset(offset: i64) -> Result<u64, Failure> {
    u64::try_from(offset).map_err(|_| venvfs_api::Error::Invalid("negative offset").into())
}

fn time_change(op: FileTimeOperation) -> TimeChange {
    match op {
        FileTimeOperation::SetTime(t) => TimeChange::Set(t),
        // (stop/resume automatic updates for this handle: the core has no such state)
        FileTimeOperation::DontChange
        | FileTimeOperation::DisableUpdate
        | FileTimeOperation::ResumeUpdate => TimeChange::Keep,
    }
}

fn file_info(i: FileInformation) -> FileInfo {
    FileInfo {
        attributes: i.attributes,
        creation_time: i.creation_time,
        last_access_time: i.last_access_time,
        last_write_time: i.last_write_time,
        file_size: i.size,
        number_of_links: i.links,
        file_index: i.index,
    }
}

/// A name for Dokan; names the core stores hold no NUL (an empty one if one did).
fn wide(s: impl AsRef<std::ffi::OsStr>) -> U16CString {
    U16CString::from_os_str(s).unwrap_or_default()
}

impl<'c, 'h: 'c, F: FileSystem> FileSystemHandler<'c, 'h> for Handler<F> {
    type Context = Handle;

    fn create_file(
        &'h self,
        file_name: &U16CStr,
        _security_context: &IO_SECURITY_CONTEXT,
        desired_access: ACCESS_MASK,
        file_attributes: u32,
        share_access: u32,
        create_disposition: u32,
        create_options: u32,
        _info: &mut OperationInfo<'c, 'h, Self>,
    ) -> OperationResult<CreateFileInfo<Handle>> {
        let req = CreateRequest {
            desired_access,
            file_attributes,
            share_access,
            disposition: create_disposition,
            options: create_options,
        };
        let r = text(file_name).and_then(|p| self.volume.create(&p, &req));
        done("create_file", file_name, r).map(|c| CreateFileInfo {
            is_dir: c.handle.is_dir(),
            context: c.handle,
            new_file_created: c.new_file_created,
        })
    }

    fn cleanup(&'h self, _file_name: &U16CStr, info: &OperationInfo<'c, 'h, Self>, h: &'c Handle) {
        self.volume.cleanup(h, info.delete_on_close());
    }

    fn close_file(
        &'h self,
        _file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) {
        self.volume.close(h);
    }

    fn read_file(
        &'h self,
        file_name: &U16CStr,
        off: i64,
        buffer: &mut [u8],
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<u32> {
        let r = offset(off).and_then(|o| self.volume.read(h, o, buffer));
        done("read_file", file_name, r).map(|n| n as u32)
    }

    fn write_file(
        &'h self,
        file_name: &U16CStr,
        off: i64,
        buffer: &[u8],
        info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<u32> {
        let (to_eof, paging) = (info.write_to_eof(), info.paging_io());
        let r = offset(off).or_else(|e| if to_eof { Ok(0) } else { Err(e) });
        let r = r.and_then(|o| self.volume.write(h, o, buffer, to_eof, paging));
        done("write_file", file_name, r).map(|n| n as u32)
    }

    fn flush_file_buffers(
        &'h self,
        file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        done("flush_file_buffers", file_name, self.volume.flush(h))
    }

    fn get_file_information(
        &'h self,
        file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<FileInfo> {
        done(
            "get_file_information",
            file_name,
            self.volume.information(h),
        )
        .map(file_info)
    }

    fn find_files(
        &'h self,
        file_name: &U16CStr,
        fill_find_data: impl FnMut(&FindData) -> FillDataResult,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        done(
            "find_files",
            file_name,
            self.list(h, |_| true, fill_find_data),
        )
    }

    fn find_files_with_pattern(
        &'h self,
        file_name: &U16CStr,
        pattern: &U16CStr,
        fill_find_data: impl FnMut(&FindData) -> FillDataResult,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        // (the kernel's matching rule, not dokan2.dll's simplified one: see pattern.rs)
        let pattern = pattern.to_string_lossy();
        let wanted = |name: &std::ffi::OsStr| {
            name.to_str()
                .is_some_and(|name| crate::pattern::is_name_in_expression(&pattern, name, true))
        };
        done(
            "find_files_with_pattern",
            file_name,
            self.list(h, wanted, fill_find_data),
        )
    }

    fn set_file_attributes(
        &'h self,
        file_name: &U16CStr,
        file_attributes: u32,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        let r = self.volume.set_attributes(h, file_attributes);
        done("set_file_attributes", file_name, r)
    }

    fn set_file_time(
        &'h self,
        file_name: &U16CStr,
        creation_time: FileTimeOperation,
        last_access_time: FileTimeOperation,
        last_write_time: FileTimeOperation,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        let r = self.volume.set_times(
            h,
            time_change(creation_time),
            time_change(last_access_time),
            time_change(last_write_time),
        );
        done("set_file_time", file_name, r)
    }

    fn delete_file(
        &'h self,
        file_name: &U16CStr,
        info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        done(
            "delete_file",
            file_name,
            self.volume.set_delete(h, info.delete_on_close()),
        )
    }

    fn delete_directory(
        &'h self,
        file_name: &U16CStr,
        info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        let r = self.volume.set_delete(h, info.delete_on_close());
        done("delete_directory", file_name, r)
    }

    fn move_file(
        &'h self,
        file_name: &U16CStr,
        new_file_name: &U16CStr,
        replace_if_existing: bool,
        _info: &OperationInfo<'c, 'h, Self>,
        _h: &'c Handle,
    ) -> OperationResult<()> {
        let r = text(file_name).and_then(|from| {
            let to = text(new_file_name)?;
            self.volume.rename(&from, &to, replace_if_existing)
        });
        done("move_file", file_name, r)
    }

    fn set_end_of_file(
        &'h self,
        file_name: &U16CStr,
        off: i64,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        let r = offset(off).and_then(|size| self.volume.set_size(h, size));
        done("set_end_of_file", file_name, r)
    }

    fn set_allocation_size(
        &'h self,
        file_name: &U16CStr,
        alloc_size: i64,
        _info: &OperationInfo<'c, 'h, Self>,
        h: &'c Handle,
    ) -> OperationResult<()> {
        let r = offset(alloc_size).and_then(|size| self.volume.set_allocation(h, size));
        done("set_allocation_size", file_name, r)
    }

    fn get_disk_free_space(
        &'h self,
        _info: &OperationInfo<'c, 'h, Self>,
    ) -> OperationResult<DiskSpaceInfo> {
        let space = self.volume.disk_space();
        let space = space.map_err(|f| fail("get_disk_free_space", "\\", &f));
        space.map(
            |(byte_count, free_byte_count, available_byte_count)| DiskSpaceInfo {
                byte_count,
                free_byte_count,
                available_byte_count,
            },
        )
    }

    fn get_volume_information(
        &'h self,
        _info: &OperationInfo<'c, 'h, Self>,
    ) -> OperationResult<VolumeInfo> {
        Ok(VolumeInfo {
            name: wide(info::VOLUME_NAME),
            serial_number: info::VOLUME_SERIAL,
            max_component_length: info::MAX_COMPONENT_LENGTH,
            fs_flags: info::FILESYSTEM_FLAGS,
            fs_name: wide(info::FILESYSTEM_NAME),
        })
    }

    fn mounted(
        &'h self,
        mount_point: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
    ) -> OperationResult<()> {
        tracing::info!("mounted at {}", mount_point.to_string_lossy());
        Ok(())
    }

    fn unmounted(&'h self, _info: &OperationInfo<'c, 'h, Self>) -> OperationResult<()> {
        tracing::info!("unmounted");
        Ok(())
    }

    fn get_file_security(
        &'h self,
        _file_name: &U16CStr,
        _security_information: u32,
        security_descriptor: PSECURITY_DESCRIPTOR,
        buffer_length: u32,
        _info: &OperationInfo<'c, 'h, Self>,
        _h: &'c Handle,
    ) -> OperationResult<u32> {
        let sd = security::descriptor();
        if sd.is_empty() {
            return Err(ntstatus::STATUS_NOT_IMPLEMENTED);
        }
        if sd.len() <= buffer_length as usize {
            // SAFETY: Dokan's buffer holds `buffer_length` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(sd.as_ptr(), security_descriptor.cast(), sd.len())
            };
        }
        // (a length above `buffer_length` makes Dokan answer STATUS_BUFFER_OVERFLOW)
        Ok(sd.len() as u32)
    }
}

impl<F: FileSystem> Handler<F> {
    /// A listing, each entry handed to Dokan's `fill_find_data` until its buffer is full.
    fn list(
        &self,
        h: &Handle,
        wanted: impl FnMut(&std::ffi::OsStr) -> bool,
        mut fill: impl FnMut(&FindData) -> FillDataResult,
    ) -> Result<(), Failure> {
        let mut full = false;
        self.volume.list(h, wanted, |found| {
            let Ok(file_name) = U16CString::from_os_str(&found.name) else {
                return true;
            };
            let i = found.info;
            let data = FindData {
                attributes: i.attributes,
                creation_time: i.creation_time,
                last_access_time: i.last_access_time,
                last_write_time: i.last_write_time,
                file_size: i.size,
                file_name,
            };
            match fill(&data) {
                Ok(()) => true,
                Err(dokan::FillDataError::BufferFull) => {
                    full = true;
                    false
                }
                // (a name longer than MAX_PATH cannot be listed this way; skip it)
                Err(dokan::FillDataError::NameTooLong) => true,
            }
        })?;
        if full {
            tracing::debug!("directory listing stopped: Dokan's buffer is full");
        }
        Ok(())
    }
}
