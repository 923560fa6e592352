//! The plan for one launch: where the segments go and the mm fields ([`load`]), the initial
//! stack image ([`stack`]), the address ranges kept free ([`reserve`]) and the credentials the
//! program gets ([`credentials`]).

pub mod credentials;
pub mod finish;
pub mod load;
pub mod reserve;
pub mod stack;
