//! The stack the kernel gave the preloader: argc, argv, envp and auxv.

use core::ffi::{CStr, c_char};

use preload::plan::stack::{AT_EXECFN, AT_NULL, AT_PLATFORM, AT_RANDOM, MAX_ARG_STRLEN};

pub struct InitialStack {
    argv: &'static [*const c_char],
    envp: &'static [*const c_char],
    auxv: &'static [[u64; 2]],
    /// The execfn string, which the kernel placed right after the last environment string.
    execfn: *const c_char,
}

/// A C string from the initial stack as bytes, without its NUL.
fn bytes(ptr: *const c_char) -> &'static [u8] {
    // SAFETY: every pointer in argv and envp is a NUL-terminated string the kernel placed on the
    // stack, which the preloader never overwrites before it stops reading them.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
}

/// The string at `ptr` when the string at `next` follows it: the kernel copies the argument,
/// environment and execfn strings back to back (mm->arg_start..env_end), so the length is the
/// distance, found without scanning — launches with many arguments would otherwise read every
/// byte once per pass. Anything but that packing falls back to scanning.
fn packed_bytes(ptr: *const c_char, next: *const c_char) -> &'static [u8] {
    let len = (next as usize).wrapping_sub(ptr as usize).wrapping_sub(1);
    if len < MAX_ARG_STRLEN {
        // SAFETY: [ptr, next) lies inside the kernel's string area (both point into it, and
        // next - ptr <= MAX_ARG_STRLEN); the byte before `next` ends the string at `ptr` when it
        // is the NUL, and then no NUL lies before it, since the kernel copies each string with
        // exactly one NUL, its last byte.
        let slice = unsafe { core::slice::from_raw_parts(ptr as *const u8, len + 1) };
        if let Some((0, string)) = slice.split_last() {
            return string;
        }
    }
    bytes(ptr)
}

/// Strings of the initial stack (argv or envp), one concrete iterator type for every user:
/// each generic user is compiled once for it, and a step is one call.
#[derive(Clone)]
pub struct Strings {
    list: &'static [*const c_char],
    /// The string that follows the last one of `list`.
    after: *const c_char,
}

impl Iterator for Strings {
    type Item = &'static [u8];

    fn next(&mut self) -> Option<&'static [u8]> {
        let (&ptr, rest) = self.list.split_first()?;
        self.list = rest;
        Some(packed_bytes(ptr, rest.first().copied().unwrap_or(self.after)))
    }

    fn count(self) -> usize {
        self.list.len()
    }

    fn nth(&mut self, n: usize) -> Option<&'static [u8]> {
        self.list = self.list.get(n..).unwrap_or_default();
        self.next()
    }
}

impl InitialStack {
    /// # Safety
    /// `sp` is the stack pointer the kernel entered `_start` with.
    pub unsafe fn from_sp(sp: *const u64) -> Self {
        // SAFETY: the kernel's layout: argc, argc pointers, NULL, pointers, NULL, auxv pairs
        // ending with AT_NULL; all of it stays in place while the preloader runs.
        unsafe {
            let argc = *sp as usize;
            let argv = sp.add(1) as *const *const c_char;
            let envp = argv.add(argc + 1);
            let mut envc = 0;
            while !(*envp.add(envc)).is_null() {
                envc += 1;
            }
            let auxv = envp.add(envc + 1) as *const [u64; 2];
            let mut auxc = 0;
            while (*auxv.add(auxc))[0] != AT_NULL {
                auxc += 1;
            }
            let auxv = core::slice::from_raw_parts(auxv, auxc);
            let execfn = auxv
                .iter()
                .find(|pair| pair[0] == AT_EXECFN)
                .map_or(core::ptr::null(), |pair| pair[1] as *const c_char);
            Self {
                argv: core::slice::from_raw_parts(argv, argc),
                envp: core::slice::from_raw_parts(envp, envc),
                auxv,
                execfn,
            }
        }
    }

    /// The strings of `list`, each measured against the string that follows it, the last against
    /// `after`.
    fn strings(list: &'static [*const c_char], after: *const c_char) -> Strings {
        Strings { list, after }
    }

    pub fn args(&self) -> Strings {
        self.args_from(0)
    }

    /// The arguments from `argv[first]` on.
    pub fn args_from(&self, first: usize) -> Strings {
        let list = self.argv.get(first..).unwrap_or_default();
        Self::strings(list, self.envp.first().copied().unwrap_or(self.execfn))
    }

    pub fn arg(&self, index: usize) -> &'static CStr {
        // SAFETY: as in `bytes`.
        unsafe { CStr::from_ptr(self.argv[index]) }
    }

    pub fn env(&self) -> Strings {
        Self::strings(self.envp, self.execfn)
    }

    pub fn getenv(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.env().find_map(|var| var.strip_prefix(name)?.strip_prefix(b"="))
    }

    /// The auxv pairs, without AT_NULL.
    pub fn auxv(&self) -> impl Iterator<Item = (u64, u64)> + Clone {
        self.auxv.iter().map(|pair| (pair[0], pair[1]))
    }

    pub fn aux(&self, key: u64) -> Option<u64> {
        self.auxv().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    fn aux_string(&self, key: u64) -> Option<&'static [u8]> {
        self.aux(key).filter(|&p| p != 0).map(|p| bytes(p as *const c_char))
    }

    /// The 16 random bytes the kernel drew for this exec (AT_RANDOM). Nothing in the preloader
    /// uses them (it has no stack protector), so they are still unused by anyone.
    pub fn at_random(&self) -> Option<[u8; 16]> {
        let ptr = self.aux(AT_RANDOM).filter(|&p| p != 0)? as *const [u8; 16];
        // SAFETY: AT_RANDOM points to 16 bytes the kernel placed on the stack, which the preloader
        // never overwrites before the jump (and reads here before it builds anything).
        Some(unsafe { ptr.read_unaligned() })
    }

    /// The platform string the kernel put on the stack ("x86_64").
    pub fn platform(&self) -> Option<&'static [u8]> {
        self.aux_string(AT_PLATFORM)
    }

    /// The strings the kernel copied for this exec, from argv[0] up to the top of the stack:
    /// what /proc/self/cmdline and environ read while the mm fields are the kernel's.
    pub fn string_area(&self) -> Option<(u64, u64)> {
        let first = self.argv.first().or(self.envp.first()).map_or(self.execfn, |&ptr| ptr);
        Some((first as u64, self.stack_top()?))
    }

    /// The end of the [stack] mapping: the kernel's execfn string is followed by 8 zero bytes
    /// that end it.
    pub fn stack_top(&self) -> Option<u64> {
        let execfn = self.aux(AT_EXECFN)?;
        Some(execfn + self.aux_string(AT_EXECFN)?.len() as u64 + 1 + 8)
    }
}

/// An option value as a C string: every value the CLI returns is an argv string or the tail of
/// one after `=`, so its NUL follows it in memory.
pub fn argument_tail(value: &'static [u8]) -> &'static CStr {
    // SAFETY: as above; the string ends at the argv string's own NUL.
    unsafe { CStr::from_ptr(value.as_ptr() as *const c_char) }
}
