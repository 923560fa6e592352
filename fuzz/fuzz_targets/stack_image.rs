//! The initial stack image with arbitrary argv, envp, execfn, platform, gap, RLIMIT_STACK and
//! kernel auxv: `program_auxv`, `stack::check_args`, `layout` and `write`.
//!
//! For every image whose strings `check_args` accepts (as `main.rs` counts them: argv, envp and
//! execfn, one pointer per argument, at least one, and per variable): the stack pointer is 16-byte aligned, everything lies
//! in [sp, top) in the documented order without overlaps, the image is no bigger than the
//! argument space plus the fixed parts, argv/envp round-trip through their pointers, the
//! argument and environment areas are exactly the strings /proc/PID/cmdline and environ show,
//! and the auxv is the kernel's in its order with the program's values and pointers.
//!
//! Then `layout_keeping`, with some of the strings (chosen by `kept_mask`) given as slices of a
//! kept area that also holds strings of the program's own (as the preloader's exec left them):
//! the image ends where the area starts, every kept string is pointed to in place, every other
//! string is written into the image and round-trips, and the area is never written.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use preload::elf::TASK_SIZE;
use preload::page_start;
use preload::plan::stack::{
    self, AT_EXECFD, AT_EXECFN, AT_NULL, AT_PLATFORM, AT_RANDOM, ProgramAux, StackImage, StackLayout,
};

#[derive(Arbitrary, Debug)]
struct Input {
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    execfn: Vec<u8>,
    platform: Option<Vec<u8>>,
    random: [u8; 16],
    gap: u16,
    /// Scales the string sizes up, to reach the E2BIG limits without megabytes of input.
    repeat: u8,
    stack_limit: u64,
    top: u64,
    kernel_auxv: Vec<(u8, u64)>,
    aux: (u64, u64, u64, u64, u64),
    /// Bit i (mod 64) of the argv strings then the envp strings, and bit 63 for execfn: that
    /// string lies in the kept area.
    kept_mask: u64,
}

/// The strings the kernel passes: C strings, so without NUL bytes.
fn c_string(bytes: &[u8], repeat: u8) -> Vec<u8> {
    let one: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    one.repeat(usize::from(repeat).max(1))
}

fuzz_target!(|input: Input| {
    let argv: Vec<Vec<u8>> = input.argv.iter().map(|s| c_string(s, input.repeat)).collect();
    let envp: Vec<Vec<u8>> = input.envp.iter().map(|s| c_string(s, 1)).collect();
    let execfn = c_string(&input.execfn, 1);
    let platform = input.platform.as_deref().map(|p| c_string(p, 1));
    let kernel: Vec<(u64, u64)> = input.kernel_auxv.iter().map(|&(key, value)| (u64::from(key % 48), value)).collect();
    let (phdr, phnum, base, entry, secure) = input.aux;
    let aux = ProgramAux { phdr, phnum, base, entry, secure };
    let auxv: Vec<(u64, u64)> = stack::program_auxv(kernel.iter().copied(), aux).collect();
    check_auxv(&kernel, &auxv, &aux);

    // The [stack] top: page-aligned, with the room any accepted image needs below it.
    let top = page_start(input.top % TASK_SIZE).max(64 << 20);
    let spec = StackImage {
        top,
        argv: argv.iter().map(Vec::as_slice),
        envp: envp.iter().map(Vec::as_slice),
        execfn: &execfn,
        platform: platform.as_deref(),
        random: input.random,
        gap: u64::from(input.gap) % 8192,
        auxv: auxv.iter().copied(),
    };
    let strings = argv.iter().chain(&envp).map(Vec::as_slice).chain([execfn.as_slice()]);
    let pointers = argv.len().max(1) as u64 + envp.len() as u64;
    if stack::check_args(strings, pointers, input.stack_limit).is_err() {
        return;
    }
    let layout = spec.layout();
    let size = layout.size(top);
    // Beyond the strings and pointers check_args counts: the top word, the gap and alignments,
    // platform, AT_RANDOM, auxv, argc and two NULLs, and the "" an empty argv gets.
    let fixed = 8
        + spec.gap
        + 15
        + platform.as_ref().map_or(0, |p| p.len() as u64 + 1)
        + 16
        + layout.auxv_len
        + 3 * 8
        + 1
        + 8
        + 15;
    assert!(
        (size as u64) <= stack::argument_space(input.stack_limit) + fixed,
        "image of {size} bytes exceeds what check_args accepted"
    );
    let mut image = vec![0u8; size];
    spec.write(&layout, &mut image);
    check_image(&image, &layout, top, &argv, &envp, &execfn, platform.as_deref(), &input.random, &auxv);
    check_kept(&argv, &envp, &execfn, platform.as_deref(), &input, &auxv);
});

/// `layout_keeping` with the strings `input.kept_mask` chooses in a kept area.
fn check_kept(
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    platform: Option<&[u8]>,
    input: &Input,
    auxv: &[(u64, u64)],
) {
    let chosen = |index: usize| input.kept_mask & (1 << (index % 63)) != 0;
    let execfn_kept = input.kept_mask & (1 << 63) != 0;
    // The area: a string of the preloader's own, the chosen strings, its execfn, 8 zero bytes.
    let mut area: Vec<u8> = b"preload\0".to_vec();
    let mut offsets = Vec::new();
    for (index, s) in argv.iter().chain(envp).enumerate() {
        offsets.push(chosen(index).then(|| area.len()));
        if chosen(index) {
            area.extend_from_slice(s);
            area.push(0);
        }
    }
    let execfn_at = execfn_kept.then(|| area.len());
    if execfn_kept {
        area.extend_from_slice(execfn);
        area.push(0);
    }
    area.extend_from_slice(b"/usr/bin/preload\0\0\0\0\0\0\0\0\0");
    let area = area; // no more moves: slices of it are addresses from here on
    let argv_slices: Vec<&[u8]> = argv
        .iter()
        .zip(&offsets)
        .map(|(s, at)| match at {
            Some(at) => &area[*at..*at + s.len()],
            None => s.as_slice(),
        })
        .collect();
    let envp_slices: Vec<&[u8]> = envp
        .iter()
        .zip(&offsets[argv.len()..])
        .map(|(s, at)| match at {
            Some(at) => &area[*at..*at + s.len()],
            None => s.as_slice(),
        })
        .collect();
    let execfn_slice: &[u8] = match execfn_at {
        Some(at) => &area[at..at + execfn.len()],
        None => execfn,
    };
    let before = area.clone();
    let kept = (area.as_ptr() as u64, area.as_ptr() as u64 + area.len() as u64);
    let spec = StackImage {
        top: kept.1,
        argv: argv_slices.iter().copied(),
        envp: envp_slices.iter().copied(),
        execfn: execfn_slice,
        platform,
        random: input.random,
        gap: u64::from(input.gap) % 8192,
        auxv: auxv.iter().copied(),
    };
    let l = spec.layout_keeping(kept);
    assert_eq!((l.end, l.kept), (kept.0, Some(kept)), "the image ends where the kept area starts");
    assert_eq!(l.sp % 16, 0, "stack pointer not 16-byte aligned");
    let mut image = vec![0u8; l.image_size()];
    spec.write(&l, &mut image);
    assert_eq!(area, before, "the kept area is never written");
    let v = View { image: &image, sp: l.sp };
    let in_place = |s: &[u8]| s.as_ptr() as u64;
    // argc, then each pointer: in place for a kept string, else into the image with its bytes.
    let shown: Vec<&[u8]> = if argv_slices.is_empty() { vec![b""] } else { argv_slices.clone() };
    assert_eq!(v.word(l.sp), shown.len() as u64);
    let mut word = l.sp + 8;
    for strings in [&shown, &envp_slices] {
        for s in strings.iter() {
            let pointer = v.word(word);
            let is_kept = in_place(s) >= kept.0 && in_place(s) < kept.1;
            if is_kept {
                assert_eq!(pointer, in_place(s), "a kept string must be pointed to in place");
            } else {
                assert!(pointer >= l.sp && pointer < l.end, "a copied string must be in the image");
                assert_eq!(v.c_str(pointer), *s);
            }
            word += 8;
        }
        assert_eq!(v.word(word), 0, "argv or envp not NULL-terminated");
        word += 8;
    }
    assert_eq!(word, l.auxv);
    match execfn_at {
        Some(_) => assert_eq!(l.execfn, in_place(execfn_slice)),
        None => assert_eq!(v.c_str(l.execfn), execfn),
    }
    if let Some(name) = platform {
        assert_eq!(v.c_str(l.platform), name);
    }
    assert_eq!(v.bytes(l.random, l.random + 16), &input.random);
    assert!(l.auxv + l.auxv_len <= l.random, "auxv overlaps the AT_RANDOM bytes");
}

fn check_auxv(kernel: &[(u64, u64)], auxv: &[(u64, u64)], aux: &ProgramAux) {
    let kept: Vec<u64> = kernel.iter().map(|p| p.0).take_while(|&k| k != AT_NULL).filter(|&k| k != AT_EXECFD).collect();
    assert_eq!(auxv.iter().map(|p| p.0).collect::<Vec<_>>(), kept, "auxv keys must be the kernel's, in its order");
    for (&(key, value), kernel_value) in auxv.iter().zip(kernel.iter().filter(|p| p.0 != AT_EXECFD).map(|p| p.1)) {
        let expected = match key {
            stack::AT_PHDR => aux.phdr,
            stack::AT_PHENT => 56,
            stack::AT_PHNUM => aux.phnum,
            stack::AT_BASE => aux.base,
            stack::AT_ENTRY => aux.entry,
            stack::AT_SECURE => aux.secure,
            _ => kernel_value,
        };
        assert_eq!(value, expected, "auxv key {key}");
    }
}

struct View<'i> {
    image: &'i [u8],
    sp: u64,
}

impl View<'_> {
    fn word(&self, addr: u64) -> u64 {
        let at = usize::try_from(addr - self.sp).unwrap();
        u64::from_ne_bytes(self.image[at..at + 8].try_into().unwrap())
    }

    fn bytes(&self, start: u64, end: u64) -> &[u8] {
        &self.image[(start - self.sp) as usize..(end - self.sp) as usize]
    }

    /// The C string at `addr`, which must be inside the image and terminated there.
    fn c_str(&self, addr: u64) -> &[u8] {
        assert!(addr >= self.sp && addr < self.sp + self.image.len() as u64, "pointer {addr:#x} outside the image");
        let rest = &self.image[(addr - self.sp) as usize..];
        &rest[..rest.iter().position(|&b| b == 0).expect("string without NUL")]
    }
}

fn joined(strings: &[Vec<u8>]) -> Vec<u8> {
    strings.iter().flat_map(|s| s.iter().copied().chain([0])).collect()
}

#[allow(clippy::too_many_arguments)]
fn check_image(
    image: &[u8],
    l: &StackLayout,
    top: u64,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    platform: Option<&[u8]>,
    random: &[u8; 16],
    auxv: &[(u64, u64)],
) {
    let v = View { image, sp: l.sp };
    assert_eq!(l.sp % 16, 0, "stack pointer not 16-byte aligned");
    assert_eq!(l.sp + image.len() as u64, top);
    // Order, from the top down, without overlaps.
    assert_eq!(&image[image.len() - 8..], &[0; 8], "top 8 bytes");
    assert_eq!(l.execfn + execfn.len() as u64 + 1, top - 8);
    assert_eq!((l.arg_end, l.env_end), (l.env_start, l.execfn));
    assert!(l.arg_start <= l.arg_end && l.env_start <= l.env_end);
    let below_strings = if platform.is_some() { l.platform } else { l.arg_start };
    assert!(l.random + 16 <= below_strings, "AT_RANDOM bytes overlap what lies above them");
    if let Some(name) = platform {
        assert!(l.platform + name.len() as u64 + 1 <= l.arg_start);
        assert_eq!(v.c_str(l.platform), name);
    }
    assert_eq!(l.auxv, l.sp + (1 + l.argc + 1 + envp.len() as u64 + 1) * 8);
    assert!(l.auxv + l.auxv_len <= l.random, "auxv overlaps the AT_RANDOM bytes");
    // Contents.
    assert_eq!(v.c_str(l.execfn), execfn);
    assert_eq!(v.bytes(l.random, l.random + 16), random);
    let shown_argv = if argv.is_empty() { vec![Vec::new()] } else { argv.to_vec() };
    assert_eq!(l.argc, shown_argv.len() as u64);
    assert_eq!(v.word(l.sp), l.argc);
    assert_eq!(v.bytes(l.arg_start, l.arg_end), joined(&shown_argv), "/proc/PID/cmdline");
    assert_eq!(v.bytes(l.env_start, l.env_end), joined(envp), "/proc/PID/environ");
    let mut word = l.sp + 8;
    for (expected, area) in shown_argv
        .iter()
        .map(|s| (s, (l.arg_start, l.arg_end)))
        .chain([(&Vec::new(), (0, 0))])
        .chain(envp.iter().map(|s| (s, (l.env_start, l.env_end))))
    {
        let pointer = v.word(word);
        if area == (0, 0) {
            assert_eq!(pointer, 0, "argv not NULL-terminated");
        } else {
            assert!(pointer >= area.0 && pointer < area.1, "pointer {pointer:#x} outside its string area");
            assert_eq!(v.c_str(pointer), expected.as_slice());
        }
        word += 8;
    }
    assert_eq!(v.word(word), 0, "envp not NULL-terminated");
    assert_eq!(word + 8, l.auxv);
    assert_eq!(l.auxv_len, (auxv.len() as u64 + 1) * 16);
    for (index, &(key, value)) in auxv.iter().chain([&(AT_NULL, 0)]).enumerate() {
        let at = l.auxv + 16 * index as u64;
        let expected = match key {
            AT_RANDOM => l.random,
            AT_EXECFN => l.execfn,
            AT_PLATFORM if platform.is_some() => l.platform,
            _ => value,
        };
        assert_eq!((v.word(at), v.word(at + 8)), (key, expected), "auxv entry {index}");
    }
}
