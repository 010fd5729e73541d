//! Lua scripting: EVAL/EVALSHA/EVAL_RO/EVALSHA_RO, SCRIPT, FUNCTION and
//! FCALL/FCALL_RO, on an embedded Lua 5.1 (mlua, vendored).
//!
//! A script runs atomically under the execution core's state lock (like
//! EXEC): each `redis.call` is executed by the core ([`Host::call`]: parse,
//! precheck, apply, watched keys) at the time of the script, and the writes
//! it makes are logged as ONE record of their effects (the transaction
//! record, op 128, when there are several), never the script's text, so a
//! replay is deterministic and a crash recovers all of a script's writes or
//! none. A write refused by its precheck returns its error to the script and
//! logs nothing; a script that fails after some writes keeps them (as
//! Redis does) and they are logged. The reply is held until the record is
//! durable.
//!
//! Scripts (SCRIPT LOAD, EVAL's cache) and function libraries (FUNCTION
//! LOAD) live in memory only: after a restart they are gone and clients
//! load them again (redis-py's `Script` and `Lock` reload on NOSCRIPT).
//! Redis keeps function libraries in its RDB/AOF; here they are not logged.
//!
//! A running script is not waited for by other connections: a connection
//! whose batch holds a script executes it on a blocking thread
//! ([`execute`]) with [`Busy::running`] set, and the other connections wait
//! for it without blocking the event loop; once it has run longer than
//! `busy-reply-threshold` (`lua-time-limit`) they get BUSY, and SCRIPT KILL
//! / FUNCTION KILL (answered without the state's lock) stop it through an
//! atomic flag a Lua instruction hook checks, unless it has written
//! (UNKILLABLE).

mod codecs;
mod libs;
pub mod lua;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::Function;

use crate::cmd::{self, ConnState, Spec};
use crate::exec::{Held, Session};
use crate::record::MAX_RECORD_BYTES;
use crate::reply::Reply;
use crate::resp::Protocol;
use lua::{RunSpec, Vm};

/// Bytes of effects one script may log (one record).
pub const MAX_SCRIPT_BYTES: usize = MAX_RECORD_BYTES as usize - 64;

const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";

/// What other connections see of a running script.
#[derive(Default)]
pub struct Busy {
    /// Batches holding a script executing on blocking threads.
    running: AtomicUsize,
    /// When the running script started (ms since the epoch; 0: none).
    started_ms: AtomicU64,
    /// SCRIPT KILL / FUNCTION KILL asked the running script to stop.
    kill: AtomicBool,
    /// The running script has written (it cannot be killed).
    wrote: AtomicBool,
    /// The running script is a function (FCALL).
    function: AtomicBool,
    done: tokio::sync::Notify,
}

/// Executes one command of a script against the state, as the execution
/// core executes a client's: returns its reply and, for a write that was
/// applied, its effect's payload. A write whose payload is longer than
/// `budget` is refused (nothing applied).
pub trait Host {
    fn call(
        &mut self,
        spec: &'static Spec,
        args: Vec<Vec<u8>>,
        budget: usize,
    ) -> (Reply, Option<Vec<u8>>);
    /// The calling connection.
    fn conn(&mut self) -> &mut ConnState;
}

/// A parsed EVAL/FCALL/SCRIPT/FUNCTION request.
#[derive(Debug)]
pub enum Request {
    Eval {
        /// The body, or the sha for EVALSHA.
        body: Vec<u8>,
        sha: bool,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
        read_only: bool,
    },
    Fcall {
        name: Vec<u8>,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
        read_only: bool,
    },
    ScriptLoad(Vec<u8>),
    ScriptExists(Vec<Vec<u8>>),
    ScriptFlush,
    /// SCRIPT KILL or FUNCTION KILL while nothing runs.
    NotBusy,
    FunctionLoad {
        code: Vec<u8>,
        replace: bool,
    },
    FunctionDelete(Vec<u8>),
    FunctionFlush,
    FunctionList {
        pattern: Option<Vec<u8>>,
        with_code: bool,
    },
    FunctionStats,
}

/// A registered function.
struct Func {
    lib: String,
    f: Function,
    flags: Vec<String>,
}

/// A loaded library: its code and its functions' names.
struct Library {
    code: Vec<u8>,
    functions: Vec<String>,
}

#[derive(Default)]
struct State {
    /// The Lua state of EVAL (reset by SCRIPT FLUSH).
    eval_vm: Option<Vm>,
    /// Compiled scripts by sha.
    scripts: HashMap<String, (Function, bool)>,
    /// The Lua state of functions (reset by FUNCTION FLUSH).
    func_vm: Option<Vm>,
    libs: BTreeMap<String, Library>,
    funcs: HashMap<String, Func>,
}

/// The scripting engine of one server: its Lua states, cached scripts and
/// libraries, and the running script's state.
#[derive(Default)]
pub struct Scripts {
    busy: Arc<Busy>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Scripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripts").finish_non_exhaustive()
    }
}

const SCRIPT_FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// The flags of an EVAL body's shebang line (`#!lua flags=a,b`), and where
/// the code starts; None without a shebang.
fn shebang(body: &[u8]) -> Result<Option<(Vec<String>, usize)>, String> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..end]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if engine != "lua" {
        return Err(format!("ERR Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = Vec::new();
    for p in parts {
        match p.strip_prefix("flags=") {
            Some(list) => {
                for f in list.split(',').filter(|f| !f.is_empty()) {
                    if !SCRIPT_FLAGS.contains(&f) {
                        return Err(format!("ERR Unexpected flag in script shebang: {f}"));
                    }
                    flags.push(f.to_string());
                }
            }
            None => return Err(format!("ERR Unknown lua shebang option: {p}")),
        }
    }
    Ok(Some((flags, end)))
}

fn valid_function_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Scripts {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn vm<'a>(&self, slot: &'a mut Option<Vm>) -> Result<&'a Vm, Reply> {
        if slot.is_none() {
            *slot = Some(
                Vm::new(self.busy.clone())
                    .map_err(|e| Reply::Error(format!("ERR cannot start Lua: {e}")))?,
            );
        }
        Ok(slot.as_ref().expect("just set"))
    }

    /// Cached scripts (INFO number_of_cached_scripts).
    pub fn cached(&self) -> usize {
        self.state().scripts.len()
    }

    /// Bytes used by the Lua states (INFO used_memory_lua).
    pub fn memory(&self) -> usize {
        let st = self.state();
        st.eval_vm.as_ref().map_or(0, Vm::memory) + st.func_vm.as_ref().map_or(0, Vm::memory)
    }

    /// Runs `req`; returns the reply and the payloads of the writes made.
    pub fn handle(&self, req: Request, host: &mut dyn Host) -> (Reply, Vec<Vec<u8>>) {
        let client_resp3 = host.conn().proto == Protocol::Resp3;
        let mut st = self.state();
        let st = &mut *st;
        match req {
            Request::Eval {
                body,
                sha,
                keys,
                args,
                read_only,
            } => {
                let vm = match self.vm(&mut st.eval_vm) {
                    Ok(vm) => vm,
                    Err(e) => return (e, Vec::new()),
                };
                let digest = if sha {
                    String::from_utf8_lossy(&body).to_ascii_lowercase()
                } else {
                    lua::sha1_hex(&body)
                };
                if !st.scripts.contains_key(&digest) {
                    if sha {
                        return (
                            Reply::error("NOSCRIPT No matching script. Please use EVAL."),
                            Vec::new(),
                        );
                    }
                    match compile_script(vm, &body) {
                        Ok(c) => {
                            st.scripts.insert(digest.clone(), c);
                        }
                        Err(e) => return (e, Vec::new()),
                    }
                }
                let (f, no_writes) = st.scripts.get(&digest).expect("cached").clone();
                let spec = RunSpec {
                    read_only: read_only || no_writes,
                    name: &digest,
                    client_resp3,
                };
                self.run(vm, &f, false, &keys, &args, &spec, host)
            }
            Request::Fcall {
                name,
                keys,
                args,
                read_only,
            } => {
                let name = String::from_utf8_lossy(&name).into_owned();
                let Some(func) = st.funcs.get(&name) else {
                    return (Reply::error("ERR Function not found"), Vec::new());
                };
                let no_writes = func.flags.iter().any(|f| f == "no-writes");
                if read_only && !no_writes {
                    return (
                        Reply::error(
                            "ERR Can not execute a script with write flag using *_ro command.",
                        ),
                        Vec::new(),
                    );
                }
                let f = func.f.clone();
                let Some(vm) = st.func_vm.as_ref() else {
                    return (Reply::error("ERR Function not found"), Vec::new());
                };
                let spec = RunSpec {
                    read_only: no_writes,
                    name: &name,
                    client_resp3,
                };
                self.busy.function.store(true, Ordering::SeqCst);
                let r = self.run(vm, &f, true, &keys, &args, &spec, host);
                self.busy.function.store(false, Ordering::SeqCst);
                r
            }
            Request::ScriptLoad(body) => {
                let vm = match self.vm(&mut st.eval_vm) {
                    Ok(vm) => vm,
                    Err(e) => return (e, Vec::new()),
                };
                let digest = lua::sha1_hex(&body);
                if !st.scripts.contains_key(&digest) {
                    match compile_script(vm, &body) {
                        Ok(c) => {
                            st.scripts.insert(digest.clone(), c);
                        }
                        Err(e) => return (e, Vec::new()),
                    }
                }
                (Reply::Bulk(digest.into_bytes()), Vec::new())
            }
            Request::ScriptExists(shas) => (
                Reply::Array(
                    shas.iter()
                        .map(|s| {
                            let s = String::from_utf8_lossy(s).to_ascii_lowercase();
                            Reply::Int(st.scripts.contains_key(&s) as i64)
                        })
                        .collect(),
                ),
                Vec::new(),
            ),
            Request::ScriptFlush => {
                st.scripts.clear();
                st.eval_vm = None;
                (Reply::Ok, Vec::new())
            }
            Request::NotBusy => (Reply::error(NOTBUSY), Vec::new()),
            Request::FunctionLoad { code, replace } => {
                (self.function_load(st, code, replace), Vec::new())
            }
            Request::FunctionDelete(name) => {
                let name = String::from_utf8_lossy(&name).into_owned();
                match st.libs.remove(&name) {
                    None => (Reply::error("ERR Library not found"), Vec::new()),
                    Some(lib) => {
                        for f in lib.functions {
                            st.funcs.remove(&f);
                        }
                        (Reply::Ok, Vec::new())
                    }
                }
            }
            Request::FunctionFlush => {
                st.libs.clear();
                st.funcs.clear();
                st.func_vm = None;
                (Reply::Ok, Vec::new())
            }
            Request::FunctionList { pattern, with_code } => {
                let mut out = Vec::new();
                for (name, lib) in &st.libs {
                    if let Some(p) = &pattern {
                        if !cmd::glob_match(p, name.as_bytes()) {
                            continue;
                        }
                    }
                    let mut funcs: Vec<&String> = lib.functions.iter().collect();
                    funcs.sort();
                    let functions = funcs
                        .into_iter()
                        .filter_map(|f| st.funcs.get(f).map(|x| (f, x)))
                        .map(|(f, x)| {
                            Reply::Map(vec![
                                (bulk("name"), bulk(f)),
                                (bulk("description"), Reply::Nil),
                                (
                                    bulk("flags"),
                                    Reply::Set(x.flags.iter().map(|s| bulk(s)).collect()),
                                ),
                            ])
                        })
                        .collect();
                    let mut m = vec![
                        (bulk("library_name"), bulk(name)),
                        (bulk("engine"), bulk("LUA")),
                        (bulk("functions"), Reply::Array(functions)),
                    ];
                    if with_code {
                        m.push((bulk("library_code"), Reply::Bulk(lib.code.clone())));
                    }
                    out.push(Reply::Map(m));
                }
                (Reply::Array(out), Vec::new())
            }
            Request::FunctionStats => (
                Reply::Map(vec![
                    (bulk("running_script"), Reply::Nil),
                    (
                        bulk("engines"),
                        Reply::Map(vec![(
                            bulk("LUA"),
                            Reply::Map(vec![
                                (bulk("libraries_count"), Reply::Int(st.libs.len() as i64)),
                                (bulk("functions_count"), Reply::Int(st.funcs.len() as i64)),
                            ]),
                        )]),
                    ),
                ]),
                Vec::new(),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        vm: &Vm,
        f: &Function,
        function: bool,
        keys: &[Vec<u8>],
        args: &[Vec<u8>],
        spec: &RunSpec<'_>,
        host: &mut dyn Host,
    ) -> (Reply, Vec<Vec<u8>>) {
        let b = &self.busy;
        b.kill.store(false, Ordering::SeqCst);
        b.wrote.store(false, Ordering::SeqCst);
        b.started_ms.store(now_ms().max(1), Ordering::SeqCst);
        let out = vm.run(f, function, keys, args, spec, b, host);
        b.started_ms.store(0, Ordering::SeqCst);
        b.kill.store(false, Ordering::SeqCst);
        (out.reply, out.payloads)
    }

    fn function_load(&self, st: &mut State, code: Vec<u8>, replace: bool) -> Reply {
        // "#!lua name=<library>"
        if !code.starts_with(b"#!") {
            return Reply::error("ERR Missing library metadata");
        }
        let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
        let line = String::from_utf8_lossy(&code[2..end]).into_owned();
        let mut parts = line.split(' ').filter(|p| !p.is_empty());
        let engine = parts.next().unwrap_or("");
        if !engine.eq_ignore_ascii_case("lua") {
            return Reply::Error(format!("ERR Engine '{engine}' not found"));
        }
        let mut name = None;
        for p in parts {
            match p.strip_prefix("name=") {
                Some(n) => name = Some(n.to_string()),
                None => return Reply::Error(format!("ERR Invalid metadata value given: {p}")),
            }
        }
        let Some(name) = name else {
            return Reply::error("ERR Library name was not given");
        };
        if !valid_function_name(&name) {
            return Reply::error("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
        }
        if st.libs.contains_key(&name) && !replace {
            return Reply::Error(format!("ERR Library '{name}' already exists"));
        }
        let vm = match self.vm(&mut st.func_vm) {
            Ok(vm) => vm,
            Err(e) => return e,
        };
        // the shebang line stays as a comment so line numbers hold
        let mut body = b"--".to_vec();
        body.extend_from_slice(&code);
        let f = match vm.compile(&body, "@user_function") {
            Ok(f) => f,
            Err(e) => return Reply::Error(format!("ERR Error compiling function: {e}")),
        };
        let mut registered: Vec<(String, Function, Vec<String>)> = Vec::new();
        let funcs = &st.funcs;
        let r = vm.load_library(&f, |fname, cb, flags| {
            if !valid_function_name(&fname) {
                return Some("Function names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
            }
            if registered.iter().any(|(n, _, _)| *n == fname) {
                return Some("Function already exists in the library".into());
            }
            if let Some(other) = funcs.get(&fname) {
                if other.lib != name {
                    return Some(format!("Function {fname} already exists"));
                }
            }
            for fl in &flags {
                if !SCRIPT_FLAGS.contains(&fl.as_str()) {
                    return Some("unknown flag given".into());
                }
            }
            registered.push((fname, cb, flags));
            None
        });
        if let Err(e) = r {
            return Reply::Error(e);
        }
        if registered.is_empty() {
            return Reply::error("ERR No functions registered");
        }
        if let Some(old) = st.libs.remove(&name) {
            for f in old.functions {
                st.funcs.remove(&f);
            }
        }
        let mut names = Vec::new();
        for (fname, cb, flags) in registered {
            names.push(fname.clone());
            st.funcs.insert(
                fname,
                Func {
                    lib: name.clone(),
                    f: cb,
                    flags,
                },
            );
        }
        st.libs.insert(
            name.clone(),
            Library {
                code,
                functions: names,
            },
        );
        Reply::Bulk(name.into_bytes())
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// Compiles an EVAL body: its shebang flags checked, the shebang line kept
/// as a comment (line numbers hold); returns the function and whether it is
/// read-only (`no-writes`).
fn compile_script(vm: &Vm, body: &[u8]) -> Result<(Function, bool), Reply> {
    let (no_writes, src) = match shebang(body).map_err(Reply::Error)? {
        None => (false, body.to_vec()),
        Some((flags, _)) => {
            let mut src = b"--".to_vec();
            src.extend_from_slice(body);
            (flags.iter().any(|f| f == "no-writes"), src)
        }
    };
    vm.compile(&src, "@user_script")
        .map(|f| (f, no_writes))
        .map_err(|e| Reply::Error(format!("ERR Error compiling script (new function): {e}")))
}

// ---------------------------------------------------------------- gate

/// True for the commands that run a script.
fn runs_script(args: &[Vec<u8>]) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    [
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "fcall",
        "fcall_ro",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// What a request gets while a script runs past the threshold: SCRIPT KILL
/// and FUNCTION KILL are served, the rest gets BUSY.
fn busy_reply(busy: &Busy, args: &[Vec<u8>]) -> (&'static str, Reply) {
    let name = args
        .first()
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    let sub = args
        .get(1)
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    let function = busy.function.load(Ordering::SeqCst);
    let kill = |label: &'static str| {
        if busy.wrote.load(Ordering::SeqCst) {
            return (label, Reply::error(UNKILLABLE));
        }
        busy.kill.store(true, Ordering::SeqCst);
        (label, Reply::Ok)
    };
    match (name.as_slice(), sub.as_slice()) {
        (b"script", b"kill") if args.len() == 2 => kill("script"),
        (b"function", b"kill") if args.len() == 2 => kill("function"),
        _ => (
            "busy",
            Reply::error(if function { BUSY_FUNCTION } else { BUSY_SCRIPT }),
        ),
    }
}

/// The busy-reply threshold in ms (CONFIG `busy-reply-threshold`, alias
/// `lua-time-limit`).
fn threshold(server: &dyn cmd::ServerInfo) -> u64 {
    server
        .config()
        .get("busy-reply-threshold")
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(5000, |v| v.max(0) as u64)
}

/// Executes a connection's batch of requests: while another connection's
/// script runs, waits for it without blocking the event loop (BUSY once it
/// has run past the threshold); a batch holding a script runs on a blocking
/// thread so that the event loop keeps serving SCRIPT KILL.
pub async fn execute(
    shared: &Arc<crate::server::Shared>,
    session: &mut Session,
    reqs: Vec<Vec<Vec<u8>>>,
    held: &mut VecDeque<Held>,
) -> bool {
    let busy = shared.core.scripts().busy.clone();
    loop {
        let notified = busy.done.notified();
        if busy.running.load(Ordering::SeqCst) == 0 {
            break;
        }
        let started = busy.started_ms.load(Ordering::SeqCst);
        let limit = threshold(shared.as_ref());
        if started != 0 && now_ms().saturating_sub(started) >= limit {
            for args in &reqs {
                let (name, mut reply) = busy_reply(&busy, args);
                if name == "busy" {
                    let err = match &reply {
                        Reply::Error(e) => e.clone(),
                        _ => String::new(),
                    };
                    let cmd = args.first().map(Vec::as_slice).unwrap_or_default();
                    reply = session.refuse_busy(cmd, &err);
                }
                held.push_back(Held {
                    need: 0,
                    name,
                    reply,
                    proto: session.conn.proto,
                });
            }
            return false;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    if !reqs.iter().any(|a| runs_script(a)) {
        return shared.core.execute(session, reqs, shared.as_ref(), held);
    }
    busy.running.fetch_add(1, Ordering::SeqCst);
    let sh = shared.clone();
    let mut s = std::mem::replace(session, Session::new(ConnState::new(session.conn.id)));
    let joined = tokio::task::spawn_blocking(move || {
        let mut out = VecDeque::new();
        let quit = sh.core.execute(&mut s, reqs, sh.as_ref(), &mut out);
        (s, out, quit)
    })
    .await;
    busy.running.fetch_sub(1, Ordering::SeqCst);
    busy.done.notify_waiters();
    match joined {
        Ok((s, out, quit)) => {
            *session = s;
            held.extend(out);
            quit
        }
        Err(e) => {
            tracing::error!(error = %e, "script execution task failed");
            true
        }
    }
}

#[cfg(test)]
mod tests;
