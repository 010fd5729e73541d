//! Commands: one type per command, in one file (a small family of commands
//! that share one logged payload shares a file), registered by one line in
//! [`TABLE`]. Nothing else in the engine matches on commands: the
//! dispatcher ([`parse`]), the log writer and every replay of the log
//! (recovery, the snapshotter, `dump`) go through the traits below.
//!
//! - [`Command`]: what a client sends. Its name, arity, flags and key
//!   positions, and `parse`: RESP arguments -> an [`Action`] (arity and
//!   syntax errors are replies worded as Redis 7 words them). Validation
//!   happens here, so a command that fails it is never logged.
//! - [`Effect`]: what is logged and applied. A write command parses into an
//!   effect (EXPIRE 10 -> `PExpireAt` with an absolute time, INCR ->
//!   `IncrBy 1`): its payload (`encode_body` / `decode_body`, the bytes drawn
//!   in its file), and `apply`, the one function that changes the state, run
//!   live when the command is executed (its payload is then logged, and its
//!   reply held until the record is durable) and again by every replay. Applying is
//!   total and deterministic given the state, the effect and the record's
//!   timestamp, so a replay reproduces the state and the replies served.
//! - [`Read`]: a read, run against the state; its reply is held until
//!   every effect executed before it is durable.
//! - [`Request`]: a write logged as its outcome (ZPOPMIN: the members
//!   popped; ZUNIONSTORE: the resulting set): resolved against the state it
//!   runs on into the [`Effect`] that is logged ([`Write::resolve`]), or
//!   into a reply when it changes nothing.
//!
//! A log payload is `op u8 | body`; the op selects the effect through the
//! registry built from [`TABLE`] ([`apply_payload`], [`replay_payload`],
//! [`decode_payload`], [`describe_payload`]). Effects compose: an effect may hold other effects'
//! payloads (a transaction or a script logged as one record), decoded by
//! [`decode_payload`].
//!
//! # Adding a command
//! One file `cmd/<name>.rs` with a type implementing [`Command`] (and
//! [`Effect`] with a new op for a write, or [`Read`] for a read), a `mod`
//! line and one [`TABLE`] line `spec::<name::Type>()`. See the test-only
//! command in `cmd/fake.rs`.

pub mod arg;
pub mod codec;
mod glob;
pub mod ldouble;

mod append;
mod bitcount;
mod bitfield;
mod bitop;
mod bitpos;
mod bits;
mod blist;
mod bzpop;
mod command;
pub mod config;
mod config_params;
mod connection;
mod copy;
mod del;
mod dump;
mod eval;
mod exists;
mod expire;
mod expiretime;
mod flushall;
mod get;
mod getbit;
mod getdel;
mod getex;
mod getrange;
mod hdel;
mod hexists;
mod hget;
mod hgetall;
mod hincrby;
mod hincrbyfloat;
mod hkeys;
mod hlen;
mod hmget;
mod hmset;
mod hrandfield;
mod hscan;
mod hset;
mod hsetnx;
mod incrby;
mod incrbyfloat;
mod keys;
mod lcs;
mod ledit;
mod list;
mod lmove;
mod lread;
mod memory;
mod mget;
mod mset;
mod msetnx;
mod multi;
mod object;
mod persist;
mod pop;
mod pubsub;
mod push;
mod randomkey;
mod rdb;
mod rename;
mod restore;
mod scan;
mod server;
mod set;
mod setbit;
mod setex;
mod setnx;
mod setrange;
mod shutdown;
mod sort;
mod strlen;
mod touch;
mod ttl;
mod typ;
mod unlink;
mod wait;

// sets
mod sadd;
mod scombine;
pub mod sets;
mod smove;
mod spop;
mod srandmember;
mod sread;
mod srem;
mod sscan;
mod sstore;

// sorted sets
mod zadd;
mod zpop;
mod zrandmember;
mod zrange;
mod zread;
mod zrem;
mod zscan;
pub mod zset;
mod zstore;
mod zunion;

#[cfg(test)]
mod compat_tests;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod zset_tests;

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

pub use append::Append;
pub use codec::{quote, DecodeError, Decoder};
pub use connection::ClientFilter;
pub use del::Del;
pub use expire::PExpireAt;
pub use flushall::FlushAll;
pub use getdel::GetDel;
pub use glob::glob_match;
pub use hdel::HDel;
pub use hincrby::HIncrBy;
pub use hset::HSet;
pub use incrby::IncrBy;
pub use ledit::{LInsert, LRem, LSet, LTrim};
pub use lmove::{LMPop, LMove};
pub use mget::MAX_MGET_REPLY_BYTES;
pub use mset::MSet;
pub use multi::{Transaction, Txn};
pub use persist::Persist;
pub use pop::Pop;
pub use push::Push;
pub use sadd::SAdd;
pub use set::{Set, SetCondition};
pub use smove::SMove;
pub use spop::SPop;
pub use srem::SRem;
pub use sstore::SStore;
pub use zadd::{ZAdd, ZSetScore};
pub use zpop::{pop as zpop, Shape as ZPopShape, ZPopped};
pub use zrem::ZRem;
pub use zstore::ZStore;

use crate::db::Db;
use crate::record::Record;
use crate::reply::{self, Reply};
pub use crate::resp::Protocol;

// ---------------------------------------------------------------- traits

/// A command a client sends: its table facts and its parser.
pub trait Command {
    /// Lower-case name.
    const NAME: &'static str;
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at
    /// least n. Checked before [`Command::parse`] runs.
    const ARITY: i64;
    const FLAGS: Flags;
    /// Which arguments are keys.
    const KEYS: Keys = Keys::NONE;
    /// The payload a write command logs: `Some(effect::<T>())`. Registers
    /// the effect's op for replay.
    const EFFECT: Option<EffectSpec> = None;
    /// Further effects this command logs (what [`Effect::resolve`] turns
    /// its effect into), registered for replay like [`Command::EFFECT`].
    const ALSO_LOGS: &'static [EffectSpec] = &[];

    /// Arguments (the name first, arity already checked) -> what to do;
    /// `Err` is the error reply (nothing is logged). `now_ms` turns relative
    /// expiry into absolute time.
    fn parse(args: Vec<Vec<u8>>, now_ms: u64) -> Result<Action, Reply>;
}

/// A logged state change: one record's payload.
pub trait Effect: Sized + Send + std::fmt::Debug + 'static {
    /// The payload's first byte; unique per effect, never reused.
    const OP: u8;
    /// Upper-case name (dumps).
    const NAME: &'static str;

    /// The body after the op byte.
    fn encode_body(&self, out: &mut Vec<u8>);
    /// Reads the body written by [`Effect::encode_body`] (the decoder's
    /// trailing bytes are checked by the caller).
    fn decode_body(d: &mut Decoder<'_>) -> Result<Self, DecodeError>;
    /// Changes the state at `now_ms` (the record's timestamp) and returns
    /// the reply. The same call serves live writes and replays.
    fn apply(self, db: &mut Db, now_ms: u64) -> Reply;
    /// The redis-cli-like text of `dump` (expiry as absolute time).
    fn describe(&self) -> String;

    /// True when applying may fail (type or integer errors): worth a
    /// [`Effect::precheck`] before logging.
    fn may_fail(&self) -> bool {
        false
    }

    /// The error this effect would fail with against `db`, so that it can
    /// be refused before it is logged. Applying stays total: an effect that
    /// passes here and fails later fails identically on replay.
    fn precheck(&self, _db: &Db, _now_ms: u64) -> Option<Reply> {
        None
    }

    /// Settles a choice the effect leaves to the state it runs on (which
    /// members SPOP removes), so that what is logged is what was done:
    /// called once, live, after [`Effect::precheck`] and before the
    /// payload is encoded; never on replay, which applies what was logged.
    fn settle(&mut self, _db: &Db, _now_ms: u64) {}
    /// The effect to log and apply instead of `self`, given the state it
    /// runs on (after [`Effect::precheck`] passed): INCRBYFLOAT logs the
    /// value it stores, as Redis propagates a SET. Default: itself.
    fn resolve(self, _db: &Db, _now_ms: u64) -> Box<dyn Write> {
        Box::new(self)
    }

    /// How many bytes longer than `self`'s payload the resolved effect's
    /// may be (a transaction's size is checked before anything runs).
    const RESOLVE_GROWTH: usize = 0;

    /// The keys Redis signals to WATCH as modified by this write, and when
    /// (by its reply), although their value may be unchanged (a SET of the
    /// same value). Keys whose entry changed are found by comparison
    /// whatever this says.
    fn signal(&self) -> (Signal, Vec<&[u8]>) {
        (Signal::Never, Vec::new())
    }

    /// The whole payload: `op | body`.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.push(Self::OP);
        self.encode_body(&mut out);
        out
    }

    /// Parses a whole payload of this effect; trailing bytes are refused.
    fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut d = body_decoder::<Self>(payload)?;
        let v = Self::decode_body(&mut d)?;
        d.finish()?;
        Ok(v)
    }

    /// Applies a whole logged payload of this effect on replay, where no
    /// reply is wanted (recovery, the snapshotter). Default: [`Effect::decode`]
    /// then [`Effect::apply`]. An effect may override it with a path that
    /// reads its payload in place (no allocation per record): it must refuse
    /// what `decode` refuses and leave exactly the state `apply` leaves
    /// (including the expiry index, [`Db::track_expiry`]).
    fn replay(payload: &[u8], db: &mut Db, now_ms: u64) -> Result<(), DecodeError> {
        Self::decode(payload)?.apply(db, now_ms);
        Ok(())
    }

    /// The key a payload of this effect looks up first, read in place, for
    /// warming the keyspace before a group of records is replayed
    /// ([`ReplayQueue`]); None when unknown or not worth it. A hint only.
    fn replay_key(_payload: &[u8]) -> Option<&[u8]> {
        None
    }
}

/// A decoder of `payload` past its op byte, which must be `T`'s.
pub(crate) fn body_decoder<T: Effect>(payload: &[u8]) -> Result<Decoder<'_>, DecodeError> {
    let mut d = Decoder::new(payload);
    let op = d.u8().map_err(|_| DecodeError::Empty)?;
    if op != T::OP {
        return Err(DecodeError::WrongOp {
            expected: T::OP,
            found: op,
        });
    }
    Ok(d)
}

/// An effect as the writer sees it (object-safe, implemented for every
/// [`Effect`], and for every [`Request`] wrapped by [`Action::request`]).
pub trait Write: Send + std::fmt::Debug {
    /// Appends the whole payload.
    fn encode_into(&self, out: &mut Vec<u8>);
    fn may_fail(&self) -> bool;
    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply>;
    fn settle(&mut self, db: &Db, now_ms: u64);
    fn apply_boxed(self: Box<Self>, db: &mut Db, now_ms: u64) -> Reply;
    fn describe(&self) -> String;
    fn signal(&self) -> (Signal, Vec<&[u8]>);
    /// What to log and apply, decided against the state the write runs on
    /// (after [`Write::precheck`] and [`Write::settle`], before
    /// [`Write::encode_into`]): an effect is what [`Effect::resolve`] makes
    /// it (itself, or INCRBYFLOAT's stored value); a [`Request`] becomes the
    /// effect it has on this state, or a reply that changes nothing and
    /// logs nothing.
    fn resolve(self: Box<Self>, db: &Db, now_ms: u64) -> Resolved;
    fn resolve_growth(&self) -> usize;
}

/// When a write's keys count as modified for WATCH even if unchanged
/// ([`Effect::signal`]); only keys that existed before the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Only when the entry changed.
    Never,
    /// Any reply but an error.
    Success,
    /// The reply OK.
    Ok,
    /// OK or a bulk string (SET … GET that set).
    OkOrBulk,
    /// An integer above 0 (EXPIRE 1, COPY 1, SORT … STORE n).
    Positive,
}

impl Signal {
    /// Whether a write that answered `reply` signals its keys.
    pub fn fires(self, reply: &Reply) -> bool {
        match self {
            Signal::Never => false,
            Signal::Success => !reply.is_error(),
            Signal::Ok => matches!(reply, Reply::Ok),
            Signal::OkOrBulk => matches!(reply, Reply::Ok | Reply::Bulk(_)),
            Signal::Positive => matches!(reply, Reply::Int(n) if *n > 0),
        }
    }
}

/// What a write resolves to.
pub enum Resolved {
    /// Log and apply this effect.
    Write(Box<dyn Write>),
    /// Answer this (an error, or the reply of a write that changes
    /// nothing); nothing is logged.
    Reply(Reply),
}

/// A write logged as its outcome rather than as the request: what it
/// removes or stores depends on the state, and recomputing it on replay
/// would be costly or float-sensitive (ZPOPMIN logs the members popped,
/// ZINCRBY the resulting score, ZUNIONSTORE the resulting set). It is
/// resolved against the state it runs on into an [`Effect`]; only that
/// effect is logged.
pub trait Request: Send + std::fmt::Debug + 'static {
    fn resolve(self, db: &Db, now_ms: u64) -> Resolved;
}

/// A [`Request`] as a [`Write`]. It is resolved before it is encoded or
/// applied (by the execution core); applying one directly resolves it
/// first. Its own encoding is empty (a transaction's size estimate).
#[derive(Debug)]
pub struct Resolving<R: Request>(R);

impl<R: Request> Write for Resolving<R> {
    fn encode_into(&self, _out: &mut Vec<u8>) {}
    fn may_fail(&self) -> bool {
        false
    }
    fn precheck(&self, _db: &Db, _now_ms: u64) -> Option<Reply> {
        None
    }
    fn apply_boxed(self: Box<Self>, db: &mut Db, now_ms: u64) -> Reply {
        match self.0.resolve(db, now_ms) {
            Resolved::Write(w) => w.apply_boxed(db, now_ms),
            Resolved::Reply(r) => r,
        }
    }
    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
    fn resolve(self: Box<Self>, db: &Db, now_ms: u64) -> Resolved {
        self.0.resolve(db, now_ms)
    }
    fn settle(&mut self, _db: &Db, _now_ms: u64) {}
    fn signal(&self) -> (Signal, Vec<&[u8]>) {
        (Signal::Never, Vec::new())
    }
    fn resolve_growth(&self) -> usize {
        0
    }
}

impl<T: Effect> Write for T {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(T::OP);
        self.encode_body(out);
    }
    fn may_fail(&self) -> bool {
        Effect::may_fail(self)
    }
    fn precheck(&self, db: &Db, now_ms: u64) -> Option<Reply> {
        Effect::precheck(self, db, now_ms)
    }
    fn settle(&mut self, db: &Db, now_ms: u64) {
        Effect::settle(self, db, now_ms)
    }
    fn apply_boxed(self: Box<Self>, db: &mut Db, now_ms: u64) -> Reply {
        (*self).apply(db, now_ms)
    }
    fn describe(&self) -> String {
        Effect::describe(self)
    }
    fn signal(&self) -> (Signal, Vec<&[u8]>) {
        Effect::signal(self)
    }
    fn resolve(self: Box<Self>, db: &Db, now_ms: u64) -> Resolved {
        Resolved::Write(Effect::resolve(*self, db, now_ms))
    }
    fn resolve_growth(&self) -> usize {
        T::RESOLVE_GROWTH
    }
}

/// A read, run against the state (its reply is held until what it may show
/// is durable).
pub trait Read: Send {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply;
}

/// What to do with a request.
pub enum Action {
    /// Answered without the state (PING, errors).
    Reply(Reply),
    /// A state change: applied, logged, answered once durable.
    Write(Box<dyn Write>),
    /// Served from the state, answered once what it shows is durable.
    Read(Box<dyn Read>),
    /// Reply OK and close the connection.
    Quit,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH: run by the execution core,
    /// which owns the connection's transaction state.
    Txn(Txn),
    /// Pub/sub, MONITOR, CLIENT REPLY, RESET: run by the execution core
    /// against the connection's subscriptions ([`crate::pubsub`]).
    PubSub(crate::pubsub::Op),
    /// A blocking command (BLPOP…): served now, or the connection waits
    /// ([`crate::blocking`]); inside MULTI/EXEC or a script it is its
    /// non-blocking variant, [`crate::blocking::Block::now`].
    Block(crate::blocking::Block),
    /// EVAL, FCALL, SCRIPT, FUNCTION: run by the scripting engine
    /// ([`crate::script`]) with the execution core's state.
    Script(crate::script::Request),
}

impl Action {
    pub fn write(e: impl Effect) -> Action {
        Action::Write(Box::new(e))
    }

    /// A write resolved against the state before it is logged.
    pub fn request(r: impl Request) -> Action {
        Action::Write(Box::new(Resolving(r)))
    }

    pub fn read(r: impl Read + 'static) -> Action {
        Action::Read(Box::new(r))
    }
}

/// Context a read runs in.
pub struct ReadCtx<'a> {
    pub db: &'a Db,
    pub now_ms: u64,
    pub conn: &'a mut ConnState,
    pub server: &'a dyn ServerInfo,
}

/// What server commands (INFO, CONFIG, CLIENT) need from the server.
pub trait ServerInfo {
    /// INFO text for `sections` (lower case; none: the default ones;
    /// `default`, `all`, `everything` as Redis reads them).
    fn info(&self, sections: &[String], db: &Db, now_ms: u64) -> String;
    /// The parameters CONFIG GET/SET read and change.
    fn config(&self) -> &config::ConfigStore;
    /// CONFIG RESETSTAT: zero the statistics INFO reports.
    fn reset_stats(&self);
    /// CLIENT LIST lines (each ending in a newline) of `ids` (all:
    /// `None`); the caller `me` is shown running `me_cmd`.
    fn client_list(&self, ids: Option<&[u64]>, me: u64, me_cmd: &str) -> String;
    /// CLIENT KILL: closes the matching clients; how many.
    fn client_kill(&self, filter: &ClientFilter, me: u64) -> usize;
    /// CLIENT UNBLOCK: answers blocked client `id` with its timeout reply
    /// (or, `error`, the UNBLOCKED error); false when it is not blocked.
    fn client_unblock(&self, _id: u64, _error: bool) -> bool {
        false
    }
    /// SHUTDOWN: stops the server cleanly (connections finish, the log is
    /// closed); false when this server cannot be stopped from a client.
    fn shutdown(&self) -> bool {
        false
    }
}

/// The Redis version the engine answers as (HELLO, INFO).
pub const REDIS_VERSION: &str = "7.0.0";

/// Per-connection state: protocol, client name, id. (SCAN cursors are
/// stateless.)
#[derive(Debug, Default)]
pub struct ConnState {
    pub id: u64,
    pub name: Option<Vec<u8>>,
    /// What replies are encoded in (HELLO); the server encodes each reply
    /// with the protocol in force when the command ran.
    pub proto: Protocol,
    /// CLIENT NO-EVICT (shown by CLIENT LIST; the engine evicts nothing).
    pub no_evict: bool,
}

impl ConnState {
    pub fn new(id: u64) -> ConnState {
        ConnState {
            id,
            ..Default::default()
        }
    }

    /// RESET: back to a newly connected client's state (RESP2, no name);
    /// the id stays.
    pub fn reset(&mut self) {
        *self = ConnState::new(self.id);
    }
}

// ---------------------------------------------------------------- table

/// Command flags (Redis's `write`, `readonly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// Touches no state (PING, CLIENT, errors).
    pub const NONE: Flags = Flags(0);
    /// Changes the state: logged.
    pub const WRITE: Flags = Flags(1);
    /// Reads the state.
    pub const READONLY: Flags = Flags(2);
    /// Refused inside MULTI (Redis's `no-multi`: SAVE, SHUTDOWN).
    pub const NO_MULTI: Flags = Flags(4);
    /// Options name more keys than [`Keys`] gives (SORT … STORE dest):
    /// WATCH compares every watched key around such a write.
    pub const MOVABLE_KEYS: Flags = Flags(8);

    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

/// Key positions as Redis gives them: the first key argument, the last
/// (negative: from the end), the step. `first == 0`: no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub first: usize,
    pub last: i64,
    pub step: usize,
}

impl Keys {
    pub const NONE: Keys = Keys::range(0, 0, 0);
    /// The first argument is the only key.
    pub const ONE: Keys = Keys::range(1, 1, 1);

    pub const fn range(first: usize, last: i64, step: usize) -> Keys {
        Keys { first, last, step }
    }

    /// The keys among `args` (the name first).
    pub fn of<'a>(&self, args: &'a [Vec<u8>]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let n = args.len() as i64;
        let last = if self.last < 0 {
            n + self.last
        } else {
            self.last.min(n - 1)
        };
        let keys = if self.first == 0 || last < self.first as i64 {
            &args[..0]
        } else {
            &args[self.first..=last as usize]
        };
        keys.iter().step_by(self.step.max(1)).map(Vec::as_slice)
    }
}

/// A decoded payload, of any effect.
pub type AnyEffect = Box<dyn Write>;

/// How the log's payload of one effect is decoded, applied and printed.
#[derive(Clone, Copy)]
pub struct EffectSpec {
    pub op: u8,
    pub name: &'static str,
    apply: fn(&[u8], &mut Db, u64) -> Result<Reply, DecodeError>,
    replay: fn(&[u8], &mut Db, u64) -> Result<(), DecodeError>,
    replay_key: fn(&[u8]) -> Option<&[u8]>,
    decode: fn(&[u8]) -> Result<AnyEffect, DecodeError>,
    describe: fn(&[u8]) -> Result<String, DecodeError>,
}

fn apply_as<T: Effect>(payload: &[u8], db: &mut Db, now_ms: u64) -> Result<Reply, DecodeError> {
    Ok(T::decode(payload)?.apply(db, now_ms))
}

fn decode_as<T: Effect>(payload: &[u8]) -> Result<AnyEffect, DecodeError> {
    Ok(Box::new(T::decode(payload)?))
}

fn describe_as<T: Effect>(payload: &[u8]) -> Result<String, DecodeError> {
    Ok(T::decode(payload)?.describe())
}

/// The registry entry of effect `T`.
pub const fn effect<T: Effect>() -> EffectSpec {
    EffectSpec {
        op: T::OP,
        name: T::NAME,
        apply: apply_as::<T>,
        replay: T::replay,
        replay_key: T::replay_key,
        decode: decode_as::<T>,
        describe: describe_as::<T>,
    }
}

/// One line of the command table.
#[derive(Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub arity: i64,
    pub flags: Flags,
    pub keys: Keys,
    pub effect: Option<EffectSpec>,
    /// [`Command::ALSO_LOGS`].
    pub also_logs: &'static [EffectSpec],
    parse: fn(Vec<Vec<u8>>, u64) -> Result<Action, Reply>,
}

/// The table line of command `C`.
pub const fn spec<C: Command>() -> Spec {
    Spec {
        name: C::NAME,
        arity: C::ARITY,
        flags: C::FLAGS,
        keys: C::KEYS,
        effect: C::EFFECT,
        also_logs: C::ALSO_LOGS,
        parse: C::parse,
    }
}

/// Every command.
pub const TABLE: &[Spec] = &[
    spec::<connection::Ping>(),
    spec::<connection::Echo>(),
    spec::<connection::Select>(),
    spec::<connection::Quit>(),
    spec::<connection::Client>(),
    spec::<connection::Hello>(),
    spec::<connection::Auth>(),
    spec::<connection::Reset>(),
    spec::<server::Info>(),
    spec::<server::DbSize>(),
    spec::<command::CommandCmd>(),
    spec::<server::Time>(),
    spec::<server::Debug>(),
    spec::<config::Config>(),
    spec::<flushall::FlushAll>(),
    spec::<get::Get>(),
    spec::<set::Set>(),
    spec::<getdel::GetDel>(),
    spec::<getex::GetEx>(),
    spec::<getrange::GetRange>(),
    spec::<getrange::Substr>(),
    spec::<setex::SetEx>(),
    spec::<setex::PSetEx>(),
    spec::<setex::GetSet>(),
    spec::<setnx::SetNx>(),
    spec::<setrange::SetRange>(),
    spec::<msetnx::MSetNx>(),
    spec::<mget::MGet>(),
    spec::<mset::MSet>(),
    spec::<incrby::Incr>(),
    spec::<incrby::IncrBy>(),
    spec::<incrby::Decr>(),
    spec::<incrby::DecrBy>(),
    spec::<incrbyfloat::IncrByFloat>(),
    spec::<append::Append>(),
    spec::<strlen::Strlen>(),
    spec::<lcs::Lcs>(),
    spec::<del::Del>(),
    spec::<exists::Exists>(),
    spec::<expire::Expire>(),
    spec::<expire::PExpire>(),
    spec::<ttl::Ttl>(),
    spec::<ttl::PTtl>(),
    spec::<persist::Persist>(),
    spec::<keys::KeysCmd>(),
    spec::<expire::ExpireAt>(),
    spec::<expire::PExpireAtCmd>(),
    spec::<expiretime::ExpireTime>(),
    spec::<expiretime::PExpireTime>(),
    spec::<typ::Type>(),
    spec::<rename::Rename>(),
    spec::<rename::RenameNx>(),
    spec::<copy::Copy>(),
    spec::<unlink::Unlink>(),
    spec::<touch::Touch>(),
    spec::<randomkey::RandomKey>(),
    spec::<object::Object>(),
    spec::<memory::Memory>(),
    spec::<flushall::FlushDb>(),
    spec::<wait::Wait>(),
    spec::<scan::Scan>(),
    spec::<hset::HSet>(),
    spec::<hget::HGet>(),
    spec::<hdel::HDel>(),
    spec::<hgetall::HGetAll>(),
    spec::<hlen::HLen>(),
    spec::<hincrby::HIncrBy>(),
    spec::<hsetnx::HSetNx>(),
    spec::<hincrbyfloat::HIncrByFloat>(),
    spec::<hmset::HMSet>(),
    spec::<hmget::HMGet>(),
    spec::<hkeys::HKeys>(),
    spec::<hkeys::HVals>(),
    spec::<hexists::HExists>(),
    spec::<hexists::HStrlen>(),
    spec::<hrandfield::HRandField>(),
    spec::<hscan::HScan>(),
    spec::<push::LPush>(),
    spec::<push::RPush>(),
    spec::<push::LPushX>(),
    spec::<push::RPushX>(),
    spec::<pop::LPop>(),
    spec::<pop::RPop>(),
    spec::<lread::LLen>(),
    spec::<lread::LRange>(),
    spec::<lread::LIndex>(),
    spec::<lread::LPos>(),
    spec::<ledit::LSet>(),
    spec::<ledit::LTrim>(),
    spec::<ledit::LRem>(),
    spec::<ledit::LInsert>(),
    spec::<lmove::LMove>(),
    spec::<lmove::RPopLPush>(),
    spec::<lmove::LMPop>(),
    spec::<multi::Multi>(),
    spec::<multi::Exec>(),
    spec::<multi::Discard>(),
    spec::<multi::Watch>(),
    spec::<multi::Unwatch>(),
    // sets
    spec::<sadd::SAdd>(),
    spec::<srem::SRem>(),
    spec::<sread::SCard>(),
    spec::<sread::SIsMemberCmd>(),
    spec::<sread::SMIsMember>(),
    spec::<sread::SMembers>(),
    spec::<spop::SPop>(),
    spec::<srandmember::SRandMember>(),
    spec::<smove::SMove>(),
    spec::<scombine::SInter>(),
    spec::<scombine::SUnion>(),
    spec::<scombine::SDiff>(),
    spec::<scombine::SInterCard>(),
    spec::<sstore::SInterStore>(),
    spec::<sstore::SUnionStore>(),
    spec::<sstore::SDiffStore>(),
    spec::<sscan::SScan>(),
    // pubsub
    spec::<pubsub::Subscribe>(),
    spec::<pubsub::PSubscribe>(),
    spec::<pubsub::SSubscribe>(),
    spec::<pubsub::Unsubscribe>(),
    spec::<pubsub::PUnsubscribe>(),
    spec::<pubsub::SUnsubscribe>(),
    spec::<pubsub::Publish>(),
    spec::<pubsub::SPublish>(),
    spec::<pubsub::PubSubCmd>(),
    spec::<pubsub::Monitor>(),
    // blocking
    spec::<blist::BLPop>(),
    spec::<blist::BRPop>(),
    spec::<blist::BLMove>(),
    spec::<blist::BRPopLPush>(),
    spec::<blist::BLMPop>(),
    spec::<bzpop::BZPopMin>(),
    spec::<bzpop::BZPopMax>(),
    spec::<bzpop::BZMPop>(),
    // compat: bit commands, SORT, DUMP/RESTORE, SAVE/SHUTDOWN
    spec::<setbit::SetBit>(),
    spec::<getbit::GetBit>(),
    spec::<bitcount::BitCount>(),
    spec::<bitpos::BitPos>(),
    spec::<bitop::BitOp>(),
    spec::<bitfield::BitFieldCmd>(),
    spec::<bitfield::BitFieldRo>(),
    spec::<shutdown::Save>(),
    spec::<shutdown::Shutdown>(),
    spec::<sort::Sort>(),
    spec::<sort::SortRo>(),
    spec::<dump::Dump>(),
    spec::<restore::Restore>(),
    // lua
    spec::<eval::Eval>(),
    spec::<eval::EvalSha>(),
    spec::<eval::EvalRo>(),
    spec::<eval::EvalShaRo>(),
    spec::<eval::FCall>(),
    spec::<eval::FCallRo>(),
    spec::<eval::Script>(),
    spec::<eval::Function>(),
    // sorted sets
    spec::<zadd::ZAdd>(),
    spec::<zadd::ZIncrBy>(),
    spec::<zread::ZCard>(),
    spec::<zread::ZScore>(),
    spec::<zread::ZMScore>(),
    spec::<zread::ZCount>(),
    spec::<zread::ZLexCount>(),
    spec::<zread::ZRank>(),
    spec::<zread::ZRevRank>(),
    spec::<zrem::ZRem>(),
    spec::<zrem::ZRemRangeByRank>(),
    spec::<zrem::ZRemRangeByScore>(),
    spec::<zrem::ZRemRangeByLex>(),
    spec::<zrange::ZRange>(),
    spec::<zrange::ZRevRange>(),
    spec::<zrange::ZRangeByScore>(),
    spec::<zrange::ZRevRangeByScore>(),
    spec::<zrange::ZRangeByLex>(),
    spec::<zrange::ZRevRangeByLex>(),
    spec::<zrange::ZRangeStore>(),
    spec::<zpop::ZPopMin>(),
    spec::<zpop::ZPopMax>(),
    spec::<zpop::ZMPop>(),
    spec::<zrandmember::ZRandMember>(),
    spec::<zunion::ZUnion>(),
    spec::<zunion::ZInter>(),
    spec::<zunion::ZDiff>(),
    spec::<zunion::ZInterCard>(),
    spec::<zunion::ZUnionStore>(),
    spec::<zunion::ZInterStore>(),
    spec::<zunion::ZDiffStore>(),
    spec::<zscan::ZScan>(),
    #[cfg(test)]
    spec::<fake::FakeSetRev>(),
    #[cfg(test)]
    spec::<fake::FakeMulti>(),
];

/// Names of every supported command (COMMAND COUNT, metrics).
pub fn command_names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|s| s.name)
}

/// Longest command name (lookups of longer names fail without hashing).
const MAX_NAME: usize = 32;

fn by_name() -> &'static FxHashMap<&'static [u8], &'static Spec> {
    static MAP: OnceLock<FxHashMap<&'static [u8], &'static Spec>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut m = FxHashMap::default();
        for s in TABLE {
            assert!(s.name.len() <= MAX_NAME && s.name == s.name.to_ascii_lowercase());
            assert!(
                m.insert(s.name.as_bytes(), s).is_none(),
                "command {} registered twice",
                s.name
            );
        }
        m
    })
}

/// The table line of `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    by_name().get(&*lower).copied()
}

/// Effects by op, from [`TABLE`]. Two different effects on one op is a
/// programming error caught at the first use (and by the tests).
fn effects() -> &'static [Option<EffectSpec>; 256] {
    static OPS: OnceLock<[Option<EffectSpec>; 256]> = OnceLock::new();
    OPS.get_or_init(|| {
        let mut ops: [Option<EffectSpec>; 256] = [None; 256];
        let all = TABLE
            .iter()
            .flat_map(|s| s.effect.iter().chain(s.also_logs))
            .copied();
        for e in all {
            if let Some(prev) = ops[e.op as usize] {
                assert_eq!(prev.name, e.name, "op {} used by two effects", e.op);
            }
            ops[e.op as usize] = Some(e);
        }
        ops
    })
}

fn effect_of(payload: &[u8]) -> Result<EffectSpec, DecodeError> {
    let op = *payload.first().ok_or(DecodeError::Empty)?;
    effects()[op as usize].ok_or(DecodeError::UnknownOp(op))
}

// ---------------------------------------------------------------- dispatch

/// The table line of a request (its name looked up, its arity checked), or
/// the error reply as Redis words it, with the metrics label ("unknown"
/// for unknown commands, so the label set stays bounded).
pub fn resolve(args: &[Vec<u8>]) -> Result<&'static Spec, (&'static str, Reply)> {
    let Some(first) = args.first() else {
        return Err(("unknown", Reply::error("ERR empty command")));
    };
    let Some(spec) = lookup(first) else {
        return Err(("unknown", unknown_command(args)));
    };
    let n = args.len() as i64;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return Err((spec.name, Reply::arity(spec.name)));
    }
    Ok(spec)
}

impl Spec {
    /// Parses a request already [`resolve`]d to this line.
    pub fn parse(&self, args: Vec<Vec<u8>>, now_ms: u64) -> Action {
        let action = (self.parse)(args, now_ms).unwrap_or_else(Action::Reply);
        debug_assert!(
            !matches!(action, Action::Write(_)) || self.flags.contains(Flags::WRITE),
            "{} writes without the WRITE flag",
            self.name
        );
        action
    }
}

/// Parses a request's arguments into an action. Returns the lower-case
/// command name for metrics ("unknown" for unknown commands, so the label
/// set stays bounded).
pub fn parse(args: Vec<Vec<u8>>, now_ms: u64) -> (&'static str, Action) {
    match resolve(&args) {
        Ok(spec) => (spec.name, spec.parse(args, now_ms)),
        Err((name, reply)) => (name, Action::Reply(reply)),
    }
}

/// C's `%.*s` of a client argument: up to `max` bytes, stopping at NUL.
pub(crate) fn c_str(a: &[u8], max: usize) -> &[u8] {
    let a = &a[..a.len().min(max)];
    a.iter().position(|&b| b == 0).map_or(a, |n| &a[..n])
}

/// Redis's text for an unknown command: the name (128 bytes at most) and
/// the arguments quoted while the list is shorter than 128 bytes.
fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let mut list = Vec::new();
    for a in &args[1..] {
        if list.len() >= 128 {
            break;
        }
        let max = 128 - list.len();
        list.push(b'\'');
        list.extend_from_slice(c_str(a, max));
        list.extend_from_slice(b"' ");
    }
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(c_str(&args[0], 128));
    msg.extend_from_slice(b"', with args beginning with: ");
    msg.extend_from_slice(&list);
    Reply::error_bytes(msg)
}

pub(crate) fn syntax_error() -> Reply {
    Reply::error(reply::SYNTAX)
}

pub(crate) fn not_integer() -> Reply {
    Reply::error(reply::NOT_INTEGER)
}

// ---------------------------------------------------------------- replay

/// Why a logged record cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("record {seq}: undecodable command payload: {source}")]
    Decode { seq: u64, source: DecodeError },
}

/// Applies one logged payload at `now_ms` (the record's timestamp) and
/// returns the reply it produces (tests and tools; replays without the
/// reply use [`replay_payload`]).
pub fn apply_payload(db: &mut Db, payload: &[u8], now_ms: u64) -> Result<Reply, DecodeError> {
    (effect_of(payload)?.apply)(payload, db, now_ms)
}

/// Applies one logged payload at `now_ms` (the record's timestamp)
/// without its reply: the replay path of recovery and the snapshotter
/// ([`Effect::replay`]: the same state as [`apply_payload`], and the same
/// errors, with less work per record for the hottest effects).
pub fn replay_payload(db: &mut Db, payload: &[u8], now_ms: u64) -> Result<(), DecodeError> {
    (effect_of(payload)?.replay)(payload, db, now_ms)
}

/// The key a logged payload looks up first, if its effect says
/// ([`Effect::replay_key`]).
pub fn replay_key(payload: &[u8]) -> Option<&[u8]> {
    (effect_of(payload).ok()?.replay_key)(payload)
}

/// Records queued for replay in groups of up to [`ReplayQueue::LEN`]: the
/// keyspace lookups of a group are warmed together ([`Db::warm`]: their
/// cache misses overlap) before its records are applied, one by one and in
/// order, by the caller's function. `M` is what the caller keeps of each
/// record. The payloads are copied (the walker's buffer moves on).
#[derive(Debug)]
pub struct ReplayQueue<M> {
    bytes: Vec<u8>,
    records: Vec<(M, std::ops::Range<usize>)>,
}

impl<M> Default for ReplayQueue<M> {
    fn default() -> ReplayQueue<M> {
        ReplayQueue {
            bytes: Vec::new(),
            records: Vec::with_capacity(Self::LEN),
        }
    }
}

impl<M> ReplayQueue<M> {
    /// Records per group.
    pub const LEN: usize = crate::keyspace::WARM_KEYS;

    pub fn new() -> ReplayQueue<M> {
        ReplayQueue::default()
    }

    /// Queues a record; true when the group is full (time to
    /// [`ReplayQueue::apply`]).
    pub fn push(&mut self, meta: M, payload: &[u8]) -> bool {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.records.push((meta, start..self.bytes.len()));
        self.records.len() >= Self::LEN
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Warms the keyspace for the queued records, then calls `f` on each
    /// in order, stopping at its first error (the records after it are
    /// dropped). The queue is empty afterwards.
    pub fn apply<E>(
        &mut self,
        db: &mut Db,
        mut f: impl FnMut(&mut Db, M, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut keys: [&[u8]; crate::keyspace::WARM_KEYS] = [&[]; crate::keyspace::WARM_KEYS];
        let mut n = 0;
        for (_, range) in &self.records {
            if let Some(k) = replay_key(&self.bytes[range.clone()]) {
                keys[n] = k;
                n += 1;
            }
        }
        db.warm(&keys[..n]);
        let result = self
            .records
            .drain(..)
            .try_for_each(|(meta, range)| f(db, meta, &self.bytes[range]));
        self.records.clear();
        self.bytes.clear();
        result
    }
}

/// Decodes any logged payload into its effect (for effects that hold
/// others, and for tools).
pub fn decode_payload(payload: &[u8]) -> Result<Box<dyn Write>, DecodeError> {
    (effect_of(payload)?.decode)(payload)
}

/// A logged payload in redis-cli-like text (`dump`).
pub fn describe_payload(payload: &[u8]) -> Result<String, DecodeError> {
    (effect_of(payload)?.describe)(payload)
}

impl Db {
    /// Applies one logged record deterministically ([`replay_payload`]).
    pub fn apply_logged(&mut self, record: &Record) -> Result<(), ApplyError> {
        replay_payload(self, &record.payload, record.timestamp_ms).map_err(|source| {
            ApplyError::Decode {
                seq: record.seq,
                source,
            }
        })
    }

    /// Applies one logged record and returns the reply it produces.
    pub fn apply_record(&mut self, record: &Record) -> Result<Reply, ApplyError> {
        apply_payload(self, &record.payload, record.timestamp_ms).map_err(|source| {
            ApplyError::Decode {
                seq: record.seq,
                source,
            }
        })
    }
}
