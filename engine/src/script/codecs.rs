//! `cjson` and `cmsgpack` for scripts, written after the behaviour of the
//! Lua CJSON and lua_cmsgpack libraries Redis bundles (the parts scripts
//! use: encode/decode with their depth and number settings, pack/unpack).

use std::sync::{Arc, Mutex};

use mlua::{LightUserData, Lua, Table, Value, Variadic};

fn rt(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(msg.into())
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

// ---------------------------------------------------------------- cjson

#[derive(Debug, Clone)]
struct JsonCfg {
    encode_max_depth: usize,
    decode_max_depth: usize,
    encode_invalid_numbers: bool,
    decode_invalid_numbers: bool,
}

impl Default for JsonCfg {
    fn default() -> Self {
        JsonCfg {
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: false,
            decode_invalid_numbers: true,
        }
    }
}

fn json_null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// cjson's `%.14g`.
fn fmt_g14(d: f64) -> String {
    if d.is_finite() && d == d.trunc() && d.abs() < 1e15 {
        return format!("{}", d as i64);
    }
    let s = format!("{:.13e}", d);
    let (m, e) = s.split_once('e').expect("exponent");
    let e: i32 = e.parse().expect("exponent");
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..14).contains(&e) {
        format!(
            "{}e{}{:02}",
            trim(m),
            if e < 0 { '-' } else { '+' },
            e.abs()
        )
    } else {
        trim(&format!("{:.*}", (13 - e).max(0) as usize, d))
    }
}

fn json_string(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in b {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

/// The array length of `t` when every key is a positive integer (None: an
/// object).
fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let mut max = 0usize;
    let mut n = 0usize;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match num(&k) {
            Some(f) if f >= 1.0 && f == f.trunc() => {
                max = max.max(f as usize);
                n += 1;
            }
            _ => return Ok(None),
        }
    }
    if n == 0 {
        return Ok(None);
    }
    if max > n * 2 && max > 10 {
        return Err(rt("Cannot serialise table: excessively sparse array"));
    }
    Ok(Some(max))
}

fn json_encode(v: &Value, cfg: &JsonCfg, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Number(d) => {
            if !d.is_finite() {
                if !cfg.encode_invalid_numbers {
                    return Err(rt("Cannot serialise number: must not be NaN or Inf"));
                }
                let s = if d.is_nan() {
                    "nan"
                } else if *d > 0.0 {
                    "inf"
                } else {
                    "-inf"
                };
                out.extend_from_slice(s.as_bytes());
            } else {
                out.extend_from_slice(fmt_g14(*d).as_bytes());
            }
        }
        Value::String(s) => json_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth {
                return Err(rt(format!("Cannot serialise, excessive nesting ({depth})")));
            }
            match array_len(t)? {
                Some(n) => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        json_encode(&t.raw_get::<Value>(i)?, cfg, depth, out)?;
                    }
                    out.push(b']');
                }
                None => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, val) = pair?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => json_string(&s.as_bytes(), out),
                            Value::Integer(n) => json_string(n.to_string().as_bytes(), out),
                            Value::Number(d) => json_string(fmt_g14(*d).as_bytes(), out),
                            _ => {
                                return Err(rt(
                                    "Cannot serialise table: table key must be a number or string",
                                ))
                            }
                        }
                        out.push(b':');
                        json_encode(&val, cfg, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(rt(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            )))
        }
    }
    Ok(())
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
    cfg: &'a JsonCfg,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> mlua::Error {
        rt(format!(
            "Expected {what} but found invalid token at character {}",
            self.i + 1
        ))
    }

    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return Err(rt(format!(
                "Expected value but found T_END at character {}",
                self.i + 1
            )));
        };
        match c {
            b'{' | b'[' => {
                let depth = depth + 1;
                if depth > self.cfg.decode_max_depth {
                    return Err(rt(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        self.i + 1
                    )));
                }
                self.i += 1;
                let t = lua.create_table()?;
                let close = if c == b'{' { b'}' } else { b']' };
                self.ws();
                if self.s.get(self.i) == Some(&close) {
                    self.i += 1;
                    return Ok(Value::Table(t));
                }
                let mut n = 1;
                loop {
                    if c == b'{' {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return Err(self.err("object key string"));
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return Err(self.err("colon"));
                        }
                        self.i += 1;
                        let v = self.value(lua, depth)?;
                        t.raw_set(lua.create_string(&k)?, v)?;
                    } else {
                        let v = self.value(lua, depth)?;
                        t.raw_set(n, v)?;
                        n += 1;
                    }
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(&x) if x == close => {
                            self.i += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => return Err(self.err("comma or closing bracket")),
                    }
                }
            }
            b'"' => Ok(Value::String(lua.create_string(self.string()?)?)),
            b't' if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(json_null())
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(self.s[self.i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'x' | b'X' | b'a'..=b'd' | b'f' | b'A'..=b'D' | b'F' | b'i' | b'n' | b'I' | b'N')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let lower = text.to_ascii_lowercase();
                let v = match lower.as_str() {
                    "nan" | "-nan" | "inf" | "-inf" | "infinity" | "-infinity"
                        if self.cfg.decode_invalid_numbers =>
                    {
                        if lower.trim_start_matches('-').starts_with('n') {
                            f64::NAN
                        } else if lower.starts_with('-') {
                            f64::NEG_INFINITY
                        } else {
                            f64::INFINITY
                        }
                    }
                    _ => text.parse::<f64>().map_err(|_| {
                        self.i = start;
                        self.err("value")
                    })?,
                };
                Ok(Value::Number(v))
            }
        }
    }

    fn string(&mut self) -> mlua::Result<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(rt(format!(
                    "Expected string but found invalid token at character {}",
                    self.i + 1
                )));
            };
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("escape"));
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'u' => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .ok_or_else(|| self.err("unicode escape"))?;
                            let mut cp =
                                u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("x"), 16)
                                    .map_err(|_| self.err("unicode escape"))?;
                            self.i += 4;
                            if (0xD800..0xDC00).contains(&cp)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                if let Some(lo) = self
                                    .s
                                    .get(self.i + 2..self.i + 6)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                                {
                                    if (0xDC00..0xE000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                        self.i += 6;
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

fn cjson(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Arc::new(Mutex::new(JsonCfg::default()));
    let get = |c: &Arc<Mutex<JsonCfg>>| c.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |lua, v: Value| {
            let mut out = Vec::new();
            json_encode(&v, &get(&c), 0, &mut out)?;
            lua.create_string(out)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, s: mlua::String| {
            let cfg = get(&c);
            let b = s.as_bytes();
            let mut p = JsonParser {
                s: &b,
                i: 0,
                cfg: &cfg,
            };
            let v = p.value(lua, 0)?;
            p.ws();
            if p.i < b.len() {
                return Err(p.err("the end"));
            }
            Ok(v)
        })?,
    )?;
    type Setter = fn(&mut JsonCfg, &Value);
    let setters: &[(&str, Setter)] = &[
        ("encode_max_depth", |c, v| {
            if let Some(n) = num(v) {
                c.encode_max_depth = n.max(1.0) as usize
            }
        }),
        ("decode_max_depth", |c, v| {
            if let Some(n) = num(v) {
                c.decode_max_depth = n.max(1.0) as usize
            }
        }),
        ("encode_invalid_numbers", |c, v| {
            c.encode_invalid_numbers = matches!(v, Value::Boolean(true))
                || matches!(v, Value::String(s) if &*s.as_bytes() == b"on")
        }),
        ("decode_invalid_numbers", |c, v| {
            c.decode_invalid_numbers = matches!(v, Value::Boolean(true))
                || matches!(v, Value::String(s) if &*s.as_bytes() == b"on")
        }),
        ("encode_keep_buffer", |_, _| {}),
        ("encode_number_precision", |_, _| {}),
        ("encode_sparse_array", |_, _| {}),
    ];
    for (name, set) in setters {
        let c = cfg.clone();
        let set = *set;
        t.raw_set(
            *name,
            lua.create_function(move |_, args: Variadic<Value>| {
                if let Some(v) = args.first() {
                    set(&mut c.lock().unwrap_or_else(|p| p.into_inner()), v);
                }
                Ok(())
            })?,
        )?;
    }
    t.raw_set("null", json_null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

// ---------------------------------------------------------------- cmsgpack

/// lua_cmsgpack's nesting limit: deeper tables are packed as nil.
const MAX_NESTING: usize = 16;

fn mp_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn mp_len(len: usize, fix: u8, fix_max: usize, codes: [u8; 2], out: &mut Vec<u8>) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if len <= 0xffff {
        out.push(codes[0]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(codes[1]);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn mp_encode(v: &Value, level: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Table(_) if level == MAX_NESTING => out.push(0xc0),
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => mp_int(*n, out),
        Value::Number(d) => {
            if d.is_finite() && *d == d.trunc() && d.abs() < 9.2e18 {
                mp_int(*d as i64, out);
            } else if f64::from(*d as f32) == *d || d.is_nan() {
                out.push(0xca);
                out.extend_from_slice(&(*d as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&d.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let len = b.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else if len <= 0xff {
                out.extend_from_slice(&[0xd9, len as u8]);
            } else if len <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) => {
            // an array: keys 1..n exactly
            let mut count = 0usize;
            let mut max = 0usize;
            let mut is_array = true;
            for pair in t.pairs::<Value, Value>() {
                let (k, _) = pair?;
                count += 1;
                match num(&k) {
                    Some(f) if f >= 1.0 && f == f.trunc() => max = max.max(f as usize),
                    _ => is_array = false,
                }
            }
            if is_array && max == count {
                mp_len(count, 0x90, 15, [0xdc, 0xdd], out);
                for i in 1..=count {
                    mp_encode(&t.raw_get::<Value>(i)?, level + 1, out)?;
                }
            } else {
                mp_len(count, 0x80, 15, [0xde, 0xdf], out);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    mp_encode(&k, level + 1, out)?;
                    mp_encode(&v, level + 1, out)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

struct MpCursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl MpCursor<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        if self.i + n > self.b.len() {
            return Err(rt("Missing bytes in input."));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| a << 8 | u64::from(b)))
    }

    fn decode(&mut self, lua: &Lua) -> mlua::Result<Value> {
        let c = self.take(1)?[0];
        let str_of = |me: &mut Self, n: usize| -> mlua::Result<Value> {
            let s = me.take(n)?.to_vec();
            Ok(Value::String(lua.create_string(s)?))
        };
        Ok(match c {
            0x00..=0x7f => Value::Number(f64::from(c)),
            0x80..=0x8f => self.map(lua, usize::from(c & 0x0f))?,
            0x90..=0x9f => self.array(lua, usize::from(c & 0x0f))?,
            0xa0..=0xbf => str_of(self, usize::from(c & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                str_of(self, n)?
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                str_of(self, n)?
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                str_of(self, n)?
            }
            0xca => {
                let b = self.take(4)?;
                Value::Number(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            0xcb => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Number(f64::from_be_bytes(a))
            }
            0xcc => Value::Number(self.uint(1)? as f64),
            0xcd => Value::Number(self.uint(2)? as f64),
            0xce => Value::Number(self.uint(4)? as f64),
            0xcf => Value::Number(self.uint(8)? as f64),
            0xd0 => Value::Number(f64::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Number(f64::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Number(f64::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Number(self.uint(8)? as i64 as f64),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(lua, n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(lua, n)?
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(lua, n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(lua, n)?
            }
            0xe0..=0xff => Value::Number(f64::from(c as i8)),
            _ => return Err(rt("Bad data format in input.")),
        })
    }

    fn array(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for i in 1..=n {
            let v = self.decode(lua)?;
            t.raw_set(i, v)?;
        }
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize) -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for _ in 0..n {
            let k = self.decode(lua)?;
            let v = self.decode(lua)?;
            if !k.is_nil() {
                t.raw_set(k, v)?;
            }
        }
        Ok(Value::Table(t))
    }
}

/// lua_cmsgpack's `mp_unpack_full`: up to `limit` objects from `offset`
/// (None: all, and no offset returned).
fn mp_unpack(
    lua: &Lua,
    s: &[u8],
    limit: Option<i64>,
    offset: i64,
) -> mlua::Result<Variadic<Value>> {
    let len = s.len() as i64;
    if offset < 0 || limit.is_some_and(|l| l < 0) {
        return Err(rt(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            limit.unwrap_or(0)
        )));
    }
    if offset > len {
        return Err(rt(format!(
            "Start offset {offset} greater than input length {len}."
        )));
    }
    let mut c = MpCursor {
        b: s,
        i: offset as usize,
    };
    let max = match limit {
        None | Some(0) => i64::MAX,
        Some(l) => l,
    };
    let mut vals = Vec::new();
    let mut n = 0;
    while c.i < s.len() && n < max {
        vals.push(c.decode(lua)?);
        n += 1;
    }
    if limit.is_some() {
        let next = if c.i < s.len() { c.i as i64 } else { -1 };
        vals.insert(0, Value::Number(next as f64));
    }
    Ok(Variadic::from_iter(vals))
}

fn cmsgpack(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: Variadic<Value>| {
            if args.is_empty() {
                return Err(rt("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                mp_encode(v, 0, &mut out)?;
            }
            lua.create_string(out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::String| mp_unpack(lua, &s.as_bytes(), None, 0))?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::String, Option<f64>)| {
            mp_unpack(lua, &s.as_bytes(), Some(1), offset.unwrap_or(0.0) as i64)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::String, f64, Option<f64>)| {
                mp_unpack(
                    lua,
                    &s.as_bytes(),
                    Some(limit as i64),
                    offset.unwrap_or(0.0) as i64,
                )
            },
        )?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    Ok(t)
}

/// Puts `cjson` and `cmsgpack` in the globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("cjson", cjson(lua)?)?;
    g.raw_set("cmsgpack", cmsgpack(lua)?)?;
    Ok(())
}
