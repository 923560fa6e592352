//! The third step, plan: the randomisation the kernel would apply, where the program goes, and
//! the ranges to keep free.

use preload::plan::Random;
use preload::plan::load::{Placement, mmap_rnd};
use preload::plan::reserve::RangeList;
use preload::report::refusal::Refusal;

use crate::exec::{Request, Resolved};
use crate::load::Inspected;
use crate::report::Error;

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
}

pub fn plan<'b>(request: &Request, resolved: &Resolved<'b>, inspected: &Inspected) -> Result<Plan, Error<'b>> {
    let fail = |refusal| Error::at(resolved.exe_path, refusal);
    let top = request.stack.stack_top().ok_or(fail(Refusal::failure("no AT_EXECFN in the preloader's auxv")))?;
    let randomize = top != UNRANDOMIZED_STACK_TOP;
    let random = random_values().map_err(fail)?;
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
    Ok(Plan { top, randomize, random, placement, reserved })
}

fn random_values() -> Result<Random, Refusal> {
    let mut bytes = [0u8; Random::BYTES];
    match rustix::rand::getrandom(&mut bytes[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(Random::BYTES) => Ok(Random::from_bytes(&bytes)),
        _ => Err(Refusal::failure("getrandom failed")),
    }
}
