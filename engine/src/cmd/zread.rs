//! ZCARD key, ZSCORE key member, ZMSCORE key member [member ...],
//! ZCOUNT key min max, ZLEXCOUNT key min max, ZRANK key member,
//! ZREVRANK key member (reads)

use super::zset::{get_zset, LEX_NOT_VALID, RANGE_NOT_FLOAT};
use super::{Action, Command, Flags, Keys, Read, ReadCtx};
use crate::db::ZSet;
use crate::reply::Reply;
use crate::zset::{LexRange, ScoreRange};

/// What one of these reads asks of the set.
enum Ask {
    Card,
    Score(Vec<u8>),
    MScore(Vec<Vec<u8>>),
    Count(ScoreRange),
    LexCount(LexRange),
    Rank(Vec<u8>, bool),
}

pub struct ZRead {
    key: Vec<u8>,
    ask: Ask,
}

impl Ask {
    /// The reply for a missing key.
    fn missing(&self) -> Reply {
        match self {
            Ask::Card | Ask::Count(_) | Ask::LexCount(_) => Reply::Int(0),
            Ask::Score(_) | Ask::Rank(..) => Reply::Nil,
            Ask::MScore(ms) => Reply::Array(ms.iter().map(|_| Reply::Nil).collect()),
        }
    }

    fn answer(&self, z: &ZSet) -> Reply {
        let score = |m: &[u8]| z.score(m).map_or(Reply::Nil, Reply::Double);
        match self {
            Ask::Card => Reply::Int(z.len() as i64),
            Ask::Score(m) => score(m),
            Ask::MScore(ms) => Reply::Array(ms.iter().map(|m| score(m)).collect()),
            Ask::Count(r) => {
                let (a, b) = r.ranks(z);
                Reply::Int((b - a) as i64)
            }
            Ask::LexCount(r) => {
                let (a, b) = r.ranks(z);
                Reply::Int((b - a) as i64)
            }
            Ask::Rank(m, rev) => match z.rank(m) {
                None => Reply::Nil,
                Some(r) if *rev => Reply::Int((z.len() - 1 - r) as i64),
                Some(r) => Reply::Int(r as i64),
            },
        }
    }
}

impl Read for ZRead {
    fn read(self: Box<Self>, ctx: &mut ReadCtx<'_>) -> Reply {
        match get_zset(ctx.db, &self.key, ctx.now_ms) {
            Err(e) => e,
            Ok(None) => self.ask.missing(),
            Ok(Some(z)) => self.ask.answer(z),
        }
    }
}

macro_rules! zread_command {
    ($ty:ident, $name:literal, $arity:expr, $ask:expr) => {
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = $arity;
            const FLAGS: Flags = Flags::READONLY;
            const KEYS: Keys = Keys::ONE;

            fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                let ask = $ask(&mut args)?;
                Ok(Action::read(ZRead {
                    key: args.swap_remove(1),
                    ask,
                }))
            }
        }
    };
}

type Args = Vec<Vec<u8>>;

zread_command!(ZCard, "zcard", 2, |_: &mut Args| Ok::<_, Reply>(Ask::Card));
zread_command!(ZScore, "zscore", 3, |a: &mut Args| Ok::<_, Reply>(
    Ask::Score(a.pop().expect("arity"))
));
zread_command!(ZMScore, "zmscore", -3, |a: &mut Args| Ok::<_, Reply>(
    Ask::MScore(a.split_off(2))
));
zread_command!(ZCount, "zcount", 4, |a: &mut Args| ScoreRange::parse(
    &a[2], &a[3]
)
.map(Ask::Count)
.ok_or_else(|| Reply::error(RANGE_NOT_FLOAT)));
zread_command!(ZLexCount, "zlexcount", 4, |a: &mut Args| LexRange::parse(
    &a[2], &a[3]
)
.map(Ask::LexCount)
.ok_or_else(|| Reply::error(LEX_NOT_VALID)));
zread_command!(ZRank, "zrank", 3, |a: &mut Args| Ok::<_, Reply>(Ask::Rank(
    a.pop().expect("arity"),
    false
)));
zread_command!(ZRevRank, "zrevrank", 3, |a: &mut Args| Ok::<_, Reply>(
    Ask::Rank(a.pop().expect("arity"), true)
));
