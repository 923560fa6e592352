//! Mapping an ELF image as `load_elf_binary` and `load_elf_interp` do.

use core::ffi::CStr;

use goblin::elf64::program_header::{PF_R, PF_W, PF_X};
use preload::cstr;
use preload::elf::symbols::Class;
use preload::elf::{self, Image};
use preload::plan::finish::{Vdso, back_to_back, item_start, vdso_block_start};
use preload::plan::load::{Extent, Owned, Placement, Segment, foreign_mapping, start_brk};
use preload::plan::reserve::Range;
use preload::report::refusal::Refusal;
use preload::{PAGE_SIZE, page_align};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::mm::ProtFlags;

use crate::exec::{Request, Resolved};
use crate::input::source::{self, File, Spill};
use crate::plan::{Plan, Top};
use crate::report::{Error, Printer};
use crate::sys::mem::{self, Place};
use crate::sys::proc::{self, MAPS_BUFFER, read_maps};
use crate::{reserve, wine};

/// Validate `file` as an ELF executable, with its program headers in place in its head or, for
/// a larger table, read into `spill`.
pub fn inspect<'p>(file: &'p File, spill: &'p mut Spill) -> Result<Image<'p>, &'static str> {
    let header = elf::header(file.head())?;
    let (offset, len) = elf::phdr_table(&header)?;
    check_table_for_kernel(len)?;
    let table = file.bytes(offset, len, spill).map_err(|_| "program headers beyond end of file")?;
    let phdrs = elf::program_headers(table);
    if file.held_in_memory() {
        elf::check_segments_in_file(phdrs, file.size)?;
    }
    elf::validate(&header, phdrs, file.size)
}

/// Kernels before 6.17 read one page of program headers, of either class: the release is asked
/// for only for a larger table of `len` bytes.
pub fn check_table_for_kernel(len: usize) -> Result<(), &'static str> {
    if len > elf::PAGE_PHDR_TABLE {
        elf::check_phdr_table_for_kernel(len, rustix::system::uname().release().to_bytes())?;
    }
    Ok(())
}

/// The mmap protection for a segment's PF_R/PF_W/PF_X.
pub fn prot(flags: u32) -> ProtFlags {
    let mut prot = ProtFlags::empty();
    if flags & PF_R != 0 {
        prot |= ProtFlags::READ;
    }
    if flags & PF_W != 0 {
        prot |= ProtFlags::WRITE;
    }
    if flags & PF_X != 0 {
        prot |= ProtFlags::EXEC;
    }
    prot
}

/// Map every PT_LOAD of `image`; returns the load bias. Every mapping made is added to `owned`.
///
/// The first segment is mapped with the length of the whole image, which reserves the span,
/// and everything past its own pages is unmapped again: the holes between segments stay
/// unmapped, as with the kernel. The later segments then go to their places as with MAP_FIXED,
/// but only over what this launch mapped itself: over anything else (the preloader's own pages,
/// the stack, the vDSO, a reservation) the result is EEXIST.
pub fn map(file: &File, image: &Image, extent: &Extent, placement: Placement, owned: &mut Owned) -> Result<u64, Errno> {
    let total = page_align(extent.total_size);
    // Copied segments get their bytes after all are mapped, in file order (copy_in_file_order):
    // it matters for a sealed program only (a streamed one is read from its memfd in any order).
    let deferred = cfg!(feature = "sealed") && file.copy_segments() && spans_disjoint(image);
    // Without any PT_LOAD the kernel's load bias stays 0 (it is set at the first one).
    let mut bias = 0;
    // At a known bias, back-to-back segments are each mapped where nothing is: the kernel's
    // result without the reservation and its unmap.
    let tight = matches!(placement, Placement::Bias(_)) && back_to_back(image.phdrs, extent.total_size);
    for (index, ph) in image.loads().enumerate() {
        let seg = Segment::of(ph);
        match (placement, index) {
            (Placement::Bias(_) | Placement::Anywhere { .. }, 0) => {
                let place = match placement {
                    Placement::Anywhere { align } if align > PAGE_SIZE => {
                        Place::Exactly(mem::aligned_hole(total, align)?)
                    }
                    Placement::Anywhere { .. } => Place::Anywhere,
                    _ => Place::Exactly(placement.planned_bias().unwrap_or(0).wrapping_add(seg.start)),
                };
                // A segment without file bytes maps no file, as in the kernel (its p_offset may be
                // anything): the span is then reserved with anonymous memory.
                let len = if tight { seg.file_len } else { total };
                let mapped = match seg.file_len {
                    0 => mem::map_anonymous(place, len, ProtFlags::empty(), true)?,
                    _ => map_segment(file, place, len, &seg, deferred)?,
                };
                bias = mapped.wrapping_sub(seg.start);
                if len > seg.file_len {
                    // SAFETY: the unused tail of the reservation just made, which nothing refers to.
                    unsafe { mem::unmap(mapped + seg.file_len, len - seg.file_len) }?;
                }
                owned.push(mapped, seg.file_len);
            }
            _ => {
                let addr = bias.wrapping_add(seg.start);
                place(addr, seg.file_len, owned, |over| match over {
                    false => map_segment(file, Place::Exactly(addr), seg.file_len, &seg, deferred),
                    // SAFETY: `place` asks for this only over this launch's own mappings.
                    true => unsafe { map_segment_over(file, addr, seg.file_len, &seg, deferred) },
                })?;
            }
        }
        if !deferred {
            zero_tail(&seg, bias);
        }
        fill_bss(&seg, bias, owned)?;
    }
    if deferred {
        copy_in_file_order(file, image, bias)?;
    }
    Ok(bias)
}

/// Whether no two PT_LOADs share a page (file pages or bss): then the order in which their
/// bytes are copied makes no difference to the result.
fn spans_disjoint(image: &Image) -> bool {
    let span = |ph| {
        let seg = Segment::of(ph);
        (seg.start, seg.anon.map_or(seg.start + seg.file_len, |(_, end)| end))
    };
    for (index, a) in image.loads().enumerate() {
        let (a_start, a_end) = span(a);
        for b in image.loads().skip(index + 1) {
            let (b_start, b_end) = span(b);
            if a_end > b_start && b_end > a_start {
                return false;
            }
        }
    }
    true
}

/// What `copy_in_file_order` copies at a time: 8 MiB, whole LZ4 chunks of a sealed program.
const COPY_RUN: u64 = 8 << 20;

/// Copy the bytes of every segment that `map_segment` mapped without them, in file order
/// whatever the order of the PT_LOADs (a sealed program is decoded from one stream, and a zlib
/// body inflates again from its start for a read behind its window), then give each segment
/// its protection.
fn copy_in_file_order(file: &File, image: &Image, bias: u64) -> Result<(), Errno> {
    // Each step takes the next segment by (offset, index): a handful of PT_LOADs, no sorting.
    let mut last = None;
    loop {
        let mut next = None;
        for (index, ph) in image.loads().enumerate() {
            let key = (ph.p_offset, index);
            if last.is_none_or(|last| key > last) && next.is_none_or(|(next, _)| key < next) {
                next = Some((key, ph));
            }
        }
        let Some((key, ph)) = next else { break };
        last = Some(key);
        let seg = Segment::of(ph);
        let (addr, bytes) = (bias + seg.start, seg.file_len.min(file.size.saturating_sub(seg.offset)));
        // Huge pages for large segments where the kernel gives them for the asking (THP
        // "madvise"): far fewer faults while the bytes go in. Only a hint.
        mem::advise_huge_pages(addr, bytes);
        // In runs that end at multiples of COPY_RUN in the file: before each, what lies before
        // it is copied (the segments are taken in file order), so a sealed program's body
        // behind it is released as the copy goes.
        let mut copied = 0;
        while copied < bytes {
            let offset = seg.offset + copied;
            #[cfg(feature = "sealed")]
            file.done_before(offset);
            let run = (COPY_RUN - offset % COPY_RUN).min(bytes - copied);
            // SAFETY: `run` bytes of the first `bytes` <= file_len bytes of the segment's
            // read-write mapping, made by map_segment; no two segments share a page
            // (spans_disjoint).
            file.read_exact_at(offset, unsafe { mem::bytes_mut(addr + copied, run) })?;
            copied += run;
        }
    }
    for ph in image.loads() {
        let seg = Segment::of(ph);
        if seg.file_len > 0 {
            // SAFETY: the segment's own pages, which hold nothing else.
            unsafe { mem::protect(bias + seg.start, seg.file_len, prot(seg.flags)) }?;
        }
        zero_tail(&seg, bias);
    }
    Ok(())
}

/// Map `len` bytes at `addr` with `map`: first where nothing is mapped (`map(false)`), then, if
/// something is in the way and all of it is `owned`, over it (`map(true)`), as the kernel's
/// MAP_FIXED would; otherwise EEXIST.
fn place(addr: u64, len: u64, owned: &mut Owned, map: impl Fn(bool) -> Result<u64, Errno>) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    match map(false) {
        Err(Errno::EXIST) if !held_by_others(Range::new(addr, addr.saturating_add(len)), owned) => map(true)?,
        result => result?,
    };
    owned.push(addr, len);
    Ok(())
}

/// Whether anything not `owned` is mapped in `target` (also when /proc/self/maps cannot be read
/// whole). Out of line: its buffer is needed only for overlapping segments.
#[cold]
#[inline(never)]
fn held_by_others(target: Range, owned: &Owned) -> bool {
    let mut maps = [0u8; MAPS_BUFFER];
    let len = read_maps(&mut maps);
    len == 0 || len == maps.len() || foreign_mapping(&maps[..len], target, owned.as_slice()).is_some()
}

/// One segment's file pages at `place`: mapped from the file, or copied for a program that is
/// not a plain file (`deferred`: copied later, by copy_in_file_order).
fn map_segment(file: &File, place: Place, len: u64, seg: &Segment, deferred: bool) -> Result<u64, Errno> {
    match file.copy_segments() {
        false => mem::map_file(place, len, prot(seg.flags), file.fd.as_fd(), seg.offset),
        true => {
            let mapped = mem::map_anonymous(place, len, ProtFlags::READ | ProtFlags::WRITE, false)?;
            if !deferred {
                // SAFETY: the fresh mapping just made, which nothing else refers to.
                unsafe { fill_copy(file, mapped, seg) }?;
            }
            Ok(mapped)
        }
    }
}

/// `map_segment` over this launch's own mappings at `addr`.
///
/// # Safety
/// `[addr, addr + len)` holds nothing but mappings this launch made for the program.
unsafe fn map_segment_over(file: &File, addr: u64, len: u64, seg: &Segment, deferred: bool) -> Result<u64, Errno> {
    match file.copy_segments() {
        // SAFETY: the caller's contract.
        false => unsafe { mem::map_file_over(addr, len, prot(seg.flags), file.fd.as_fd(), seg.offset) },
        // SAFETY: the caller's contract; then the fresh mapping, which nothing else refers to.
        true => unsafe {
            let mapped = mem::map_anonymous_over(addr, len, ProtFlags::READ | ProtFlags::WRITE)?;
            if !deferred {
                fill_copy(file, mapped, seg)?;
            }
            Ok(mapped)
        },
    }
}

/// For a program that is not a plain file: read the segment's file pages into the read-write
/// anonymous pages at `mapped` (up to the end of the file, as a file mapping shows them), then
/// give them the segment's own protection. Nothing is writable and executable at once unless
/// the segment itself asks for it.
///
/// # Safety
/// `seg.file_len` bytes at `mapped` are a read-write mapping that nothing else refers to.
unsafe fn fill_copy(file: &File, mapped: u64, seg: &Segment) -> Result<(), Errno> {
    let bytes = seg.file_len.min(file.size.saturating_sub(seg.offset));
    // SAFETY: the first `bytes` <= file_len bytes of the caller's mapping.
    file.read_exact_at(seg.offset, unsafe { mem::bytes_mut(mapped, bytes) })?;
    // SAFETY: the segment's own pages, which hold nothing else.
    unsafe { mem::protect(mapped, seg.file_len, prot(seg.flags)) }
}

/// Zero the rest of a writable segment's last file page, once its bytes are in.
fn zero_tail(seg: &Segment, bias: u64) {
    if let Some((start, end)) = seg.zero {
        // SAFETY: the rest of the segment's last file page, mapped writable.
        unsafe { mem::bytes_mut(bias + start, end - start) }.fill(0);
    }
}

fn fill_bss(seg: &Segment, bias: u64, owned: &mut Owned) -> Result<(), Errno> {
    if let Some((start, end)) = seg.anon {
        let exec = if seg.flags & PF_X != 0 { ProtFlags::EXEC } else { ProtFlags::empty() };
        let (addr, len, prot) = (bias + start, end - start, ProtFlags::READ | ProtFlags::WRITE | exec);
        place(addr, len, owned, |over| match over {
            false => mem::map_anonymous(Place::Exactly(addr), len, prot, false),
            // SAFETY: `place` asks for this only over this launch's own mappings.
            true => unsafe { mem::map_anonymous_over(addr, len, prot) },
        })?;
    }
    Ok(())
}

/// The second step, inspect: the program and its interpreter, validated.
pub struct Inspected<'b> {
    pub image: Image<'b>,
    pub extent: Extent,
    pub interpreter: Option<Interpreter<'b>>,
}

/// An interpreter named by PT_INTERP (or --interp), open and validated.
pub struct Interpreter<'b> {
    pub path: &'b [u8],
    pub file: &'b File,
    pub image: Image<'b>,
}

/// Storage the inspected images refer to until the jump.
pub struct Storage<'b> {
    pub phdrs: &'b mut Spill,
    /// PT_INTERP when it is not in the program's head.
    pub interp_path: &'b mut Spill,
    pub interp_phdrs: &'b mut Spill,
    pub interp_file: &'b mut Option<File>,
}

/// Validate the program, then its interpreter: the one PT_INTERP names, or `chosen` (--interp)
/// in its place.
pub fn inspect_all<'b>(
    resolved: &Resolved<'b>,
    chosen: Option<&'static CStr>,
    storage: Storage<'b>,
) -> Result<Inspected<'b>, Error<'b>> {
    inspect_all_with(resolved, chosen, storage, inspect, inspect)
}

/// [`inspect_all`] with the validation of each file given: `program`'s, then `interpreter`'s
/// (an i386 program's widen their 32-bit headers, each into a buffer of its own).
pub fn inspect_all_with<'b>(
    resolved: &Resolved<'b>,
    chosen: Option<&'static CStr>,
    storage: Storage<'b>,
    program: impl FnOnce(&'b File, &'b mut Spill) -> Result<Image<'b>, &'static str>,
    interpreter: impl FnOnce(&'b File, &'b mut Spill) -> Result<Image<'b>, &'static str>,
) -> Result<Inspected<'b>, Error<'b>> {
    // The work is compiled once, the validations passed as `dyn`: each is called at most once.
    let (mut program, mut interpreter) = (Some(program), Some(interpreter));
    let mut program = |file, spill| program.take().map(|program| program(file, spill));
    let mut interpreter = |file, spill| interpreter.take().map(|interpreter| interpreter(file, spill));
    inspect_files(resolved, chosen, storage, &mut program, &mut interpreter)
}

/// A validation of [`inspect_all_with`]; `None` if called a second time.
type Validation<'v, 'b> = dyn FnMut(&'b File, &'b mut Spill) -> Option<Result<Image<'b>, &'static str>> + 'v;

fn inspect_files<'b>(
    resolved: &Resolved<'b>,
    chosen: Option<&'static CStr>,
    storage: Storage<'b>,
    program: &mut Validation<'_, 'b>,
    interpreter: &mut Validation<'_, 'b>,
) -> Result<Inspected<'b>, Error<'b>> {
    const CALLED_TWICE: &str = "validated twice";
    let Storage { phdrs, interp_path, interp_phdrs, interp_file } = storage;
    let (file, exe_path) = (resolved.file, resolved.exe_path);
    let image =
        program(file, phdrs).unwrap_or(Err(CALLED_TWICE)).map_err(|reason| Error::cannot_execute(exe_path, reason))?;
    let extent = Extent::of(&image);
    let Some(ph) = image.interp() else {
        if chosen.is_some() {
            return Err(Error::at(exe_path, Refusal::failure("--interp given, but the program has no PT_INTERP")));
        }
        elf::check_has_loads(&image).map_err(|reason| Error::cannot_execute(exe_path, reason))?;
        return Ok(Inspected { image, extent, interpreter: None });
    };
    let path = match chosen {
        Some(path) => path,
        None => {
            let refuse = |reason| Error::cannot_execute(exe_path, reason);
            elf::check_interp(ph, file.size).map_err(refuse)?;
            let bytes = file.bytes(ph.p_offset, ph.p_filesz as usize, interp_path).map_err(refuse)?;
            let len = elf::interp_path(bytes).map_err(refuse)?.len();
            cstr(&bytes[..=len])
        }
    };
    let interpreter_error = |refusal| Error::Interpreter { path: exe_path, interpreter: path.to_bytes(), refusal };
    let interp: &File = interp_file.insert(source::open(path).map_err(interpreter_error)?);
    let interp_image = interpreter(interp, interp_phdrs)
        .unwrap_or(Err(CALLED_TWICE))
        .and_then(|image| elf::check_has_loads(&image).map(|()| image))
        .map_err(|reason| interpreter_error(Refusal::cannot_execute(reason)))?;
    Ok(Inspected {
        image,
        extent,
        interpreter: Some(Interpreter { path: path.to_bytes(), file: interp, image: interp_image }),
    })
}

/// Where the fifth step, map, put everything.
pub struct Mapped {
    /// The program's load bias.
    pub bias: u64,
    /// The interpreter's load address (AT_BASE), or 0.
    pub base: u64,
    /// Where the jump goes: the interpreter's entry, or the program's.
    pub entry: u64,
    pub start_brk: u64,
    /// The vDSO block, when the stub maps it again: where it goes.
    pub vdso: Option<MovedVdso>,
}

/// The vDSO block (vvar pages and text) mapped again by the stub.
#[derive(Clone, Copy)]
pub struct MovedVdso {
    /// Where the kernel put it for the preloader, unmapped with the preloader's image.
    pub old_start: u64,
    /// Where it goes, and its text there (the program's AT_SYSINFO_EHDR).
    pub at: u64,
    pub text: u64,
}

/// Where the kernel would map a segment over its fresh address space, this address space still
/// holds the preloader (a documented difference).
const SEGMENT_OVER_PRELOADER: &str =
    "a segment overlaps memory the preloader holds (its own pages, the stack, the vDSO or a reservation)";

/// Copied segments would have to be made executable after the copy, which PR_SET_MDWE forbids;
/// a sealed program's plaintext is never put in a memfd, by design, so it cannot run there.
const MDWE_REFUSAL: &str = "memory-deny-write-execute (PR_SET_MDWE) is in force, and this program's segments \
                            would be copied into memory made executable afterwards (a sealed program's \
                            plaintext is never put in a memfd; a stream's memfd is not executable here)";

pub fn map_error(errno: Errno) -> Refusal {
    match errno {
        Errno::EXIST => Refusal::cannot_execute(SEGMENT_OVER_PRELOADER),
        other => Refusal::from_errno(other.raw_os_error()),
    }
}

/// Reserve the ranges to keep free, map the program, give a Wine loader Wine's ranges, then map
/// the interpreter.
pub fn map_all<'b>(
    request: &Request,
    resolved: &Resolved<'b>,
    inspected: &Inspected<'b>,
    plan: &mut Plan,
    verbose: Option<&mut Printer>,
) -> Result<Mapped, Error<'b>> {
    let (file, image, exe_path) = (resolved.file, &inspected.image, resolved.exe_path);
    let fail = |refusal| Error::at(exe_path, refusal);
    let protected = reserve::Protected::new(plan.top, request.stack_limit);
    for range in plan.reserved.as_slice() {
        reserve::reserve(range, &protected).map_err(|why| Error::Reservation { range: *range, why })?;
    }
    if file.copy_segments() && image.loads().any(|ph| ph.p_flags & PF_X != 0) && proc::refuses_exec_gain() {
        return Err(Error::cannot_execute(exe_path, MDWE_REFUSAL));
    }
    let mut owned = Owned::default();
    // The image the stub maps at the top of the mmap area (see `finish`) is only placed here.
    let top = plan.stage2.mmap_top;
    // Planned only where it fits (plan::stage2), so item_start has an answer.
    let at_top = |extent: &Extent, align| {
        item_start(top, extent.total_size, align).map_or(0, |start| start.wrapping_sub(extent.first_start))
    };
    let program_at_top = matches!(plan.stage2.top, Some(Top::Program));
    let bias = match program_at_top {
        true => at_top(&inspected.extent, inspected.extent.align),
        false => map(file, image, &inspected.extent, plan.placement, &mut owned).map_err(|errno| match errno {
            Errno::EXIST if request.options.base.is_some() => {
                fail(Refusal::failure("--base: the program's address range is already in use"))
            }
            _ => fail(map_error(errno)),
        })?,
    };
    if !program_at_top {
        let program = (image, Class::Elf64, bias, file.size);
        wine::offer_ranges(program, exe_path, request.stack, &protected, &mut plan.reserved, verbose)?;
    }
    let (base, entry) = match &inspected.interpreter {
        Some(interp) if matches!(plan.stage2.top, Some(Top::Interpreter)) => {
            let interp_bias = at_top(&Extent::of(&interp.image), PAGE_SIZE);
            (interp_bias, interp_bias.wrapping_add(interp.image.entry))
        }
        Some(interp) => {
            let placement = Placement::of_interpreter(interp.image.relocatable);
            let interp_bias =
                map(interp.file, &interp.image, &Extent::of(&interp.image), placement, &mut owned).map_err(
                    |errno| Error::Interpreter { path: exe_path, interpreter: interp.path, refusal: map_error(errno) },
                )?;
            (interp_bias, interp_bias.wrapping_add(interp.image.entry))
        }
        None => (0, bias.wrapping_add(image.entry)),
    };
    let static_pie = image.relocatable && inspected.interpreter.is_none();
    let start_brk = start_brk(bias + inspected.extent.end_bss, static_pie, plan.randomize, plan.random.brk);
    let span = |bias: u64, extent: &Extent| {
        let start = bias.wrapping_add(extent.first_start);
        (start, start + page_align(extent.total_size))
    };
    // The image the kernel puts at the top of the mmap area: placed there (for the stub), or
    // mapped here where mmap put it (too large for the preloader's span, say).
    let item_image = match &inspected.interpreter {
        Some(interp) if interp.image.relocatable => Some((&interp.image, base)),
        Some(_) => None,
        None => static_pie.then_some((image, bias)),
    };
    let item = item_image.map(|(image, bias)| span(bias, &Extent::of(image)));
    // The vDSO goes where the kernel's get_unmapped_area would put it after that image: when the
    // image is at the top, below it; otherwise only at the very top, in the preloader's span
    // (free once the stub has unmapped it), where the kernel puts it too when the image leaves
    // room above itself (a static-pie aligned to 2 MiB).
    let vdso = match (plan.stage2.move_vdso, plan.stage2.vdso) {
        (true, Vdso::Below { start, text, end }) => {
            let (phdrs, item_bias) = item_image.map_or((&[][..], 0), |(image, bias)| (image.phdrs, bias));
            let at = vdso_block_start(top, item, phdrs, item_bias, end - start);
            (plan.stage2.top.is_some() || item.is_none() || at + (end - start) == top).then(|| MovedVdso {
                old_start: start,
                at,
                text: at + (text - start),
            })
        }
        _ => None,
    };
    Ok(Mapped { bias, base, entry, start_brk, vdso })
}
