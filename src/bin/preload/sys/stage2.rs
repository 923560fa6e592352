//! Stage 2's memory: the hand-off mapping the stub reads, the stub's own page (a memfd mapped
//! PROT_READ|PROT_EXEC, never writable), whether the vDSO can be mapped again, and the jump
//! into the stub. The op list itself is `preload::plan::finish`, built by `finish.rs`.

use core::ffi::c_void;
use core::mem::size_of;

use preload::plan::finish::{self, Header, Op, OpList};
use preload::plan::reserve::{Range, find_in_maps};
use preload::{PAGE_SIZE, page_align};
use rustix::fs::MemfdFlags;
use rustix::io::Errno;
use rustix::mm::{MapFlags, MremapFlags, ProtFlags};
use rustix::process::PrctlMmMap;

use super::proc::{MAPS_BUFFER, read_maps};
use crate::stage2;

/// The hand-off: the first mapping the preloader makes, top-down, so that it lands right below
/// whatever the kernel mapped last and tells where that is ([`Vdso::locate`]). Page 0 holds the
/// header, the two PR_SET_MM_MAP structures, the capability sets and the failure message; page 1 the
/// ops; the rest the stack image (16 KiB before it grows). The stub copies the first two pages,
/// the head, onto the stack ([`Head`]) and runs from that copy.
pub struct Handoff {
    base: u64,
    len: u64,
    probe_end: u64,
}

const MAPS_AT: usize = 128;
const CAPS_AT: usize = 384;
const MESSAGE_AT: usize = 512;
pub const MESSAGE_LEN: usize = 1024;
const OPS_AT: usize = PAGE_SIZE as usize;
const OPS: usize = PAGE_SIZE as usize / size_of::<Op>();
const IMAGE_AT: usize = 2 * PAGE_SIZE as usize;
const INITIAL_LEN: u64 = 6 * PAGE_SIZE;
/// The head: everything before the image.
const HEAD_LEN: u64 = IMAGE_AT as u64;

/// The parts of the hand-off, borrowed apart.
pub struct Parts<'h> {
    pub header: &'h mut Header,
    /// With exe_fd, then without.
    pub maps: &'h mut [PrctlMmMap; 2],
    /// A capset header (version, pid) and three data words for each of the two halves.
    pub caps: &'h mut [u32; 8],
    pub message: &'h mut [u8; MESSAGE_LEN],
    pub ops: OpList<'h>,
    pub image: &'h mut [u8],
}

impl Handoff {
    pub fn map() -> Result<Self, Errno> {
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                INITIAL_LEN as usize,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }? as u64;
        Ok(Self { base, len: INITIAL_LEN, probe_end: base + INITIAL_LEN })
    }

    /// Where the first top-down mapping ended.
    pub fn probe_end(&self) -> u64 {
        self.probe_end
    }

    pub fn range(&self) -> (u64, u64) {
        (self.base, self.base + self.len)
    }

    /// Room for an image of `image_len` bytes: a larger one moves the hand-off (mremap keeps
    /// the contents) wherever mmap finds room, which is below the vDSO and so out of the way of
    /// what the stub maps at the top of the mmap area.
    pub fn fit(&mut self, image_len: u64) -> Result<(), Errno> {
        let len = page_align(IMAGE_AT as u64 + image_len);
        if len <= self.len {
            return Ok(());
        }
        // SAFETY: the hand-off's own mapping, which nothing borrows now (`&mut self`).
        let moved = unsafe {
            rustix::mm::mremap(self.base as *mut c_void, self.len as usize, len as usize, MremapFlags::MAYMOVE)
        }?;
        self.base = moved as u64;
        self.len = len;
        Ok(())
    }

    pub fn parts(&mut self) -> Parts<'_> {
        let base = self.base as *mut u8;
        // SAFETY: disjoint, suitably aligned parts of the hand-off's len >= IMAGE_AT bytes,
        // mapped read-write and zero-filled or as last written; `&mut self` is the only way in.
        unsafe {
            Parts {
                header: &mut *base.cast::<Header>(),
                maps: &mut *base.add(MAPS_AT).cast::<[PrctlMmMap; 2]>(),
                caps: &mut *base.add(CAPS_AT).cast::<[u32; 8]>(),
                message: &mut *base.add(MESSAGE_AT).cast::<[u8; MESSAGE_LEN]>(),
                ops: OpList::new(core::slice::from_raw_parts_mut(base.add(OPS_AT).cast::<Op>(), OPS)),
                image: core::slice::from_raw_parts_mut(base.add(IMAGE_AT), self.len as usize - IMAGE_AT),
            }
        }
    }

    /// The head as the stub sees it: copied below the program's stack pointer `sp`.
    pub fn head_below(&self, sp: u64) -> Head {
        Head { at: finish::scratch_below(sp, HEAD_LEN) }
    }

    pub fn addr_of_image(&self) -> u64 {
        self.base + IMAGE_AT as u64
    }

    pub fn header_ptr(&self) -> *const Header {
        self.base as *const Header
    }
}

/// Where the parts of the hand-off's head are in the stub's copy of it, for the header and the
/// ops that point into it.
#[derive(Clone, Copy)]
pub struct Head {
    at: u64,
}

impl Head {
    pub fn at(self) -> u64 {
        self.at
    }

    pub fn len(self) -> u64 {
        HEAD_LEN
    }

    pub fn maps(self) -> u64 {
        self.at + MAPS_AT as u64
    }

    pub fn caps(self) -> u64 {
        self.at + CAPS_AT as u64
    }

    pub fn message(self) -> u64 {
        self.at + MESSAGE_AT as u64
    }

    pub fn ops(self) -> u64 {
        self.at + OPS_AT as u64
    }
}

/// Copy the stub into a memfd and map it PROT_READ|PROT_EXEC at `at` (MAP_FIXED_NOREPLACE):
/// executable from the start and never writable, which PR_SET_MDWE allows. Returns its address.
pub fn install_stub(at: u64) -> Result<u64, Errno> {
    let code = stage2::code();
    let memfd = match rustix::fs::memfd_create(c"preload", MemfdFlags::CLOEXEC | MemfdFlags::EXEC) {
        // Before Linux 6.3 there is no MFD_EXEC, and every memfd is executable.
        Err(Errno::INVAL) => rustix::fs::memfd_create(c"preload", MemfdFlags::CLOEXEC)?,
        other => other?,
    };
    if rustix::io::write(&memfd, code)? != code.len() {
        return Err(Errno::IO);
    }
    let map = |flags| {
        // SAFETY: one page at an address nothing else holds (MAP_FIXED_NOREPLACE refuses
        // otherwise), or, with MAP_FIXED, over the stub page a preload that ran this one left.
        unsafe {
            rustix::mm::mmap(
                at as *mut c_void,
                PAGE_SIZE as usize,
                ProtFlags::READ | ProtFlags::EXEC,
                flags | MapFlags::PRIVATE | MapFlags::POPULATE,
                &memfd,
                0,
            )
        }
    };
    let stub = match map(MapFlags::FIXED_NOREPLACE) {
        Err(Errno::EXIST) if left_by_a_preload(at) => map(MapFlags::FIXED)?,
        other => other?,
    };
    Ok(stub as u64)
}

/// Whether the page at `at` is the stub page of a preload that ran this one (`preload preload
/// PROGRAM`): the one page of the memfd named `preload`. Out of line: read only then.
#[cold]
#[inline(never)]
fn left_by_a_preload(at: u64) -> bool {
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    let page = Range::new(at, at + PAGE_SIZE);
    find_in_maps(&maps[..len], &page) == Some((page, &b"/memfd:preload (deleted)"[..]))
}

/// Whether `arch_prctl(ARCH_MAP_VDSO_64)` exists (CONFIG_CHECKPOINT_RESTORE): with a vDSO
/// mapped it answers EEXIST, without the option EINVAL.
pub fn can_map_vdso() -> bool {
    let ret: isize;
    // SAFETY: arch_prctl with a vDSO already mapped maps nothing (EEXIST).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") finish::SYS_ARCH_PRCTL as isize => ret,
            in("rdi") finish::ARCH_MAP_VDSO_64,
            in("rsi") 0u64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret == -(Errno::EXIST.raw_os_error() as isize)
}

/// Enter the stub at `stub` with the hand-off's header; the ops and the tail do the rest.
///
/// # Safety
/// `stub` holds the stub's code, mapped executable; the hand-off is complete, and everything
/// its ops point to stays mapped until they unmap it; nothing of the caller's stack is used
/// again.
pub unsafe fn enter(stub: u64, handoff: Handoff) -> ! {
    // SAFETY: the caller's contract.
    unsafe { stage2::run(stub as *const u8, handoff.header_ptr()) }
}
