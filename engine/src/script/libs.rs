//! Libraries Redis gives scripts besides Lua's own: `bit` (LuaBitOp), and
//! `cjson` / `cmsgpack` (see [`super::codecs`]).

use mlua::{Lua, Table, Value, Variadic};

/// LuaBitOp's number normalisation: to a 32-bit signed integer, modulo
/// 2^32 (rounded as the `2^52+2^51` trick rounds).
fn tobit(v: &Value) -> mlua::Result<i32> {
    let n = match v {
        Value::Integer(n) => *n as f64,
        Value::Number(n) => *n,
        Value::String(s) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                mlua::Error::runtime("bad argument to bit operation (number expected)")
            })?,
        _ => {
            return Err(mlua::Error::runtime(
                "bad argument to bit operation (number expected)",
            ))
        }
    };
    let r = n.round_ties_even();
    Ok(r.rem_euclid(4_294_967_296.0) as u64 as u32 as i32)
}

fn set_fn<A, R>(
    lua: &Lua,
    t: &Table,
    name: &str,
    f: impl Fn(&Lua, A) -> mlua::Result<R> + Send + 'static,
) -> mlua::Result<()>
where
    A: mlua::FromLuaMulti,
    R: mlua::IntoLuaMulti,
{
    t.raw_set(name, lua.create_function(f)?)
}

fn fold(args: &Variadic<Value>, op: fn(i32, i32) -> i32) -> mlua::Result<i32> {
    let mut it = args.iter();
    let first = it
        .next()
        .ok_or_else(|| mlua::Error::runtime("bad argument #1 (number expected, got no value)"))?;
    let mut acc = tobit(first)?;
    for v in it {
        acc = op(acc, tobit(v)?);
    }
    Ok(acc)
}

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    set_fn(lua, &t, "tobit", |_, v: Value| tobit(&v))?;
    set_fn(lua, &t, "bnot", |_, v: Value| Ok(!tobit(&v)?))?;
    set_fn(lua, &t, "band", |_, a: Variadic<Value>| {
        fold(&a, |x, y| x & y)
    })?;
    set_fn(lua, &t, "bor", |_, a: Variadic<Value>| {
        fold(&a, |x, y| x | y)
    })?;
    set_fn(lua, &t, "bxor", |_, a: Variadic<Value>| {
        fold(&a, |x, y| x ^ y)
    })?;
    set_fn(lua, &t, "lshift", |_, (a, n): (Value, Value)| {
        Ok(((tobit(&a)? as u32) << (tobit(&n)? as u32 & 31)) as i32)
    })?;
    set_fn(lua, &t, "rshift", |_, (a, n): (Value, Value)| {
        Ok(((tobit(&a)? as u32) >> (tobit(&n)? as u32 & 31)) as i32)
    })?;
    set_fn(lua, &t, "arshift", |_, (a, n): (Value, Value)| {
        Ok(tobit(&a)? >> (tobit(&n)? as u32 & 31))
    })?;
    set_fn(lua, &t, "rol", |_, (a, n): (Value, Value)| {
        Ok((tobit(&a)? as u32).rotate_left(tobit(&n)? as u32 & 31) as i32)
    })?;
    set_fn(lua, &t, "ror", |_, (a, n): (Value, Value)| {
        Ok((tobit(&a)? as u32).rotate_right(tobit(&n)? as u32 & 31) as i32)
    })?;
    set_fn(lua, &t, "bswap", |_, a: Value| {
        Ok((tobit(&a)? as u32).swap_bytes() as i32)
    })?;
    set_fn(lua, &t, "tohex", |_, (a, n): (Value, Option<Value>)| {
        let x = tobit(&a)? as u32;
        let n = match n {
            Some(v) => tobit(&v)?,
            None => 8,
        };
        let (upper, n) = if n < 0 { (true, -n) } else { (false, n) };
        let n = n.clamp(1, 8) as usize;
        let s = format!("{:08x}", x);
        let s = s[8 - n..].to_string();
        Ok(if upper { s.to_uppercase() } else { s })
    })?;
    Ok(t)
}

/// Puts the libraries in the globals (the sandbox protects them after).
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("bit", bit(lua)?)?;
    super::codecs::install(lua)?;
    Ok(())
}
