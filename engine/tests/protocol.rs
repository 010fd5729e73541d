//! The protocol byte for byte against redis-server: the same raw requests
//! go to the engine and to a real `redis-server` on fresh connections, and
//! the raw replies must be equal (HELLO's `id` and `version` fields, which
//! name the server, are masked). Needs `redis-server` on PATH
//! (`scripts/deps.sh --test` installs it).

mod common;

use common::{session, Engine, Redis};

/// Replaces the value after `key` (a bulk string) in a HELLO map with `X`.
fn mask_after(reply: &mut Vec<u8>, key: &[u8]) {
    let mut from = 0;
    while let Some(p) = find(&reply[from..], key).map(|p| p + from) {
        let start = p + key.len();
        // the value is one line (`:<id>`) or a bulk (`$<n>\r\n<bytes>`)
        let line_end = find(&reply[start..], b"\r\n").unwrap() + start + 2;
        let end = if reply[start] == b'$' {
            find(&reply[line_end..], b"\r\n").unwrap() + line_end + 2
        } else {
            line_end
        };
        reply.splice(start..end, b"X".iter().copied());
        from = start + 1;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn normalized(port: u16, request: &[u8]) -> String {
    let mut r = session(port, request);
    mask_after(&mut r, b"$7\r\nversion\r\n");
    mask_after(&mut r, b"$2\r\nid\r\n");
    String::from_utf8_lossy(&r).into_owned()
}

/// Every request, alone on a fresh connection, is answered by the engine
/// exactly as by redis-server.
fn same_as_redis(requests: &[&[u8]]) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let mut diffs = Vec::new();
    for req in requests {
        let (e, r) = (normalized(engine.port, req), normalized(redis.port, req));
        if e != r {
            diffs.push(format!(
                "request {:?}\n  engine: {e:?}\n  redis:  {r:?}",
                String::from_utf8_lossy(req)
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn hello_switches_the_protocol_like_redis() {
    same_as_redis(&[
        b"HELLO\r\n",
        b"HELLO 3\r\n",
        b"HELLO 2\r\n",
        b"HELLO 3\r\nHELLO\r\nHELLO 2\r\nHELLO\r\n",
        b"HELLO 4\r\nHELLO 1\r\nHELLO -1\r\nHELLO x\r\nHELLO 3x\r\nHELLO 9223372036854775808\r\n",
        b"HELLO 3 AUTH default anything\r\nHELLO 3 AUTH nouser pw\r\nHELLO 3 AUTH default\r\n",
        b"HELLO 3 SETNAME conn1\r\nCLIENT GETNAME\r\n",
        b"HELLO 3 SETNAME bad\x01name\r\nCLIENT GETNAME\r\n",
        b"HELLO 2 SETNAME x BOGUS\r\nCLIENT GETNAME\r\nHELLO\r\n",
        b"HELLO 3 SETNAME\r\nHELLO 3 bogus\r\n",
        b"*3\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$3\r\n\xff\xfe\x00\r\n",
        b"HELLO 3\r\nRESET\r\nGET nokey\r\nCLIENT GETNAME\r\n",
        // a pipeline switching protocols: each reply in the protocol in
        // force when its command ran
        b"GET nokey\r\nHELLO 3\r\nGET nokey\r\nSET a b\r\nHELLO 2\r\nGET nokey\r\nHGETALL a\r\n\
          HSET h f v\r\nHELLO 3\r\nHGETALL h\r\nDEL h a\r\n",
        b"AUTH x\r\nAUTH default x\r\nAUTH nouser x\r\nAUTH a b c\r\n",
    ]);
}

#[test]
fn resp3_types_and_their_resp2_downgrade_like_redis() {
    let session: &[u8] = b"SET s v\r\nHSET h f1 v1\r\nGET nokey\r\nHGETALL h\r\nHGETALL nokey\r\n\
        HGET h nofield\r\nMGET s nokey\r\nSET s w GET\r\nSET n v NX GET\r\nGETDEL nokey\r\n\
        CLIENT GETNAME\r\nHGETALL s\r\n";
    let mut v3 = b"HELLO 3\r\n".to_vec();
    v3.extend_from_slice(session);
    same_as_redis(&[session, &v3]);
}

/// A multibulk request.
fn req(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn unknown_commands_and_binary_input_get_redis_errors() {
    let long = [b'x'; 200];
    let mid = [b'y'; 130];
    let r = [
        req(&[b"no\xffpe", b"\xfe\x00", b"ab"]),
        req(&[b"nope", &long]),
        req(&[&long, b"a"]),
        req(&[b"x", &mid[..100], &mid[..30], b"abc", b"z"]),
        req(&[b"x", &mid[..126], b"abc"]),
        req(&[b"x", &mid[..125], b"abc", b"d"]),
        req(&[b"x", b"a\r\nb"]),
        req(&[b"hello", b"3", b"a\r\nb"]),
        req(&[b"config", b"n\xffo\r\x00pe"]),
        req(&[b"client", &long]),
        req(&[b"command", b"\xfe"]),
    ];
    let mut all: Vec<&[u8]> = r.iter().map(Vec::as_slice).collect();
    all.extend([
        &b"nosuch\r\nnosuch a b\r\n"[..],
        b"GET\r\nget a b\r\n",
        // the two bytes after a bulk string are skipped unread
        b"*1\r\n$4\r\nPINGxx*2\r\n$3\r\nGET\r\n$1\r\nab\r\n",
        b"*-10\r\nPING\r\n*0\r\n\r\nPING\r\n",
    ]);
    same_as_redis(&all);
}

#[test]
fn connection_and_server_commands_like_redis_in_both_protocols() {
    let session: &[u8] = b"PING\r\nPING hi\r\nECHO x\r\nSELECT 0\r\nSELECT 1\r\nSELECT x\r\n\
        CLIENT SETNAME n1\r\nCLIENT GETNAME\r\nCLIENT SETNAME\r\nCLIENT NOPE\r\nCLIENT ID x\r\n\
        CLIENT NO-EVICT on\r\nCLIENT NO-EVICT x\r\nCLIENT KILL 1.2.3.4:5\r\nCLIENT KILL ID 99999\r\n\
        CLIENT KILL SKIPME x\r\nCLIENT LIST TYPE x\r\nCLIENT LIST TYPE master\r\n\
        CONFIG GET hz HZ\r\nCONFIG SET hz 15 hash-max-ziplist-entries 64\r\n\
        CONFIG GET hash-max-listpack-entries\r\nCONFIG SET hz x\r\nCONFIG SET nosuch 1\r\n\
        CONFIG SET daemonize no\r\nCONFIG SET dir /tmp\r\nCONFIG SET hz 1 hz 2\r\nCONFIG SET hz\r\n\
        CONFIG SET hz 1 x\r\nCONFIG GET\r\nCONFIG NOPE\r\nCONFIG RESETSTAT\r\nCONFIG REWRITE x\r\n\
        CONFIG SET notify-keyspace-events KEA\r\nCONFIG GET notify-keyspace-events\r\n\
        CONFIG SET hz 0\r\nCONFIG GET hz\r\nCONFIG SET hz 10 hash-max-ziplist-entries 512\r\n\
        COMMAND NOPE\r\nCOMMAND COUNT x\r\nCOMMAND GETKEYS GET\r\nCOMMAND GETKEYS NOSUCH a\r\n\
        COMMAND GETKEYS PING x\r\nCOMMAND INFO NOSUCH\r\nINFO nosuchsection\r\nDEBUG SLEEP 0\r\nGET|\r\nCONFIG|GET x\r\n\
        AUTH x\r\nAUTH default x\r\nHELLO 3 AUTH nouser x\r\n";
    let mut v3 = b"HELLO 3\r\n".to_vec();
    v3.extend_from_slice(session);
    same_as_redis(&[session, &v3]);
}

#[test]
fn inline_commands_are_split_like_redis() {
    same_as_redis(&[
        b"ECHO \"a b\"\r\nECHO 'c d'\r\nECHO \"\\x41\\x4a\\n\\q\"\r\nECHO '\\''\r\n",
        b"  PING   \r\nECHO \"\"\r\n\r\n\nPING\n",
    ]);
    // unbalanced quotes: Redis's protocol error, then the connection closes
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let closing = |port: u16| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        s.write_all(b"PING\r\nset \"\"\"k\"\"\" v\r\nPING\r\n")
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    };
    assert_eq!(
        String::from_utf8_lossy(&closing(engine.port)),
        String::from_utf8_lossy(&closing(redis.port))
    );
}

/// A raw connection that sends one request and reads one reply line (or
/// a bulk/verbatim body).
struct Raw(std::net::TcpStream, std::io::BufReader<std::net::TcpStream>);

impl Raw {
    fn open(port: u16) -> Raw {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        Raw(s.try_clone().unwrap(), std::io::BufReader::new(s))
    }

    /// Sends an inline command; the reply's first line, and its body for a
    /// bulk or verbatim string. Empty when the server closed.
    fn call(&mut self, line: &str) -> String {
        use std::io::{BufRead, Read, Write};
        if self.0.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut head = String::new();
        if self.1.read_line(&mut head).unwrap_or(0) == 0 {
            return String::new();
        }
        if let Some(n) = head.strip_prefix('$').or_else(|| head.strip_prefix('=')) {
            let n: i64 = n.trim().parse().unwrap();
            if n >= 0 {
                let mut body = vec![0; n as usize + 2];
                self.1.read_exact(&mut body).unwrap();
                return String::from_utf8_lossy(&body[..n as usize]).into_owned();
            }
        }
        head.trim_end().to_string()
    }
}

/// CLIENT LIST shows every connection with its name; CLIENT KILL closes
/// the one it names (by address or id), or the caller with SKIPME no, on
/// the engine as on redis-server.
#[test]
fn client_list_and_kill_act_on_other_connections_like_redis() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let redis = Redis::start();
    let run = |port: u16| -> Vec<String> {
        let mut out = Vec::new();
        let mut a = Raw::open(port);
        let mut b = Raw::open(port);
        let mut c = Raw::open(port);
        out.push(a.call("CLIENT SETNAME alpha"));
        let a_id = a.call("CLIENT ID");
        let list = b.call("CLIENT LIST");
        let a_line = list
            .lines()
            .find(|l| l.contains(" name=alpha "))
            .expect("alpha listed")
            .to_string();
        out.push(format!("{} clients", list.lines().count()));
        let addr = a_line
            .split(' ')
            .find_map(|f| f.strip_prefix("addr="))
            .unwrap()
            .to_string();
        assert!(
            a_line.starts_with(&format!("id={} ", &a_id[1..])),
            "{a_line}"
        );
        out.push(b.call(&format!("CLIENT KILL {addr}")));
        out.push(a.call("PING"));
        out.push(b.call(&format!("CLIENT KILL {addr}")));
        let c_id = c.call("CLIENT ID");
        out.push(b.call(&format!("CLIENT KILL ID {} SKIPME yes", &c_id[1..])));
        out.push(c.call("PING"));
        out.push(b.call("CLIENT KILL TYPE master"));
        out.push(b.call("CLIENT KILL TYPE normal SKIPME no"));
        out.push(b.call("PING"));
        out
    };
    let want = vec![
        "+OK".to_string(),
        "3 clients".into(),
        "+OK".into(),
        String::new(),
        "-ERR No such client".into(),
        ":1".into(),
        String::new(),
        ":0".into(),
        ":1".into(),
        String::new(),
    ];
    assert_eq!(run(redis.port), want, "redis-server");
    assert_eq!(run(engine.port), want, "engine");
}

/// CONFIG RESETSTAT zeroes INFO's command counts; INFO's sections are
/// Redis's, chosen as Redis chooses them.
#[test]
fn info_sections_and_resetstat() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let mut c = Raw::open(engine.port);
    c.call("SET k v");
    c.call("SET k2 v PX 100000");
    let info = c.call("INFO");
    for s in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(info.contains(s), "{s} in {info}");
    }
    assert!(!info.contains("# Commandstats"));
    assert!(c.call("INFO all").contains("cmdstat_set:calls=2,"));
    let ks = c.call("INFO keyspace");
    let line = ks.lines().find(|l| l.starts_with("db0:")).unwrap();
    let avg: u64 = line.rsplit("avg_ttl=").next().unwrap().parse().unwrap();
    assert!(
        line.starts_with("db0:keys=2,expires=1,") && avg > 90_000 && avg <= 100_000,
        "{line}"
    );
    assert_eq!(c.call("CONFIG RESETSTAT"), "+OK");
    let stats = c.call("INFO commandstats");
    assert!(!stats.contains("cmdstat_set"), "{stats}");
    assert!(c.call("INFO stats").contains("total_commands_processed:"));
    assert_eq!(c.call("INFO CPU nosuch").lines().next(), Some("# CPU"));
}

/// INFO memory counts as Redis does: `used_memory` is the allocator's
/// (jemalloc's) live bytes, so it grows with the data and falls when the
/// data goes; the RSS and the peak are beside it.
#[test]
fn info_memory_is_the_allocators_count() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let mut c = Raw::open(engine.port);
    let field = |c: &mut Raw, name: &str| -> String {
        let info = c.call("INFO memory");
        let prefix = format!("{name}:");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
            .unwrap_or_else(|| panic!("{name} in {info}"))
    };
    let num = |c: &mut Raw, name: &str| -> u64 { field(c, name).parse().unwrap() };
    assert!(field(&mut c, "mem_allocator").starts_with("jemalloc-5."));
    let empty = num(&mut c, "used_memory");
    let value = "v".repeat(10_000);
    for i in 0..1000 {
        assert_eq!(c.call(&format!("SET big:{i} {value}")), "+OK");
    }
    let full = num(&mut c, "used_memory");
    assert!(full >= empty + 10_000_000, "{empty} -> {full}");
    assert!(num(&mut c, "used_memory_rss") >= full / 2);
    assert!(num(&mut c, "used_memory_peak") >= full);
    assert_eq!(c.call("FLUSHALL"), "+OK");
    let flushed = num(&mut c, "used_memory");
    assert!(flushed + 9_000_000 < full, "{full} -> {flushed}");
    assert!(num(&mut c, "used_memory_peak") >= full);
}

/// Memory freed by FLUSHALL goes back to the system while the engine is
/// idle (jemalloc's background purge, as Redis runs it), not only when it
/// next allocates.
#[test]
fn freed_memory_returns_to_the_system_while_idle() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path(), &["--no-preallocate"]);
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        kb * 1024
    };
    let mut c = engine.client().get_connection().unwrap();
    let value = vec![b'v'; 1000];
    for chunk in 0..100 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("k:{chunk}:{i}"))
                .arg(&value)
                .ignore();
        }
        let () = p.query(&mut c).unwrap();
    }
    let pid = engine.child.id();
    let full = rss(pid);
    assert!(full > 100_000_000, "{full}");
    let () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    // no request from here on: only the background purge can return pages
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let now = rss(pid);
        if now < full / 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "RSS {full} -> {now} after 40 s idle"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn bit_sort_dump_and_transaction_errors_like_redis() {
    let binary = req(&[b"SETBIT", b"k\xff", b"1\x00", b"1"]);
    let restore_binary = req(&[b"RESTORE", b"k\xfe", b"0", b"\x00\xc0\x0c\x0a\x00\xff\xff"]);
    same_as_redis(&[
        b"SETBIT k 4294967296 1\r\nSETBIT k 0 2\r\nSETBIT k x 1\r\nGETBIT k -1\r\nRPUSH l a\r\n\
          SETBIT l 0 1\r\nBITCOUNT l\r\nBITPOS l 2\r\nBITPOS l 1\r\nBITOP NOT d a b\r\n\
          BITOP nand d a\r\nBITOP AND d l\r\nBITFIELD k GET u64 0\r\nBITFIELD k OVERFLOW x\r\n\
          BITFIELD_RO k SET u8 0 1\r\nBITFIELD l GET u8 0\r\nBITCOUNT k 0\r\nDEL l\r\n",
        b"SORT k BOGUS\r\nSORT k LIMIT 0\r\nSET s x\r\nSORT s\r\nSORT_RO s STORE d\r\n\
          RPUSH l a\r\nSORT l\r\nSORT l STORE d\r\nEXISTS d\r\nDEL s l\r\n",
        b"RESTORE k 0 junk\r\nRESTORE k -1 junk\r\nRESTORE k 0 junk BOGUS\r\n\
          RESTORE k 0 junk FREQ 300\r\nRESTORE k 0 junk IDLETIME -1\r\nDUMP nokey\r\n",
        b"MULTI\r\nSET foo bar\r\nSAVE\r\nEXEC\r\nGET foo\r\n",
        b"MULTI\r\nSHUTDOWN\r\nEXEC\r\n",
        b"MULTI\r\nSET foo 1\r\nRESET\r\nEXEC\r\nGET foo\r\n",
        b"SHUTDOWN ABORT\r\nSHUTDOWN SAVE NOSAVE\r\nSHUTDOWN BOGUS\r\n",
        &binary,
        &restore_binary,
        b"DEL k\r\n",
    ]);
}
