//! SETEX key seconds value, PSETEX key milliseconds value, GETSET key
//! value: logged as SET (op 1) with the expiry absolute / the GET flag.

use super::set::{expire_ms, ExpireUnit};
use super::{effect, Action, Command, EffectSpec, Flags, Keys, Set};
use crate::reply::Reply;

fn parse_setex(
    mut args: Vec<Vec<u8>>,
    now: u64,
    unit: ExpireUnit,
    name: &str,
) -> Result<Action, Reply> {
    let at = expire_ms(unit, &args[2], now, name)?;
    let value = args.swap_remove(3);
    let mut set = Set::new(args.swap_remove(1), value);
    set.expire_at_ms = Some(at);
    Ok(Action::write(set))
}

/// SETEX key seconds value
pub struct SetEx;

impl Command for SetEx {
    const NAME: &'static str = "setex";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Set>());

    fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        parse_setex(args, now, ExpireUnit::Ex, Self::NAME)
    }
}

/// PSETEX key milliseconds value
pub struct PSetEx;

impl Command for PSetEx {
    const NAME: &'static str = "psetex";
    const ARITY: i64 = 4;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Set>());

    fn parse(args: Vec<Vec<u8>>, now: u64) -> Result<Action, Reply> {
        parse_setex(args, now, ExpireUnit::Px, Self::NAME)
    }
}

/// GETSET key value (SET key value GET)
pub struct GetSet;

impl Command for GetSet {
    const NAME: &'static str = "getset";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::WRITE;
    const KEYS: Keys = Keys::ONE;
    const EFFECT: Option<EffectSpec> = Some(effect::<Set>());

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let value = args.swap_remove(2);
        let mut set = Set::new(args.swap_remove(1), value);
        set.get = true;
        Ok(Action::write(set))
    }
}
