//! The third step, plan: the randomisation the kernel would apply, where the program goes, and
//! the ranges to keep free.

use preload::plan::Random;
use preload::plan::load::{Placement, mmap_rnd};
use preload::plan::reserve::RangeList;
use preload::report::refusal::Refusal;
use rustix::io::Errno;

use crate::exec::{Request, Resolved};
use crate::load::Inspected;
use crate::report::Error;
use crate::sys::io::read_file;

/// The x86_64 stack top without randomisation (STACK_TOP with 4-level paging). The kernel put the
/// preloader's own stack exactly there when it did not randomise (personality ADDR_NO_RANDOMIZE,
/// as `setarch -R` sets, or randomize_va_space=0), so the stack top alone tells, with no
/// personality(2) call.
const UNRANDOMIZED_STACK_TOP: u64 = 0x7fff_ffff_f000;

pub struct Plan {
    /// The end of the [stack] mapping, where the program's stack image ends.
    pub top: u64,
    pub randomize: bool,
    pub random: Random,
    pub placement: Placement,
    /// --reserve and PRELOAD_RESERVE (Wine's ranges are added when a Wine loader is mapped).
    pub reserved: RangeList,
    /// Where the randomness came from.
    pub random_source: RandomSource,
}

/// Where a launch's random bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RandomSource {
    Getrandom,
    /// getrandom was refused (ENOSYS before Linux 3.17, or a seccomp filter): AT_RANDOM is the
    /// kernel's own for preload's exec, the offsets (when randomising) read from /dev/urandom.
    Fallback(Errno),
}

pub fn plan<'b>(request: &Request, resolved: &Resolved<'b>, inspected: &Inspected) -> Result<Plan, Error<'b>> {
    let fail = |refusal| Error::at(resolved.exe_path, refusal);
    let top = request.stack.stack_top().ok_or(fail(Refusal::failure("no AT_EXECFN in the preloader's auxv")))?;
    let randomize = top != UNRANDOMIZED_STACK_TOP;
    let (random, random_source) = random_values(request, randomize).map_err(fail)?;
    let image = &inspected.image;
    let rnd = if randomize { mmap_rnd(random.mmap) } else { 0 };
    let has_interpreter = inspected.interpreter.is_some();
    let placement =
        Placement::of_program(image.relocatable, has_interpreter, request.options.base, &inspected.extent, rnd)
            .map_err(|reason| fail(Refusal::failure(reason)))?;
    let mut reserved = request.options.reserve;
    if let Some(list) = request.stack.getenv(b"PRELOAD_RESERVE") {
        reserved.extend_from_list(list).map_err(|reason| Error::at(b"PRELOAD_RESERVE", Refusal::failure(reason)))?;
    }
    Ok(Plan { top, randomize, random, placement, reserved, random_source })
}

/// The launch's random bytes, from getrandom. Where it is refused, AT_RANDOM is the 16 bytes the
/// kernel drew for preload's own exec, which nothing has used (as random as the kernel's for
/// this exec, and never derived from anything the program can see), and the offsets, needed only
/// when randomising, come from /dev/urandom; without either, nothing runs (125).
fn random_values(request: &Request, randomize: bool) -> Result<(Random, RandomSource), Refusal> {
    let mut bytes = [0u8; Random::BYTES];
    let why = match rustix::rand::getrandom(&mut bytes[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(Random::BYTES) => return Ok((Random::from_bytes(&bytes), RandomSource::Getrandom)),
        Ok(_) => Errno::IO,
        Err(errno) => errno,
    };
    let rest = match request.stack.at_random() {
        Some(kernel) => {
            bytes[..16].copy_from_slice(&kernel);
            16
        }
        None => 0,
    };
    if rest < Random::BYTES && (randomize || rest == 0) {
        read_file(c"/dev/urandom", &mut bytes[rest..])
            .map_err(|_| Refusal::failure("no randomness: getrandom is refused and /dev/urandom cannot be read"))?;
    }
    Ok((Random::from_bytes(&bytes), RandomSource::Fallback(why)))
}
