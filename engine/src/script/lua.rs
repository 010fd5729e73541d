//! The Lua state: its sandbox (`prelude.lua`), the conversions between
//! Lua values and replies as Redis 7.0 makes them, and running one script
//! or function against a [`Host`] that executes its `redis.call`s.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use mlua::{
    ChunkMode, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic,
    VmState,
};

use super::{libs, Busy, Host};
use crate::cmd::{self, Flags};
use crate::reply::Reply;
use crate::resp::format_double;

/// Chunk name of the sandbox's own code (its frames are not a script's
/// error position).
const PRELUDE_NAME: &str = "=redis_lib";
/// Nesting of a returned table converted before the conversion gives up
/// (Redis stops at its Lua stack limit).
const MAX_DEPTH: usize = 100;
/// Instructions between two checks of SCRIPT KILL.
const HOOK_EVERY: u32 = 1000;

/// Commands a script may not call (Redis's `noscript` flag), besides the
/// blocking ones.
const DENIED: &[&str] = &[
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "script",
    "function",
    "client",
    "hello",
    "auth",
    "quit",
    "reset",
    "wait",
    "monitor",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "shutdown",
    "save",
    "bgsave",
    "bgrewriteaof",
    "replicaof",
    "slaveof",
    "sync",
    "psync",
    "cluster",
    "debug",
];

/// Redis's rand48 (`redisLrand48`), the PRNG of `math.random`.
#[derive(Debug)]
pub struct Rand48(u64);

impl Rand48 {
    const A: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;

    pub fn seeded(seed: i32) -> Rand48 {
        Rand48(((u64::from(seed as u32)) << 16 | 0x330E) & Self::MASK)
    }

    /// The next value in 0..2^31.
    pub fn draw(&mut self) -> u32 {
        self.0 = (self.0.wrapping_mul(Self::A).wrapping_add(0xB)) & Self::MASK;
        (self.0 >> 17) as u32
    }
}

/// One Lua state with its sandbox.
pub struct Vm {
    lua: Lua,
    /// Per-run slots the sandbox reads: `raw` (the command runner), `resp`,
    /// `known`, `register`.
    ctx: Table,
    /// The scripts' globals: `_G`, `KEYS`, `ARGV`.
    own: Table,
    /// What scripts are loaded with as their environment.
    env: Table,
    run: Function,
    handler: Function,
    /// The `redis` table behind its read-only view (call and pcall are set
    /// for each run).
    redis: Table,
}

/// How a run ended.
pub struct Outcome {
    pub reply: Reply,
    /// Effects of the writes it made, in order.
    pub payloads: Vec<Vec<u8>>,
}

/// What a script may do and how its errors name it.
pub struct RunSpec<'a> {
    /// Read-only (EVAL_RO, FCALL_RO, `no-writes`): writes are refused.
    pub read_only: bool,
    /// The script's sha or the function's name, in error replies.
    pub name: &'a str,
    /// The calling client's protocol is RESP3 (booleans and nulls of the
    /// returned value).
    pub client_resp3: bool,
}

fn lua_err(e: mlua::Error) -> Reply {
    Reply::Error(format!("ERR {e}"))
}

impl Vm {
    pub fn new(busy: Arc<Busy>) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        libs::install(&lua)?;
        let ctx = lua.create_table()?;
        let sha1 = lua.create_function(|_, args: Variadic<Value>| {
            if args.len() != 1 {
                return Err(redis_error("ERR wrong number of arguments".into()));
            }
            let b = match &args[0] {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(n) => n.to_string().into_bytes(),
                Value::Number(n) => n.to_string().into_bytes(),
                _ => Vec::new(),
            };
            Ok(sha1_hex(&b))
        })?;
        let errtext = lua.create_function(|_, v: Value| {
            Ok(match &v {
                Value::Error(e) => error_message(e),
                other => value_text(other),
            })
        })?;
        ctx.raw_set("errtext", errtext)?;
        let c2 = ctx.clone();
        let setresp = lua.create_function(move |_, args: Variadic<Value>| {
            if c2.raw_get::<Value>("raw")?.is_nil() {
                return Err(redis_error(
                    "ERR redis.setresp can only be called inside a script invocation".into(),
                ));
            }
            if args.len() != 1 {
                return Err(redis_error(
                    "ERR redis.setresp() requires one argument.".into(),
                ));
            }
            let r = match &args[0] {
                Value::Integer(n) => *n,
                Value::Number(n) => *n as i64,
                Value::String(s) => s.to_str().ok().and_then(|s| s.parse().ok()).unwrap_or(0),
                _ => 0,
            };
            if r != 2 && r != 3 {
                return Err(redis_error("ERR RESP version must be 2 or 3.".into()));
            }
            c2.raw_set("resp", r)?;
            Ok(())
        })?;
        ctx.raw_set("setresp", setresp)?;
        let log = lua.create_function(|_, args: Variadic<Value>| {
            let mut level = 0i64;
            let mut text = Vec::new();
            for (i, v) in args.iter().enumerate() {
                match (i, v) {
                    (0, Value::Integer(n)) => level = *n,
                    (0, Value::Number(n)) => level = *n as i64,
                    (0, _) => {}
                    (_, Value::String(s)) => {
                        if !text.is_empty() {
                            text.push(b' ');
                        }
                        text.extend_from_slice(&s.as_bytes());
                    }
                    (_, Value::Integer(n)) => text.extend_from_slice(n.to_string().as_bytes()),
                    (_, Value::Number(n)) => text.extend_from_slice(n.to_string().as_bytes()),
                    _ => {}
                }
            }
            let text = String::from_utf8_lossy(&text);
            match level {
                3 => tracing::warn!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::debug!(target: "script", "{text}"),
            }
            Ok(())
        })?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as i32 ^ std::process::id() as i32)
            .unwrap_or(0);
        let rng = Arc::new(Mutex::new(Rand48::seeded(seed)));
        let r1 = rng.clone();
        let rand = lua.create_function(move |_, ()| {
            Ok(f64::from(
                r1.lock().unwrap_or_else(|p| p.into_inner()).draw(),
            ))
        })?;
        let seed = lua.create_function(move |_, s: f64| {
            *rng.lock().unwrap_or_else(|p| p.into_inner()) = Rand48::seeded(s as i64 as i32);
            Ok(())
        })?;
        let known = lua.create_function(|_, name: Value| {
            Ok(match name {
                Value::String(s) => cmd::lookup(&s.as_bytes()).is_some(),
                _ => false,
            })
        })?;
        ctx.raw_set("known", known)?;
        ctx.raw_set("resp", 2)?;
        let (env, own, run, redis): (Table, Table, Function, Table) = lua
            .load(include_str!("prelude.lua"))
            .set_name(PRELUDE_NAME)
            .set_mode(ChunkMode::Text)
            .call((
                ctx.clone(),
                sha1,
                log,
                rand,
                seed,
                cmd::REDIS_VERSION,
                redis_version_num(),
            ))?;
        let handler = lua.create_function(error_handler)?;
        let b = busy.clone();
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if b.kill.load(Ordering::SeqCst) {
                    Err(mlua::Error::runtime(KILLED))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )?;
        Ok(Vm {
            lua,
            ctx,
            own,
            env,
            run,
            handler,
            redis,
        })
    }

    /// Compiles a script body (`@user_script`) or a library
    /// (`@user_function`), text only.
    pub fn compile(&self, body: &[u8], chunk: &str) -> Result<Function, String> {
        self.lua
            .load(body)
            .set_name(chunk)
            .set_mode(ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => other.to_string(),
            })
    }

    /// Runs a library's code with `redis.register_function` calling
    /// `register(name, callback, flags, description)` (which returns an
    /// error text or nothing).
    pub fn load_library(
        &self,
        f: &Function,
        mut register: impl FnMut(String, Function, Vec<String>) -> Option<String>,
    ) -> Result<(), String> {
        let r = self.lua.scope(|scope| {
            let reg = scope.create_function_mut(
                |_, (name, cb, flags, _desc): (String, Function, Vec<String>, Option<String>)| {
                    Ok(register(name, cb, flags))
                },
            )?;
            self.ctx.raw_set("register", reg)?;
            let r = self.run.call::<(bool, Value)>((
                f.clone(),
                self.handler.clone(),
                0,
                Value::Nil,
                Value::Nil,
            ));
            self.ctx.raw_set("register", Value::Nil)?;
            r
        });
        match r {
            Ok((true, _)) => Ok(()),
            Ok((false, err)) => Err(error_text(&err)),
            Err(e) => Err(format!("ERR {e}")),
        }
    }

    /// Runs `f`: a script (keys and args as the globals KEYS and ARGV) or
    /// a function (`function == true`: as its two arguments).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        f: &Function,
        function: bool,
        keys: &[Vec<u8>],
        args: &[Vec<u8>],
        spec: &RunSpec<'_>,
        busy: &Busy,
        host: &mut dyn Host,
    ) -> Outcome {
        let calls = std::cell::RefCell::new(Calls {
            host,
            payloads: Vec::new(),
            bytes: 0,
            read_only: spec.read_only,
            busy,
        });
        let r: mlua::Result<Reply> = self.lua.scope(|scope| {
            let lua = &self.lua;
            let seq = |items: &[Vec<u8>]| -> mlua::Result<Table> {
                lua.create_sequence_from(
                    items
                        .iter()
                        .map(|k| lua.create_string(k))
                        .collect::<mlua::Result<Vec<_>>>()?,
                )
            };
            let keys_t = seq(keys)?;
            let args_t = seq(args)?;
            if !function {
                self.own.raw_set("KEYS", keys_t.clone())?;
                self.own.raw_set("ARGV", args_t.clone())?;
            }
            let ctx = &self.ctx;
            let call = scope.create_function(|lua, argv: Variadic<Value>| {
                let resp3 = matches!(ctx.raw_get::<Value>("resp")?, Value::Integer(3));
                match calls.borrow_mut().call(lua, &argv, resp3)? {
                    Ok(v) => Ok(v),
                    Err(e) => Err(redis_error(error_buff(&e))),
                }
            })?;
            let pcall = scope.create_function(|lua, argv: Variadic<Value>| {
                let resp3 = matches!(ctx.raw_get::<Value>("resp")?, Value::Integer(3));
                match calls.borrow_mut().call(lua, &argv, resp3)? {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        let t = lua.create_table()?;
                        t.raw_set("err", lua.create_string(error_buff(&e))?)?;
                        Ok(Value::Table(t))
                    }
                }
            })?;
            self.ctx.raw_set("resp", 2)?;
            self.ctx.raw_set("raw", true)?;
            self.redis.raw_set("call", call)?;
            self.redis.raw_set("pcall", pcall)?;
            let result = self.run.call::<MultiValue>((
                f.clone(),
                self.handler.clone(),
                if function { 2 } else { 0 },
                keys_t,
                args_t,
            ));
            self.ctx.raw_set("raw", Value::Nil)?;
            self.redis.raw_set("call", Value::Nil)?;
            self.redis.raw_set("pcall", Value::Nil)?;
            let resp3 = matches!(self.ctx.raw_get::<Value>("resp")?, Value::Integer(3));
            let mut vals = result?.into_iter();
            let ok = matches!(vals.next(), Some(Value::Boolean(true)));
            let v = vals.next().unwrap_or(Value::Nil);
            if ok {
                return Ok(lua_to_reply(&v, !resp3, spec.client_resp3, 0));
            }
            Ok(script_error(
                &v,
                spec.name,
                busy.kill.load(Ordering::SeqCst),
            ))
        });
        let payloads = calls.into_inner().payloads;
        if !function {
            let _ = self.own.raw_set("KEYS", Value::Nil);
            let _ = self.own.raw_set("ARGV", Value::Nil);
        }
        let _ = self.lua.gc_step_kbytes(0);
        Outcome {
            reply: r.unwrap_or_else(lua_err),
            payloads,
        }
    }

    /// Bytes the Lua state uses (INFO used_memory_lua).
    pub fn memory(&self) -> usize {
        self.lua.used_memory()
    }
}

const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// The state of a run's `redis.call`s.
struct Calls<'a> {
    host: &'a mut dyn Host,
    payloads: Vec<Vec<u8>>,
    bytes: usize,
    read_only: bool,
    busy: &'a Busy,
}

impl Calls<'_> {
    /// Runs one `redis.call`: its converted reply, or the error text
    /// (`-CODE msg` for a command's error reply, a bare message for the
    /// script engine's own errors).
    fn call(
        &mut self,
        lua: &Lua,
        argv: &[Value],
        resp3: bool,
    ) -> mlua::Result<Result<Value, Vec<u8>>> {
        if self.busy.kill.load(Ordering::SeqCst) {
            return Err(mlua::Error::runtime(KILLED));
        }
        let argv = match call_args(argv) {
            Ok(a) => a,
            Err(msg) => return Ok(Err(msg.as_bytes().to_vec())),
        };
        let spec = match check_call(&argv, self.read_only) {
            Ok(s) => s,
            Err(msg) => return Ok(Err(msg.as_bytes().to_vec())),
        };
        let budget = super::MAX_SCRIPT_BYTES.saturating_sub(self.bytes);
        let (reply, payload) = self.host.call(spec, argv, budget);
        if let Some(p) = payload {
            self.bytes += p.len() + 4;
            self.busy.wrote.store(true, Ordering::SeqCst);
            self.payloads.push(p);
        }
        Ok(match reply {
            Reply::Error(e) => Err(format!("-{e}").into_bytes()),
            Reply::ErrorBytes(e) => {
                let mut m = b"-".to_vec();
                m.extend_from_slice(&e);
                Err(m)
            }
            r => Ok(reply_to_lua(lua, r, resp3)?),
        })
    }
}

/// An error `redis.call` raises: its text is the error table's `err`.
#[derive(Debug)]
struct RedisError(String);

impl std::fmt::Display for RedisError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisError {}

fn redis_error(msg: String) -> mlua::Error {
    mlua::Error::external(RedisError(msg))
}

/// The Redis error text inside an mlua error raised by a callback.
fn redis_error_text(e: &mlua::Error) -> Option<String> {
    match e {
        mlua::Error::CallbackError { cause, .. } => redis_error_text(cause),
        mlua::Error::WithContext { cause, .. } => redis_error_text(cause),
        mlua::Error::ExternalError(x) => x.downcast_ref::<RedisError>().map(|r| r.0.clone()),
        _ => None,
    }
}

/// The message of an mlua error as a script sees it.
fn error_message(e: &mlua::Error) -> String {
    if let Some(t) = redis_error_text(e) {
        return t;
    }
    match e {
        mlua::Error::CallbackError { cause, .. } => error_message(cause),
        mlua::Error::WithContext { cause, .. } => error_message(cause),
        mlua::Error::RuntimeError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Redis's `luaPushErrorBuff`: `-CODE msg` keeps its code, anything else
/// gets `ERR`; CR/LF trimmed from the ends.
fn error_buff(e: &[u8]) -> String {
    let s = String::from_utf8_lossy(e);
    let (code, msg) = match s.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((c, m)) => (c.to_string(), m.to_string()),
            None => ("ERR".to_string(), rest.to_string()),
        },
        None => ("ERR".to_string(), s.into_owned()),
    };
    format!("{code} {}", msg.trim_matches(|c| c == '\r' || c == '\n'))
}

/// The error reply of a script whose run failed with `err` (the error
/// handler's table): `<err> script: <name>, on <source>:<line>.`
fn script_error(err: &Value, name: &str, killed: bool) -> Reply {
    let (mut msg, source, line) = match err {
        Value::Table(t) => (
            t.raw_get::<Option<mlua::String>>("err")
                .ok()
                .flatten()
                .map(|s| s.as_bytes().to_vec()),
            t.raw_get::<Option<mlua::String>>("source")
                .ok()
                .flatten()
                .map(|s| s.to_string_lossy()),
            t.raw_get::<Option<i64>>("line").ok().flatten(),
        ),
        other => (
            Some(format!("ERR {}", value_text(other)).into_bytes()),
            None,
            None,
        ),
    };
    if killed {
        msg = Some(format!("ERR {KILLED}").into_bytes());
    }
    let mut out = msg.unwrap_or_else(|| b"ERR unknown error".to_vec());
    if let (Some(s), Some(l)) = (source, line) {
        out.extend_from_slice(format!(" script: {name}, on {s}:{l}.").as_bytes());
    }
    Reply::error_bytes(out)
}

/// The text of an error value from a library load (`err` of a table).
fn error_text(err: &Value) -> String {
    match err {
        Value::Table(t) => t
            .raw_get::<Option<mlua::String>>("err")
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy())
            .unwrap_or_else(|| "ERR unknown error".into()),
        other => format!("ERR {}", value_text(other)),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Error(e) => e.to_string(),
        other => other
            .to_string()
            .unwrap_or_else(|_| "execution failure".into()),
    }
}

/// The error handler of every run (Redis's `__redis__err__handler`): a
/// non-table error becomes `{err='ERR ' .. tostring(err)}`, and the table
/// gets the source and line of the script frame that raised it.
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            if let Value::Error(e) = &other {
                if let Some(msg) = redis_error_text(e) {
                    let t = lua.create_table()?;
                    t.raw_set("err", msg)?;
                    return locate(lua, t);
                }
            }
            let text = match &other {
                Value::String(s) => s.to_string_lossy(),
                Value::Error(e) => error_message(e),
                Value::UserData(_) => {
                    let ts: Function = lua.globals().raw_get("tostring")?;
                    ts.call::<String>(other.clone())?
                }
                o => o.to_string().unwrap_or_default(),
            };
            let t = lua.create_table()?;
            t.raw_set("err", format!("ERR {text}"))?;
            t
        }
    };
    locate(lua, t)
}

/// Adds the source and line of the innermost script frame to `t`.
fn locate(lua: &Lua, t: Table) -> mlua::Result<Table> {
    for level in 1..64 {
        let frame = lua.inspect_stack(level, |d| {
            let s = d.source();
            (s.what, s.source.map(|c| c.into_owned()), d.current_line())
        });
        let Some((what, source, line)) = frame else {
            break;
        };
        if what == "C" || source.as_deref() == Some(PRELUDE_NAME) {
            continue;
        }
        if let Some(s) = source {
            t.raw_set("source", s)?;
        }
        if let Some(l) = line {
            t.raw_set("line", l as i64)?;
        }
        break;
    }
    Ok(t)
}

/// The arguments of a `redis.call`: strings as they are, numbers as
/// `%.17g` (Redis does not use Lua's lossy number format).
fn call_args(args: &[Value]) -> Result<Vec<Vec<u8>>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    args.iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            Value::Integer(n) => Ok(format_double(*n as f64).into_bytes()),
            Value::Number(n) => Ok(format_double(*n).into_bytes()),
            _ => Err("Lua redis lib command arguments must be strings or integers"),
        })
        .collect()
}

/// The table line of a script's command, or why a script may not run it.
fn check_call(args: &[Vec<u8>], read_only: bool) -> Result<&'static cmd::Spec, &'static str> {
    let lower = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    if DENIED.contains(&lower.as_str()) {
        return Err("This Redis command is not allowed from script");
    }
    let Some(spec) = cmd::lookup(&args[0]) else {
        return Err("Unknown Redis command called from script");
    };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err("Wrong number of args calling Redis command from script");
    }
    if read_only && spec.flags.contains(Flags::WRITE) {
        return Err("Write commands are not allowed from read-only scripts.");
    }
    Ok(spec)
}

/// A command's reply as the script sees it (Redis's
/// `redisProtocolToLuaType`), in the script's protocol.
pub fn reply_to_lua(lua: &Lua, r: Reply, resp3: bool) -> mlua::Result<Value> {
    let single = |k: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(k, v)?;
        Ok(Value::Table(t))
    };
    let str = |b: &[u8]| -> mlua::Result<Value> { Ok(Value::String(lua.create_string(b)?)) };
    let array = |items: Vec<Reply>| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, r) in items.into_iter().enumerate() {
            t.raw_set(i + 1, reply_to_lua(lua, r, resp3)?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Ok => single("ok", str(b"OK")?)?,
        Reply::Status(s) => single("ok", str(s.as_bytes())?)?,
        Reply::Error(e) => single("err", str(e.as_bytes())?)?,
        Reply::ErrorBytes(e) => single("err", str(&e)?)?,
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Int(n) => Value::Number(n as f64),
        Reply::Bulk(b) => str(&b)?,
        Reply::Array(items) | Reply::Push(items) => array(items)?,
        Reply::Set(items) if resp3 => {
            let t = lua.create_table()?;
            for r in items {
                t.raw_set(reply_to_lua(lua, r, resp3)?, true)?;
            }
            single("set", Value::Table(t))?
        }
        Reply::Set(items) => array(items)?,
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                t.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
            }
            single("map", Value::Table(t))?
        }
        Reply::Map(pairs) => array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())?,
        Reply::Pairs(pairs) if resp3 => array(
            pairs
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
        )?,
        Reply::Pairs(pairs) => array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())?,
        Reply::Double(d) if resp3 => single("double", Value::Number(d))?,
        Reply::Double(d) => str(format_double(d).as_bytes())?,
        Reply::Bool(b) if resp3 => Value::Boolean(b),
        Reply::Bool(b) => Value::Number(if b { 1.0 } else { 0.0 }),
        Reply::BigNumber(n) if resp3 => single("big_number", str(n.as_bytes())?)?,
        Reply::BigNumber(n) => str(n.as_bytes())?,
        Reply::Verbatim(format, text) if resp3 => {
            let t = lua.create_table()?;
            t.raw_set("format", format)?;
            t.raw_set("string", lua.create_string(&text)?)?;
            single("verbatim_string", Value::Table(t))?
        }
        Reply::Verbatim(_, text) => str(&text)?,
    })
}

/// A script's returned value as a reply (Redis's `luaReplyToRedisReply`):
/// numbers truncated to integers, `false` the null of the client's
/// protocol (RESP2 scripts), tables with `err`/`ok`/`double`/`map`/`set`/…
/// fields, arrays up to their first nil. `resp2`: the script's protocol.
pub fn lua_to_reply(v: &Value, resp2: bool, client_resp3: bool, depth: usize) -> Reply {
    let _ = client_resp3;
    if depth > MAX_DEPTH {
        return Reply::error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(s.as_bytes().to_vec()),
        Value::Boolean(true) if resp2 => Reply::Int(1),
        Value::Boolean(false) if resp2 => Reply::Nil,
        Value::Boolean(b) => Reply::Bool(*b),
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => {
            let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
            if let Value::String(e) = field("err") {
                return Reply::error_bytes(e.as_bytes().to_vec());
            }
            if let Value::String(s) = field("ok") {
                let s: String = s
                    .to_string_lossy()
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                return Reply::Status(s);
            }
            match field("double") {
                Value::Number(d) => return Reply::Double(d),
                Value::Integer(d) => return Reply::Double(d as f64),
                _ => {}
            }
            if let Value::String(s) = field("big_number") {
                let s: String = s
                    .to_string_lossy()
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                return Reply::BigNumber(s);
            }
            if let Value::Table(vt) = field("verbatim_string") {
                if let (Ok(Value::String(f)), Ok(Value::String(s))) =
                    (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
                {
                    let format = match &*f.as_bytes() {
                        b"mkd" => "mkd",
                        _ => "txt",
                    };
                    return Reply::Verbatim(format, s.as_bytes().to_vec());
                }
            }
            if let Value::Table(m) = field("map") {
                let mut pairs = Vec::new();
                for (k, v) in m.pairs::<Value, Value>().flatten() {
                    pairs.push((
                        lua_to_reply(&k, resp2, client_resp3, depth + 1),
                        lua_to_reply(&v, resp2, client_resp3, depth + 1),
                    ));
                }
                return Reply::Map(pairs);
            }
            if let Value::Table(s) = field("set") {
                let mut items = Vec::new();
                for (k, _) in s.pairs::<Value, Value>().flatten() {
                    items.push(lua_to_reply(&k, resp2, client_resp3, depth + 1));
                }
                return Reply::Set(items);
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(lua_to_reply(&v, resp2, client_resp3, depth + 1)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

/// SHA1 of `b` in lower-case hex.
pub fn sha1_hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

/// `REDIS_VERSION_NUM`: 0x00MMmmpp.
fn redis_version_num() -> i64 {
    let mut parts = cmd::REDIS_VERSION
        .split('.')
        .map(|p| p.parse::<i64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a << 16) | (b << 8) | c
}
