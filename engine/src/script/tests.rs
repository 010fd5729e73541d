//! The sandbox and the Lua <-> reply conversions, with a fake core.

use super::lua::{RunSpec, Vm};
use super::*;

/// Answers a few commands with fixed replies; SET "writes".
struct FakeHost {
    conn: ConnState,
    calls: Vec<Vec<Vec<u8>>>,
}

impl FakeHost {
    fn new() -> FakeHost {
        FakeHost {
            conn: ConnState::new(1),
            calls: Vec::new(),
        }
    }
}

impl Host for FakeHost {
    fn call(
        &mut self,
        _spec: &'static Spec,
        args: Vec<Vec<u8>>,
        _budget: usize,
    ) -> (Reply, Option<Vec<u8>>) {
        self.calls.push(args.clone());
        let b = |s: &str| Reply::Bulk(s.as_bytes().to_vec());
        let reply = match args[0].to_ascii_lowercase().as_slice() {
            b"set" => return (Reply::Ok, Some(b"payload".to_vec())),
            b"get" => b("v"),
            b"incr" => Reply::error("ERR value is not an integer or out of range"),
            b"hgetall" => Reply::Map(vec![(b("f"), b("v"))]),
            b"hkeys" => Reply::Set(vec![b("m")]),
            b"lpos" => Reply::Nil,
            b"incrbyfloat" => Reply::Double(1.5),
            _ => Reply::Int(7),
        };
        (reply, None)
    }

    fn conn(&mut self) -> &mut ConnState {
        &mut self.conn
    }
}

fn run(body: &str, keys: &[&str], args: &[&str]) -> (Reply, Vec<Vec<u8>>) {
    run_ro(body, keys, args, false)
}

fn run_ro(body: &str, keys: &[&str], args: &[&str], read_only: bool) -> (Reply, Vec<Vec<u8>>) {
    let busy = Arc::new(Busy::default());
    let vm = Vm::new(busy.clone()).unwrap();
    let f = vm.compile(body.as_bytes(), "@user_script").unwrap();
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    let args: Vec<Vec<u8>> = args.iter().map(|k| k.as_bytes().to_vec()).collect();
    let mut host = FakeHost::new();
    let spec = RunSpec {
        read_only,
        name: "sha",
        client_resp3: false,
    };
    let out = vm.run(&f, false, &keys, &args, &spec, &busy, &mut host);
    (out.reply, out.payloads)
}

fn reply(body: &str) -> Reply {
    run(body, &[], &[]).0
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

#[test]
fn lua_values_become_replies_as_redis_converts_them() {
    assert_eq!(reply("return 'hello'"), bulk("hello"));
    assert_eq!(reply("return 100.9"), Reply::Int(100));
    assert_eq!(reply("return -3.7"), Reply::Int(-3));
    assert_eq!(reply("return true"), Reply::Int(1));
    assert_eq!(reply("return false"), Reply::Nil);
    assert_eq!(reply("return nil"), Reply::Nil);
    assert_eq!(reply("return {ok='fine'}"), Reply::Status("fine".into()));
    assert_eq!(
        reply("return {ok='a\\r\\nb'}"),
        Reply::Status("a  b".into())
    );
    assert_eq!(reply("return {err='MY err'}"), Reply::error("MY err"));
    assert_eq!(
        reply("return {1,'two',{3},nil,5}"),
        Reply::Array(vec![
            Reply::Int(1),
            bulk("two"),
            Reply::Array(vec![Reply::Int(3)])
        ])
    );
    assert_eq!(reply("return {}"), Reply::Array(vec![]));
    assert_eq!(
        reply("return redis.status_reply('X')"),
        Reply::Status("X".into())
    );
    assert_eq!(
        reply("return redis.error_reply('MY_CODE msg')"),
        Reply::error("MY_CODE msg")
    );
    assert_eq!(reply("return redis.error_reply('')"), Reply::error("ERR "));
    // RESP3 forms once the script asks for them
    assert_eq!(reply("redis.setresp(3); return true"), Reply::Bool(true));
    assert_eq!(reply("return {double=1.5}"), Reply::Double(1.5));
    assert_eq!(
        reply("return {map={a=1}}"),
        Reply::Map(vec![(bulk("a"), Reply::Int(1))])
    );
    assert_eq!(reply("return {set={a=true}}"), Reply::Set(vec![bulk("a")]));
    assert_eq!(
        reply("return {big_number='123'}"),
        Reply::BigNumber("123".into())
    );
    // a recursive table stops at a depth limit with an error
    let mut r = reply("local a = {}; local b = {a}; a[1] = b; return a");
    let mut depth = 0;
    while let Reply::Array(mut v) = r {
        depth += 1;
        r = v.remove(0);
    }
    assert!(depth > 10);
    assert_eq!(r, Reply::error("ERR reached lua stack limit"));
}

#[test]
fn replies_become_lua_values_in_resp2_and_resp3() {
    let t = |body: &str| reply(body);
    assert_eq!(
        t("local r = redis.call('get','k'); return type(r)"),
        bulk("string")
    );
    assert_eq!(
        t("return redis.call('lpos','k','x') == false"),
        Reply::Int(1)
    );
    assert_eq!(
        t("redis.setresp(3); return redis.call('lpos','k','x') == nil"),
        Reply::Bool(true)
    );
    assert_eq!(t("return redis.call('strlen','k')"), Reply::Int(7));
    assert_eq!(t("return redis.call('set','k','v')['ok']"), bulk("OK"));
    // maps: a flat array in RESP2, {map=...} in RESP3
    assert_eq!(
        t("return redis.call('hgetall','h')"),
        Reply::Array(vec![bulk("f"), bulk("v")])
    );
    assert_eq!(
        t("redis.setresp(3); return redis.call('hgetall','h')"),
        Reply::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(
        t("redis.setresp(3); return redis.call('hkeys','s')['set']['m']"),
        Reply::Bool(true)
    );
    assert_eq!(t("return redis.call('incrbyfloat','k',1)"), bulk("1.5"));
    assert_eq!(
        t("redis.setresp(3); return redis.call('incrbyfloat','k',1)['double']"),
        Reply::Int(1)
    );
    // numbers are sent as %.17g
    let (_, _) = run("redis.call('strlen', 9007199254740991)", &[], &[]);
    assert_eq!(
        t("return redis.pcall('incr','s')['err']"),
        bulk("ERR value is not an integer or out of range")
    );
}

#[test]
fn errors_name_the_script_and_line() {
    assert_eq!(
        reply("\n\nreturn redis.call('incr','s')"),
        Reply::error("ERR value is not an integer or out of range script: sha, on @user_script:3.")
    );
    assert_eq!(
        reply("error('boom')"),
        Reply::error("ERR user_script:1: boom script: sha, on @user_script:1.")
    );
    assert_eq!(
        reply("return redis.call()"),
        Reply::error("ERR Please specify at least one argument for this redis lib call script: sha, on @user_script:1.")
    );
    assert_eq!(
        reply("return redis.call('nosuch')"),
        Reply::error(
            "ERR Unknown Redis command called from script script: sha, on @user_script:1."
        )
    );
    assert_eq!(
        reply("return redis.call('eval','return 1','0')"),
        Reply::error(
            "ERR This Redis command is not allowed from script script: sha, on @user_script:1."
        )
    );
    assert_eq!(
        reply("return redis.call('get')"),
        Reply::error("ERR Wrong number of args calling Redis command from script script: sha, on @user_script:1.")
    );
    let (r, payloads) = run_ro("return redis.call('set','k','v')", &[], &[], true);
    assert_eq!(
        r,
        Reply::error("ERR Write commands are not allowed from read-only scripts. script: sha, on @user_script:1.")
    );
    assert!(payloads.is_empty());
}

#[test]
fn writes_before_an_error_are_kept() {
    let (r, payloads) = run(
        "redis.call('set','a','1'); redis.call('set','b','2'); error('x')",
        &[],
        &[],
    );
    assert!(matches!(r, Reply::Error(_)));
    assert_eq!(payloads.len(), 2);
}

#[test]
fn the_sandbox_protects_globals_and_libraries() {
    let err = |body: &str| match reply(body) {
        Reply::Error(e) => e,
        other => panic!("{body}: {other:?}"),
    };
    assert!(err("return a").contains("Script attempted to access nonexistent global variable 'a'"));
    for body in [
        "a = 1",
        "_G = {}",
        "redis = 1",
        "redis.call = 1",
        "cjson.encode = 1",
        "bit.band = 1",
        "string.len = 1",
        "setmetatable(_G, {})",
        "local g = getmetatable(_G); g.__index = {}",
        "rawset(_G, 'x', 1)",
    ] {
        assert!(
            err(body).contains("Attempt to modify a readonly table"),
            "{body}"
        );
    }
    for g in [
        "os", "io", "print", "dofile", "loadfile", "require", "debug", "package",
    ] {
        assert!(
            err(&format!("return {g}")).contains("nonexistent global variable"),
            "{g}"
        );
    }
    assert!(
        err("return loadstring(string.dump(function() return 1 end))()")
            .contains("attempt to call a nil value")
    );
    assert_eq!(reply("return loadstring('return 1+1')()"), Reply::Int(2));
    assert_eq!(reply("return _G"), Reply::Array(vec![]));
    assert_eq!(reply("return {KEYS[1], ARGV[1]}"), Reply::Array(vec![]));
    assert_eq!(
        run("return {KEYS[1], ARGV[1]}", &["k"], &["a"]).0,
        Reply::Array(vec![bulk("k"), bulk("a")])
    );
    let r = reply("local ok, e = pcall(function() return foo end); return e");
    assert!(
        matches!(r, Reply::Bulk(b) if String::from_utf8_lossy(&b).contains("nonexistent global variable 'foo'"))
    );
}

#[test]
fn libraries_behave_as_redis_bundles_them() {
    assert_eq!(
        reply("return bit.bor(1,2,4,8,16,32,64,128)"),
        Reply::Int(255)
    );
    assert_eq!(reply("return bit.tohex(255)"), bulk("000000ff"));
    assert_eq!(reply("return bit.band(-1, 0xff)"), Reply::Int(255));
    assert_eq!(
        reply("return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')"),
        bulk("0 -5000 -1 0.0003 1023.2 0")
    );
    assert_eq!(
        reply("return cjson.encode({a={1,2}})"),
        bulk("{\"a\":[1,2]}")
    );
    assert_eq!(
        reply("local e = cmsgpack.pack(-1099511627776); local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h"),
        bulk("d3ffffff0000000000")
    );
    assert_eq!(
        reply("local t = cmsgpack.unpack(cmsgpack.pack({1, 'a', {x=2}})); return {t[1], t[2], t[3].x}"),
        Reply::Array(vec![Reply::Int(1), bulk("a"), Reply::Int(2)])
    );
    assert_eq!(
        reply("return redis.sha1hex('')"),
        bulk("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
    // seeded math.random repeats
    assert_eq!(
        reply("math.randomseed(10); local a = math.random(); math.randomseed(10); return a == math.random()"),
        Reply::Int(1)
    );
}

#[test]
fn shebang_flags_are_checked() {
    assert_eq!(shebang(b"return 1").unwrap(), None);
    assert_eq!(
        shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap(),
        Some((vec!["no-writes".to_string(), "allow-oom".to_string()], 31))
    );
    assert!(shebang(b"#!not-lua\n")
        .unwrap_err()
        .contains("Unexpected engine in script shebang"));
    assert!(shebang(b"#!lua badger=data\n")
        .unwrap_err()
        .contains("Unknown lua shebang option"));
    assert!(shebang(b"#!lua flags=what?\n")
        .unwrap_err()
        .contains("Unexpected flag in script shebang"));
}

#[test]
fn busy_requests_get_busy_and_kill_respects_writes() {
    let busy = Busy::default();
    let args = |s: &str| {
        s.split(' ')
            .map(|a| a.as_bytes().to_vec())
            .collect::<Vec<_>>()
    };
    assert!(matches!(busy_reply(&busy, &args("PING")).1, Reply::Error(e) if e.starts_with("BUSY")));
    assert_eq!(busy_reply(&busy, &args("SCRIPT KILL")).1, Reply::Ok);
    assert!(busy.kill.load(Ordering::SeqCst));
    busy.kill.store(false, Ordering::SeqCst);
    busy.wrote.store(true, Ordering::SeqCst);
    assert!(
        matches!(busy_reply(&busy, &args("script kill")).1, Reply::Error(e) if e.starts_with("UNKILLABLE"))
    );
    assert!(!busy.kill.load(Ordering::SeqCst));
}
