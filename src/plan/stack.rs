//! The initial stack image, laid out as `create_elf_tables` and `copy_strings` do, and the
//! auxiliary vector the program gets.
//!
//! From the top of the stack down: 8 zero bytes, the execfn string (AT_EXECFN, env_end), the
//! environment strings (env_start), the argument strings (arg_start), a random 0-8191 byte gap
//! and 16-byte alignment, the platform string, the 16 AT_RANDOM bytes, padding, and at the
//! 16-aligned stack pointer: argc, argv[], NULL, envp[], NULL, auxv pairs, AT_NULL.

use core::mem::size_of;

pub const AT_NULL: u64 = 0;
pub const AT_EXECFD: u64 = 2;
pub const AT_PHDR: u64 = 3;
pub const AT_PHENT: u64 = 4;
pub const AT_PHNUM: u64 = 5;
pub const AT_PAGESZ: u64 = 6;
pub const AT_BASE: u64 = 7;
/// Bit 0 is binfmt_misc's flag `P` (see `exec::binfmt`); a plain exec of the program gives 0.
pub const AT_FLAGS: u64 = 8;
pub const AT_ENTRY: u64 = 9;
pub const AT_SECURE: u64 = 23;
pub const AT_PLATFORM: u64 = 15;
pub const AT_RANDOM: u64 = 25;
pub const AT_EXECFN: u64 = 31;
pub const AT_SYSINFO_EHDR: u64 = 33;
/// __kernel_vsyscall of the 32-bit vDSO, given to i386 programs only.
pub const AT_SYSINFO: u64 = 32;

/// The stack the preloader's own frames may grow into before the stub replaces them with the
/// program's image: the room the kernel's exec gives every new stack (setup_arg_pages'
/// stack_expand). Under a smaller RLIMIT_STACK a direct exec still runs; the preloader then
/// raises its soft limit for its own run and puts the caller's back before the stub.
pub const PRELOADER_STACK: u64 = 128 << 10;

/// The soft RLIMIT_STACK the preloader runs under, from the caller's limits (`None`:
/// unlimited): `Ok(None)` when the soft limit already leaves [`PRELOADER_STACK`], `Ok(Some(n))`
/// to raise it to `n` for the preloader's own run, `Err(hard)` when the hard limit is too small.
pub fn preloader_stack_limit(soft: Option<u64>, hard: Option<u64>) -> Result<Option<u64>, u64> {
    match (soft, hard) {
        (None, _) => Ok(None),
        (Some(soft), _) if soft >= PRELOADER_STACK => Ok(None),
        (Some(_), Some(hard)) if hard < PRELOADER_STACK => Err(hard),
        (Some(_), _) => Ok(Some(PRELOADER_STACK)),
    }
}

/// MAX_ARG_STRLEN: one string, NUL included, may not exceed 32 pages.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The kernel's argument space: a quarter of RLIMIT_STACK, at most 6 MiB, at least 128 KiB.
pub fn argument_space(stack_limit: u64) -> u64 {
    (stack_limit / 4).clamp(128 << 10, 6 << 20)
}

/// The kernel's E2BIG rules (bprm_stack_limits, copy_strings): every string (argv, environment
/// and execfn) shorter than MAX_ARG_STRLEN, and all of them with their NULs plus one pointer for
/// each of the execve's `pointers` (its argc, at least 1, plus envc) within the argument space.
pub fn check_args<'s>(strings: impl Iterator<Item = &'s [u8]>, pointers: u64, stack_limit: u64) -> Result<(), TooBig> {
    let mut bytes = 0;
    for s in strings {
        if s.len() >= MAX_ARG_STRLEN {
            return Err(TooBig);
        }
        bytes += s.len() as u64 + 1;
    }
    if bytes + pointers * WORD > argument_space(stack_limit) {
        return Err(TooBig);
    }
    Ok(())
}

/// The values the program's auxv describes instead of the preloader's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramAux {
    pub phdr: u64,
    pub phnum: u64,
    /// The interpreter's load address, or 0.
    pub base: u64,
    /// The program's entry, never the interpreter's.
    pub entry: u64,
    /// AT_SECURE as a plain exec would give it (see `privilege`).
    pub secure: u64,
}

/// The program's auxv from the one the kernel gave the preloader: same entries in the same order
/// (so it follows whatever this kernel emits), the program's values substituted, AT_EXECFD
/// dropped and AT_FLAGS 0 (both are binfmt_misc's word to the preloader, not the program's), stopping before AT_NULL. AT_RANDOM, AT_EXECFN and AT_PLATFORM are pointers that
/// [`StackImage::write`] fills in.
pub fn program_auxv(
    kernel: impl Iterator<Item = (u64, u64)> + Clone,
    aux: ProgramAux,
) -> impl Iterator<Item = (u64, u64)> + Clone {
    kernel.take_while(|&(key, _)| key != AT_NULL).filter(|&(key, _)| key != AT_EXECFD).map(move |(key, value)| {
        let value = match key {
            AT_PHDR => aux.phdr,
            AT_PHENT => 56,
            AT_PHNUM => aux.phnum,
            AT_BASE => aux.base,
            AT_ENTRY => aux.entry,
            AT_SECURE => aux.secure,
            AT_FLAGS => 0,
            _ => value,
        };
        (key, value)
    })
}

/// The 32-bit vDSO as an i386 program sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vdso32 {
    /// Its first page (AT_SYSINFO_EHDR).
    pub base: u64,
    /// `__kernel_vsyscall`, the vDSO's ELF entry (AT_SYSINFO).
    pub entry: u64,
}

/// An i386 program's auxv, as compat `create_elf_tables` makes it, from the 64-bit one the
/// kernel gave the preloader: ARCH_DLINFO_IA32 first (AT_SYSINFO and AT_SYSINFO_EHDR of the
/// 32-bit vDSO, when one is mapped), then the preloader's entries in their order without its
/// own vDSO, the program's values substituted as in [`program_auxv`] and AT_PHENT the size of
/// an Elf32_Phdr. AT_PLATFORM is filled in by [`StackImage::write`] ("i686").
pub fn compat_auxv(
    kernel: impl Iterator<Item = (u64, u64)> + Clone,
    aux: ProgramAux,
    vdso: Option<Vdso32>,
) -> impl Iterator<Item = (u64, u64)> + Clone {
    let Vdso32 { entry, base } = vdso.unwrap_or(Vdso32 { base: 0, entry: 0 });
    let arch = [(AT_SYSINFO, entry), (AT_SYSINFO_EHDR, base)].into_iter().take(if vdso.is_some() { 2 } else { 0 });
    let generic = program_auxv(kernel, aux)
        .filter(|&(key, _)| key != AT_SYSINFO_EHDR && key != AT_SYSINFO)
        .map(|(key, value)| if key == AT_PHENT { (key, crate::elf::ia32::SIZEOF_PHDR as u64) } else { (key, value) });
    arch.chain(generic)
}

/// Everything that goes on the stack; the strings come without their NUL terminators.
#[derive(Clone)]
pub struct StackImage<'a, A, E, X> {
    /// The end of the [stack] mapping.
    pub top: u64,
    pub argv: A,
    pub envp: E,
    pub execfn: &'a [u8],
    pub platform: Option<&'a [u8]>,
    pub random: [u8; 16],
    /// Bytes subtracted before aligning (arch_align_stack: random below 8192 with ASLR, else 0).
    pub gap: u64,
    pub auxv: X,
    /// The size of a pointer and of an auxv key or value: [`WORD`] for x86_64, [`WORD32`] for
    /// an i386 program (compat create_elf_tables writes `elf_addr_t`).
    pub word: u64,
}

/// Where everything landed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackLayout {
    /// The initial stack pointer: the address of argc.
    pub sp: u64,
    pub argc: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub execfn: u64,
    pub platform: u64,
    pub random: u64,
    pub auxv: u64,
    /// Bytes of the auxv including the AT_NULL pair.
    pub auxv_len: u64,
    /// Where the image ends: the top of the stack, or the start of the string area kept in place
    /// ([`StackImage::layout_keeping`]).
    pub end: u64,
    /// The string area kept in place, whose strings the image points to instead of copying them.
    pub kept: Option<(u64, u64)>,
}

impl StackLayout {
    /// Bytes from the stack pointer to `top`.
    pub fn size(&self, top: u64) -> usize {
        (top - self.sp) as usize
    }

    /// Bytes of the image: from the stack pointer to its end.
    pub fn image_size(&self) -> usize {
        self.size(self.end)
    }

    /// Where `s` is when it lies in the kept area (with the NUL that follows it).
    fn kept_at(&self, s: &[u8]) -> Option<u64> {
        kept_at(self.kept, s)
    }
}

fn kept_at(kept: Option<(u64, u64)>, s: &[u8]) -> Option<u64> {
    let (start, end) = kept?;
    let addr = s.as_ptr() as u64;
    (addr >= start && addr.checked_add(s.len() as u64)? < end).then_some(addr)
}

/// Why the arguments do not fit, as execve reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig;

/// An x86_64 word.
pub const WORD: u64 = size_of::<u64>() as u64;
/// An i386 word.
pub const WORD32: u64 = size_of::<u32>() as u64;

/// How many `strings` there are, and the bytes with their NULs of those not in `kept`. Through
/// `dyn`, like the other helpers of [`StackImage`]: one copy serves every kind of iterator.
fn count_and_bytes(strings: &mut dyn Iterator<Item = &[u8]>, kept: Option<(u64, u64)>) -> (u64, u64) {
    strings.fold((0, 0), |(count, bytes), s| {
        (count + 1, if kept_at(kept, s).is_some() { bytes } else { bytes + s.len() as u64 + 1 })
    })
}

impl<'a, 'arg, 'env, A, E, X> StackImage<'a, A, E, X>
where
    A: Iterator<Item = &'arg [u8]> + Clone,
    E: Iterator<Item = &'env [u8]> + Clone,
    X: Iterator<Item = (u64, u64)> + Clone,
{
    /// The layout `create_elf_tables` makes, from the top of the stack down.
    pub fn layout(&self) -> StackLayout {
        self.layout_in(None)
    }

    /// The layout for when the mm fields cannot be pointed at the program (PR_SET_MM_MAP refused):
    /// the string area the kernel made for this process, `[kept.0, kept.1)` (its argument,
    /// environment and execfn strings, up to the top of the stack), stays in place, so that
    /// /proc/self/cmdline and environ, which the kernel reads there, keep showing whole strings.
    /// The image ends below it; every string of the program that lies in the area (each given
    /// as a slice of it, followed there by its NUL) is pointed to where it is, the others are
    /// written into the image as usual.
    pub fn layout_keeping(&self, kept: (u64, u64)) -> StackLayout {
        self.layout_in(Some(kept))
    }

    fn layout_in(&self, kept: Option<(u64, u64)>) -> StackLayout {
        self.erased().layout(kept, &mut self.argv.clone(), &mut self.envp.clone(), &mut self.auxv.clone())
    }

    /// Write the image for `layout` into `image`, which stands for the memory [sp, top) and
    /// must be zeroed and exactly that long.
    pub fn write(&self, layout: &StackLayout, image: &mut [u8]) {
        let (argv, envp, auxv) = (&mut self.argv.clone(), &mut self.envp.clone(), &mut self.auxv.clone());
        self.erased().write(layout, image, argv, envp, auxv);
    }

    fn erased(&self) -> Erased<'_, 'a> {
        let Self { top, execfn, platform, ref random, gap, word, .. } = *self;
        Erased { top, execfn, platform, random, gap, word }
    }
}

/// A [`StackImage`] without its iterators, which its methods pass as `dyn Iterator`: the layout
/// and the writing are compiled once, whatever the iterators.
struct Erased<'s, 'a> {
    top: u64,
    execfn: &'a [u8],
    platform: Option<&'a [u8]>,
    random: &'s [u8; 16],
    gap: u64,
    word: u64,
}

impl Erased<'_, '_> {
    fn layout(
        &self,
        kept: Option<(u64, u64)>,
        argv: &mut dyn Iterator<Item = &[u8]>,
        envp: &mut dyn Iterator<Item = &[u8]>,
        auxv: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> StackLayout {
        let end = kept.map_or(self.top, |(start, _)| start);
        let execfn = match kept_at(kept, self.execfn) {
            Some(addr) => addr,
            // The kernel's 8 zero bytes end the stack (its own pointer size, for either ABI:
            // bprm->p = vm_end - sizeof(void *)); below a kept area nothing needs them.
            None => end - if kept.is_some() { 0 } else { WORD } - (self.execfn.len() as u64 + 1),
        };
        let below_execfn = if kept_at(kept, self.execfn).is_some() { end } else { execfn };
        let (envc, env_bytes) = count_and_bytes(envp, kept);
        let (argc, arg_bytes) = match count_and_bytes(argv, kept) {
            // An empty argv gets "" as argv[0].
            (0, _) => (1, 1),
            counted => counted,
        };
        let env_start = below_execfn - env_bytes;
        let arg_start = env_start - arg_bytes;
        let mut p = (arg_start - self.gap) & !15;
        let platform = match self.platform {
            Some(name) => {
                p -= name.len() as u64 + 1;
                p
            }
            None => 0,
        };
        p -= 16;
        let random = p;
        let auxv_len = (count(auxv) + 1) * 2 * self.word;
        let sp = (p - auxv_len - (argc + 1 + envc + 1 + 1) * self.word) & !15;
        StackLayout {
            sp,
            argc,
            arg_start,
            arg_end: env_start,
            env_start,
            env_end: execfn,
            execfn,
            platform,
            random,
            auxv: sp + (1 + argc + 1 + envc + 1) * self.word,
            auxv_len,
            end,
            kept,
        }
    }

    fn write(
        &self,
        layout: &StackLayout,
        image: &mut [u8],
        argv: &mut dyn Iterator<Item = &[u8]>,
        envp: &mut dyn Iterator<Item = &[u8]>,
        auxv: &mut dyn Iterator<Item = (u64, u64)>,
    ) {
        assert_eq!(image.len(), layout.image_size(), "image buffer must span [sp, end)");
        let mut out = Writer { image, base: layout.sp, word: self.word };
        if layout.kept_at(self.execfn).is_none() {
            out.put_bytes(layout.execfn, self.execfn);
        }
        if let Some(name) = self.platform {
            out.put_bytes(layout.platform, name);
        }
        out.put_raw(layout.random, self.random);

        let mut word = layout.sp;
        out.put_word(&mut word, layout.argc);
        let mut string = layout.arg_start;
        if out.put_strings(&mut word, &mut string, layout, argv) == 0 {
            // An empty argv gets "" as argv[0] (the image is zeroed).
            out.put_word(&mut word, string);
            string += 1;
        }
        out.put_word(&mut word, 0);
        out.put_strings(&mut word, &mut string, layout, envp);
        out.put_word(&mut word, 0);
        out.put_auxv(word, layout, self.platform.is_some(), auxv);
    }
}

fn count<T>(items: &mut dyn Iterator<Item = T>) -> u64 {
    items.fold(0, |count, _| count + 1)
}

struct Writer<'i> {
    image: &'i mut [u8],
    base: u64,
    word: u64,
}

impl Writer<'_> {
    fn put_raw(&mut self, addr: u64, bytes: &[u8]) {
        let at = (addr - self.base) as usize;
        self.image[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Store the C string `bytes` at `addr`; returns the address after its NUL.
    fn put_bytes(&mut self, addr: u64, bytes: &[u8]) -> u64 {
        self.put_raw(addr, bytes);
        let end = addr + bytes.len() as u64;
        self.put_raw(end, &[0]);
        end + 1
    }

    /// Store the pointers to `strings` from `word` on; each string not in the kept area is
    /// stored at `string`, which moves past it. Returns how many there were.
    fn put_strings(
        &mut self,
        word: &mut u64,
        string: &mut u64,
        layout: &StackLayout,
        strings: &mut dyn Iterator<Item = &[u8]>,
    ) -> u64 {
        let mut count = 0;
        for s in strings {
            count += 1;
            let addr = match layout.kept_at(s) {
                Some(addr) => addr,
                None => {
                    let addr = *string;
                    *string = self.put_bytes(addr, s);
                    addr
                }
            };
            self.put_word(word, addr);
        }
        count
    }

    /// Store the auxv pairs from `word` on, the pointers among them to what `layout` placed,
    /// and AT_NULL.
    fn put_auxv(
        &mut self,
        mut word: u64,
        layout: &StackLayout,
        has_platform: bool,
        auxv: &mut dyn Iterator<Item = (u64, u64)>,
    ) {
        for (key, value) in auxv {
            let value = match key {
                AT_RANDOM => layout.random,
                AT_EXECFN => layout.execfn,
                AT_PLATFORM if has_platform => layout.platform,
                _ => value,
            };
            self.put_word(&mut word, key);
            self.put_word(&mut word, value);
        }
        self.put_word(&mut word, AT_NULL);
        self.put_word(&mut word, 0);
    }

    /// Store `value` as a word (an i386 word keeps its low 32 bits).
    fn put_word(&mut self, addr: &mut u64, value: u64) {
        let at = (*addr - self.base) as usize;
        match self.word {
            WORD32 => self.image[at..at + 4].copy_from_slice(&(value as u32).to_ne_bytes()),
            _ => self.image[at..at + 8].copy_from_slice(&value.to_ne_bytes()),
        }
        *addr += self.word;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preloader_raises_a_small_soft_stack_limit_up_to_its_room() {
        let room = PRELOADER_STACK;
        assert_eq!(preloader_stack_limit(None, None), Ok(None), "unlimited");
        assert_eq!(preloader_stack_limit(Some(8 << 20), Some(8 << 20)), Ok(None));
        assert_eq!(preloader_stack_limit(Some(room), Some(room)), Ok(None), "exactly the room");
        assert_eq!(preloader_stack_limit(Some(16 << 10), None), Ok(Some(room)), "hard unlimited");
        assert_eq!(preloader_stack_limit(Some(16 << 10), Some(room)), Ok(Some(room)));
        assert_eq!(preloader_stack_limit(Some(16 << 10), Some(room - 1)), Err(room - 1));
        assert_eq!(preloader_stack_limit(Some(0), Some(0)), Err(0));
    }

    const TOP: u64 = 0x7fff_f000_0000;

    fn strs<'a>(list: &'a [&'a str]) -> impl Iterator<Item = &'a [u8]> + Clone {
        list.iter().map(|s| s.as_bytes())
    }

    fn kernel_auxv() -> Vec<(u64, u64)> {
        vec![
            (AT_SYSINFO_EHDR, 0x7fff_1000),
            (AT_PAGESZ, 4096),
            (AT_PHDR, 0x7f00_0040),
            (AT_PHENT, 56),
            (AT_PHNUM, 4),
            (AT_BASE, 0),
            (AT_FLAGS, 1),
            (AT_EXECFD, 3),
            (AT_ENTRY, 0x7f00_1000),
            (AT_SECURE, 1),
            (AT_RANDOM, 0xdead),
            (AT_EXECFN, 0xbeef),
            (AT_PLATFORM, 0xf00d),
            (AT_NULL, 0),
            (99, 99),
        ]
    }

    fn read_word(image: &[u8], layout: &StackLayout, addr: u64) -> u64 {
        let at = (addr - layout.sp) as usize;
        u64::from_ne_bytes(image[at..at + 8].try_into().unwrap())
    }

    fn read_str<'i>(image: &'i [u8], layout: &StackLayout, addr: u64) -> &'i [u8] {
        let at = (addr - layout.sp) as usize;
        let len = image[at..].iter().position(|&b| b == 0).unwrap();
        &image[at..at + len]
    }

    fn build<'a>(argv: &'a [&'a str], envp: &'a [&'a str], gap: u64) -> (StackLayout, Vec<u8>, Vec<(u64, u64)>) {
        let aux = ProgramAux { phdr: 0x5555_0040, phnum: 13, base: 0x7f77_0000, entry: 0x5555_1040, secure: 0 };
        let kernel = kernel_auxv();
        let auxv: Vec<_> = program_auxv(kernel.iter().copied(), aux).collect();
        let spec = StackImage {
            top: TOP,
            argv: strs(argv),
            envp: strs(envp),
            execfn: b"/bin/prog",
            platform: Some(b"x86_64"),
            random: [7; 16],
            gap,
            auxv: auxv.iter().copied(),
            word: WORD,
        };
        let layout = spec.layout();
        let mut image = vec![0u8; layout.size(TOP)];
        spec.write(&layout, &mut image);
        (layout, image, auxv)
    }

    #[test]
    fn auxv_keeps_the_kernel_order_with_program_values() {
        let (_, _, auxv) = build(&["a"], &[], 0);
        let keys: Vec<u64> = auxv.iter().map(|p| p.0).collect();
        assert_eq!(
            keys,
            [
                AT_SYSINFO_EHDR,
                AT_PAGESZ,
                AT_PHDR,
                AT_PHENT,
                AT_PHNUM,
                AT_BASE,
                AT_FLAGS,
                AT_ENTRY,
                AT_SECURE,
                AT_RANDOM,
                AT_EXECFN,
                AT_PLATFORM
            ]
        );
        assert_eq!(auxv[2..6], [(AT_PHDR, 0x5555_0040), (AT_PHENT, 56), (AT_PHNUM, 13), (AT_BASE, 0x7f77_0000)]);
        assert_eq!(auxv[7], (AT_ENTRY, 0x5555_1040));
        assert_eq!(auxv[6], (AT_FLAGS, 0), "binfmt_misc's flag P is the preloader's, not the program's");
        assert_eq!(auxv[8], (AT_SECURE, 0), "the program's AT_SECURE, not the preloader's");
    }

    #[test]
    fn image_matches_create_elf_tables() {
        let (l, image, _) = build(&["prog", "", "two words"], &["A=1", "B=2"], 0);
        assert_eq!(l.sp % 16, 0);
        assert_eq!(l.random % 16, 9, "AT_RANDOM sits 7+16 bytes below a 16-aligned point, as measured");
        assert_eq!(l.execfn, TOP - 8 - 10);
        assert_eq!(read_str(&image, &l, l.execfn), b"/bin/prog");
        assert_eq!(l.env_end, l.execfn);
        assert_eq!(l.arg_end, l.env_start);
        assert_eq!(l.env_start, l.execfn - 8);
        assert_eq!(l.arg_start, l.env_start - 5 - 1 - 10);
        assert_eq!(read_word(&image, &l, l.sp), 3);
        let argv: Vec<&[u8]> = (0..3).map(|i| read_str(&image, &l, read_word(&image, &l, l.sp + 8 + 8 * i))).collect();
        assert_eq!(argv, [&b"prog"[..], b"", b"two words"]);
        assert_eq!(read_word(&image, &l, l.sp + 8), l.arg_start, "argv[0] is the first string");
        assert_eq!(read_word(&image, &l, l.sp + 32), 0);
        assert_eq!(read_str(&image, &l, read_word(&image, &l, l.sp + 40)), b"A=1");
        assert_eq!(read_word(&image, &l, l.sp + 40), l.env_start);
        assert_eq!(read_word(&image, &l, l.sp + 56), 0);
        assert_eq!(l.auxv, l.sp + 64);
        assert_eq!(l.auxv_len, 13 * 16);
        let aux_value = |key| {
            (0..13)
                .map(|i| l.auxv + 16 * i)
                .find(|&a| read_word(&image, &l, a) == key)
                .map(|a| read_word(&image, &l, a + 8))
        };
        assert_eq!(aux_value(AT_RANDOM), Some(l.random));
        assert_eq!(aux_value(AT_EXECFN), Some(l.execfn));
        assert_eq!(aux_value(AT_PLATFORM), Some(l.platform));
        assert_eq!(read_str(&image, &l, l.platform), b"x86_64");
        assert_eq!(&image[(l.random - l.sp) as usize..][..16], &[7; 16]);
        assert_eq!(read_word(&image, &l, l.auxv + l.auxv_len - 16), AT_NULL);
        assert_eq!(&image[image.len() - 8..], &[0; 8]);
    }

    #[test]
    fn gap_moves_only_what_lies_below_the_strings() {
        let (plain, _, _) = build(&["p"], &["E=1"], 0);
        let (gapped, _, _) = build(&["p"], &["E=1"], 8191);
        assert_eq!(plain.arg_start, gapped.arg_start);
        assert!(plain.random - gapped.random >= 8176 && plain.random - gapped.random <= 8191 + 15);
        assert_eq!(gapped.sp % 16, 0);
    }

    #[test]
    fn empty_argv_gets_an_empty_argv0() {
        let (l, image, _) = build(&[], &["E=1"], 0);
        assert_eq!(l.argc, 1);
        assert_eq!(l.arg_start, l.env_start - 1);
        assert_eq!(read_word(&image, &l, l.sp + 8), l.arg_start);
        assert_eq!(read_str(&image, &l, l.arg_start), b"");
        assert_eq!(read_word(&image, &l, l.sp + 16), 0);
        assert_eq!(read_word(&image, &l, l.sp + 24), l.env_start);
        assert_eq!(read_str(&image, &l, l.env_start), b"E=1");
    }

    #[test]
    fn a_kept_area_is_pointed_to_not_overwritten() {
        // The preloader's own strings, as the kernel laid them out: argv, envp, execfn, 8 zeros.
        let area: &'static [u8] = b"preload\0--verbose\0prog\0arg\0A=1\0B=2\0/usr/bin/preload\0\0\0\0\0\0\0\0\0";
        let at = |needle: &str| {
            let start = area
                .windows(needle.len() + 1)
                .position(|w| &w[..needle.len()] == needle.as_bytes() && w[needle.len()] == 0)
                .unwrap();
            &area[start..start + needle.len()]
        };
        let kept = (area.as_ptr() as u64, area.as_ptr() as u64 + area.len() as u64);
        let argv: Vec<&[u8]> = vec![b"--argv0-elsewhere", at("arg")];
        let envp: Vec<&[u8]> = vec![at("A=1"), at("B=2")];
        let kernel = kernel_auxv();
        let auxv: Vec<_> = program_auxv(kernel.iter().copied(), ProgramAux::default()).collect();
        let spec = StackImage {
            top: kept.1,
            argv: argv.iter().copied(),
            envp: envp.iter().copied(),
            execfn: b"/bin/prog",
            platform: Some(b"x86_64"),
            random: [7; 16],
            gap: 100,
            auxv: auxv.iter().copied(),
            word: WORD,
        };
        let l = spec.layout_keeping(kept);
        assert_eq!(l.end, kept.0, "the image ends where the kept area starts");
        assert_eq!(l.sp % 16, 0);
        let mut image = vec![0u8; l.image_size()];
        spec.write(&l, &mut image);
        let word = |i: u64| read_word(&image, &l, l.sp + 8 * i);
        assert_eq!(word(0), 2);
        assert_eq!(read_str(&image, &l, word(1)), b"--argv0-elsewhere", "a string from elsewhere is copied");
        assert!(word(1) < l.end);
        assert_eq!(word(2), at("arg").as_ptr() as u64, "a string of the area is pointed to in place");
        assert_eq!(word(3), 0);
        assert_eq!([word(4), word(5)], [at("A=1").as_ptr() as u64, at("B=2").as_ptr() as u64]);
        assert_eq!(word(6), 0);
        assert_eq!(read_str(&image, &l, l.execfn), b"/bin/prog");
        assert_eq!(l.execfn + 10, l.end, "execfn copied right below the area, without the stack's 8 zero bytes");
        assert_eq!(l.arg_start, l.execfn - 18, "only the copied argument is written");
        assert_eq!(l.env_start, l.env_end, "no environment string is copied");
        // Nothing that is not kept is pointed to in place: the normal layout writes everything.
        let normal = spec.layout();
        assert_eq!(normal.end, spec.top);
        assert_eq!(normal.kept, None);
        assert_eq!(normal.env_end - normal.arg_start, 18 + 4 + 4 + 4);
    }

    #[test]
    fn e2big_follows_the_kernel_limits() {
        let long = vec![b'x'; MAX_ARG_STRLEN - 1];
        let longer = vec![b'x'; MAX_ARG_STRLEN];
        fn strings<'a>(args: &'a [&'static [u8]]) -> impl Iterator<Item = &'static [u8]> + Clone + 'a {
            args.iter().copied()
        }
        let (long, longer): (&'static [u8], &'static [u8]) = (long.leak(), longer.leak());
        assert_eq!(check_args(strings(&[long, b"/p"]), 1, 8 << 20), Ok(()));
        assert_eq!(check_args(strings(&[longer, b"/p"]), 1, 8 << 20), Err(TooBig));
        assert_eq!(
            check_args(strings(&[long, long]), 1, 0),
            Err(TooBig),
            "128 KiB floor is less than two 128 KiB strings"
        );
        // Exactly at the limit: the strings with their NULs plus one pointer per argv and envp
        // entry (execfn has none) fill the argument space.
        let space = argument_space(8 << 20);
        let filler: &'static [u8] = vec![b'y'; 100_000].leak();
        let mut args = vec![filler; 20];
        let used: u64 = args.iter().map(|s| s.len() as u64 + 1).sum::<u64>() + 2 + 21 * 8;
        let last: &'static [u8] = vec![b'z'; (space - used - 1) as usize].leak();
        args.push(last);
        args.push(b"/");
        assert_eq!(check_args(strings(&args), 21, 8 << 20), Ok(()));
        assert_eq!(check_args(strings(&args), 22, 8 << 20), Err(TooBig));
        assert_eq!(argument_space(8 << 20), 2 << 20);
        assert_eq!(argument_space(u64::MAX), 6 << 20);
        assert_eq!(argument_space(4096), 128 << 10);
    }

    #[test]
    fn compat_auxv_puts_the_32_bit_vdso_first_and_32_byte_phdrs() {
        let aux = ProgramAux { phdr: 0x804_8034, phnum: 9, base: 0xf7f0_0000, entry: 0x804_9000, secure: 0 };
        let vdso = Vdso32 { base: 0xf7ef_0000, entry: 0xf7ef_0560 };
        let auxv: Vec<_> = compat_auxv(kernel_auxv().into_iter(), aux, Some(vdso)).collect();
        assert_eq!(auxv[..3], [(AT_SYSINFO, 0xf7ef_0560), (AT_SYSINFO_EHDR, 0xf7ef_0000), (AT_PAGESZ, 4096)]);
        assert_eq!(
            auxv[3..9],
            [
                (AT_PHDR, 0x804_8034),
                (AT_PHENT, 32),
                (AT_PHNUM, 9),
                (AT_BASE, 0xf7f0_0000),
                (AT_FLAGS, 0),
                (AT_ENTRY, 0x804_9000)
            ]
        );
        assert_eq!(auxv.len(), 13, "AT_EXECFD and the 64-bit vDSO dropped, nothing after AT_NULL");
        let without: Vec<_> = compat_auxv(kernel_auxv().into_iter(), aux, None).collect();
        assert_eq!(without[0], (AT_PAGESZ, 4096), "no vDSO, no AT_SYSINFO(_EHDR)");
        assert_eq!(without.len(), 11);
    }

    #[test]
    fn an_i386_image_has_4_byte_words_below_the_same_strings() {
        const TOP32: u64 = 0xffff_e000;
        let aux = ProgramAux { phdr: 0x804_8034, phnum: 9, base: 0, entry: 0x804_9000, secure: 0 };
        let vdso = Vdso32 { base: 0xf7ef_0000, entry: 0xf7ef_0560 };
        let auxv: Vec<_> = compat_auxv(kernel_auxv().into_iter(), aux, Some(vdso)).collect();
        let spec = StackImage {
            top: TOP32,
            argv: strs(&["prog", "x"]),
            envp: strs(&["A=1"]),
            execfn: b"/bin/prog",
            platform: Some(b"i686"),
            random: [7; 16],
            gap: 0,
            auxv: auxv.iter().copied(),
            word: WORD32,
        };
        let l = spec.layout();
        let mut image = vec![0u8; l.size(TOP32)];
        spec.write(&l, &mut image);
        let word = |addr: u64| {
            let at = (addr - l.sp) as usize;
            u64::from(u32::from_ne_bytes(image[at..at + 4].try_into().unwrap()))
        };
        // The strings lie exactly as for x86_64: 8 bytes below the top (the kernel's pointer).
        assert_eq!(l.execfn, TOP32 - 8 - 10);
        assert_eq!(l.env_start, l.execfn - 4);
        assert_eq!(l.arg_start, l.env_start - 5 - 2);
        assert_eq!(read_str(&image, &l, l.platform), b"i686");
        assert_eq!(l.platform, ((l.arg_start & !15) - 5));
        assert_eq!(l.random, l.platform - 16);
        assert_eq!(l.random % 16, 11);
        // argc, argv[2], NULL, envp[1], NULL: 6 words; 14 auxv pairs of 8 bytes.
        assert_eq!(l.auxv_len, 14 * 8);
        assert_eq!(l.sp, (l.random - 14 * 8 - 6 * 4) & !15);
        assert_eq!(l.auxv, l.sp + 6 * 4);
        assert_eq!(word(l.sp), 2);
        assert_eq!(read_str(&image, &l, word(l.sp + 4)), b"prog");
        assert_eq!(read_str(&image, &l, word(l.sp + 8)), b"x");
        assert_eq!(word(l.sp + 12), 0);
        assert_eq!(word(l.sp + 16), l.env_start);
        assert_eq!(word(l.sp + 20), 0);
        let pairs: Vec<(u64, u64)> = (0..14).map(|i| (word(l.auxv + 8 * i), word(l.auxv + 8 * i + 4))).collect();
        assert_eq!(pairs[0], (AT_SYSINFO, 0xf7ef_0560));
        assert_eq!(pairs[4], (AT_PHENT, 32));
        assert!(pairs.contains(&(AT_RANDOM, l.random)) && pairs.contains(&(AT_EXECFN, l.execfn)));
        assert!(pairs.contains(&(AT_PLATFORM, l.platform)));
        assert_eq!(pairs[13], (AT_NULL, 0));
        assert_eq!(l.size(TOP32), image.len());
    }
}
