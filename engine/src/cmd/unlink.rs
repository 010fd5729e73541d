//! UNLINK key [key ...]: DEL (values are freed at once), logged as DEL.

use super::{effect, Action, Command, Del, EffectSpec, Flags, Keys};
use crate::reply::Reply;

pub struct Unlink;

impl Command for Unlink {
    const NAME: &'static str = "unlink";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::range(1, -1, 1);
    const EFFECT: Option<EffectSpec> = Some(effect::<Del>());

    fn parse(args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::write(Del {
            keys: args.into_iter().skip(1).collect(),
        }))
    }
}
