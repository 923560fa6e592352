//! What the preloader says: why a program cannot run ([`refusal`]) and the small message
//! buffer every line is written into ([`msg`]).

pub mod msg;
pub mod refusal;
