//! Pub/sub commands and MONITOR: parsed here, run by the execution core
//! against the registry ([`crate::pubsub`]). Not logged.

use super::arg::upper;
use super::{Action, Command, Flags};
use crate::pubsub::{Kind, Op};
use crate::reply::{self, Reply};

macro_rules! subscribe_cmd {
    ($ty:ident, $name:literal, $arity:literal, $op:ident, $kind:ident) => {
        #[doc = concat!("`", $name, "`")]
        pub struct $ty;

        impl Command for $ty {
            const NAME: &'static str = $name;
            const ARITY: i64 = $arity;
            const FLAGS: Flags = Flags::NONE;

            fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
                args.remove(0);
                Ok(Action::PubSub(Op::$op(Kind::$kind, args)))
            }
        }
    };
}

subscribe_cmd!(Subscribe, "subscribe", -2, Subscribe, Channel);
subscribe_cmd!(PSubscribe, "psubscribe", -2, Subscribe, Pattern);
subscribe_cmd!(SSubscribe, "ssubscribe", -2, Subscribe, Shard);
subscribe_cmd!(Unsubscribe, "unsubscribe", -1, Unsubscribe, Channel);
subscribe_cmd!(PUnsubscribe, "punsubscribe", -1, Unsubscribe, Pattern);
subscribe_cmd!(SUnsubscribe, "sunsubscribe", -1, Unsubscribe, Shard);

/// PUBLISH channel message
pub struct Publish;

impl Command for Publish {
    const NAME: &'static str = "publish";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let msg = args.pop().expect("arity");
        let ch = args.pop().expect("arity");
        Ok(Action::PubSub(Op::Publish(false, ch, msg)))
    }
}

/// SPUBLISH shardchannel message
pub struct SPublish;

impl Command for SPublish {
    const NAME: &'static str = "spublish";
    const ARITY: i64 = 3;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let msg = args.pop().expect("arity");
        let ch = args.pop().expect("arity");
        Ok(Action::PubSub(Op::Publish(true, ch, msg)))
    }
}

/// MONITOR
pub struct Monitor;

impl Command for Monitor {
    const NAME: &'static str = "monitor";
    const ARITY: i64 = 1;
    const FLAGS: Flags = Flags::NONE;

    fn parse(_args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        Ok(Action::PubSub(Op::Monitor))
    }
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP
pub struct PubSubCmd;

impl Command for PubSubCmd {
    const NAME: &'static str = "pubsub";
    const ARITY: i64 = -2;
    const FLAGS: Flags = Flags::NONE;

    fn parse(mut args: Vec<Vec<u8>>, _now: u64) -> Result<Action, Reply> {
        let sub = upper(&args[1]);
        let n = args.len() as i64;
        let (arity, full) = match sub.as_slice() {
            b"CHANNELS" => (-2, "pubsub|channels"),
            b"NUMSUB" => (-2, "pubsub|numsub"),
            b"NUMPAT" => (2, "pubsub|numpat"),
            b"SHARDCHANNELS" => (-2, "pubsub|shardchannels"),
            b"SHARDNUMSUB" => (-2, "pubsub|shardnumsub"),
            b"HELP" => (2, "pubsub|help"),
            _ => return Err(reply::unknown_subcommand(&args[1], "pubsub")),
        };
        if (arity > 0 && n != arity) || (arity < 0 && n < -arity) {
            return Err(Reply::arity(full));
        }
        let rest: Vec<Vec<u8>> = args.drain(2..).collect();
        let op = match sub.as_slice() {
            b"CHANNELS" => Op::Channels(false, rest.into_iter().next()),
            b"SHARDCHANNELS" => Op::Channels(true, rest.into_iter().next()),
            b"NUMSUB" => Op::NumSub(false, rest),
            b"SHARDNUMSUB" => Op::NumSub(true, rest),
            b"NUMPAT" => Op::NumPat,
            _ => {
                return Ok(Action::Reply(Reply::Array(
                    PUBSUB_HELP
                        .iter()
                        .map(|l| Reply::Status(l.to_string()))
                        .collect(),
                )))
            }
        };
        Ok(Action::PubSub(op))
    }
}
