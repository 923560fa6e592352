//! The stack the kernel gave the preloader: argc, argv, envp and auxv.

use core::ffi::{CStr, c_char};

use preload::stack::{AT_EXECFN, AT_NULL, AT_PLATFORM};

pub struct InitialStack {
    argv: &'static [*const c_char],
    envp: &'static [*const c_char],
    auxv: &'static [[u64; 2]],
}

/// A C string from the initial stack as bytes, without its NUL.
fn bytes(ptr: *const c_char) -> &'static [u8] {
    // SAFETY: every pointer in argv and envp is a NUL-terminated string the kernel placed on the
    // stack, which the preloader never overwrites before it stops reading them.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
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
            Self {
                argv: core::slice::from_raw_parts(argv, argc),
                envp: core::slice::from_raw_parts(envp, envc),
                auxv: core::slice::from_raw_parts(auxv, auxc),
            }
        }
    }

    pub fn args(&self) -> impl Iterator<Item = &'static [u8]> + Clone {
        self.argv.iter().map(|&p| bytes(p))
    }

    pub fn arg(&self, index: usize) -> &'static CStr {
        // SAFETY: as in `bytes`.
        unsafe { CStr::from_ptr(self.argv[index]) }
    }

    pub fn env(&self) -> impl Iterator<Item = &'static [u8]> + Clone {
        self.envp.iter().map(|&p| bytes(p))
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

    /// The platform string the kernel put on the stack ("x86_64").
    pub fn platform(&self) -> Option<&'static [u8]> {
        self.aux_string(AT_PLATFORM)
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
