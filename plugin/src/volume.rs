//! Volume names, mount IDs and per-volume options: pure validation.
//!
//! Everything a client sends is checked here before the driver touches the
//! disk, so a bad name or option is rejected with a clear message and
//! changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest accepted volume name, in bytes (a path component).
pub const NAME_MAX_BYTES: usize = 255;
/// Longest accepted mount ID, in bytes (Docker sends 64 hex digits).
pub const ID_MAX_BYTES: usize = 256;
/// Most options accepted in one `Create`.
pub const OPTIONS_MAX: usize = 16;
/// Longest accepted option value, in bytes.
pub const OPTION_VALUE_MAX_BYTES: usize = 256;

/// The option keys `Create` accepts, as listed in error messages.
pub const ACCEPTED_OPTIONS: &[&str] = &[
    "uid",
    "gid",
    "mode",
    "archive-of",
    "keep-archive",
    "size",
    "archive-size",
    "quota",
];

/// A validation failure; the message names the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error(
        "invalid volume name {0:?}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 255 bytes, no '..')"
    )]
    Name(String),
    #[error("invalid mount id {0:?}: must be 1 to 256 printable characters")]
    Id(String),
    #[error("unknown option {key:?}; accepted options: uid, gid, mode, archive-of, keep-archive, size, archive-size, quota")]
    UnknownOption { key: String },
    #[error("invalid value {value:?} for option {key:?}: {reason}")]
    OptionValue {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("too many options ({0}); at most {OPTIONS_MAX} are accepted")]
    TooManyOptions(usize),
    #[error("option archive-of cannot be combined with {0:?}: an archive-of volume is the other volume's archive tier")]
    ArchiveOfCombined(String),
    #[error("option archive-of={0:?} names the volume itself")]
    ArchiveOfSelf(String),
}

/// Checks a volume name against Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]*`,
/// plus: at most [`NAME_MAX_BYTES`], no `..` anywhere (the rule already
/// excludes `/`).
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= NAME_MAX_BYTES
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Name(name.to_owned()))
    }
}

/// Checks a mount ID: non-empty, at most [`ID_MAX_BYTES`], printable ASCII.
pub fn validate_id(id: &str) -> Result<(), ValidationError> {
    let ok = !id.is_empty() && id.len() <= ID_MAX_BYTES && id.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::Id(id.to_owned()))
    }
}

/// The options of one volume, as given to `Create` and kept in its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeOptions {
    /// Owner of the volume root and its archive dir.
    pub uid: Option<u32>,
    /// Group of the volume root and its archive dir.
    pub gid: Option<u32>,
    /// Permission bits (at most 0o7777) of the volume root and archive dir.
    pub mode: Option<u32>,
    /// This volume is `OTHER`'s archive tier alone.
    pub archive_of: Option<String>,
    /// Keep the archive tier's data when the volume is removed.
    pub keep_archive: bool,
    /// `size`: quota of the primary tier, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `archive-size`: quota of the archive tier, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_size_bytes: Option<u64>,
    /// `quota=best-effort`: a tier that cannot enforce its size gets none
    /// instead of refusing the volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quota_best_effort: bool,
}

impl VolumeOptions {
    /// Parses `Create`'s `Opts` (`None` when Docker sent `null`) for the
    /// volume `name`.
    pub fn parse(
        name: &str,
        opts: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, ValidationError> {
        let mut out = VolumeOptions::default();
        let Some(opts) = opts else { return Ok(out) };
        if opts.len() > OPTIONS_MAX {
            return Err(ValidationError::TooManyOptions(opts.len()));
        }
        for (key, value) in opts {
            let bad = |reason| ValidationError::OptionValue {
                key: key.clone(),
                value: value.clone(),
                reason,
            };
            if value.len() > OPTION_VALUE_MAX_BYTES {
                return Err(bad("value too long"));
            }
            match key.as_str() {
                "uid" => {
                    out.uid = Some(
                        parse_id_number(value)
                            .ok_or_else(|| bad("not a decimal id below 2^32-1"))?,
                    )
                }
                "gid" => {
                    out.gid = Some(
                        parse_id_number(value)
                            .ok_or_else(|| bad("not a decimal id below 2^32-1"))?,
                    )
                }
                "mode" => {
                    out.mode = Some(
                        parse_mode(value)
                            .ok_or_else(|| bad("not an octal mode between 0 and 7777"))?,
                    )
                }
                "archive-of" => {
                    validate_name(value).map_err(|_| bad("not a valid volume name"))?;
                    if value == name {
                        return Err(ValidationError::ArchiveOfSelf(value.clone()));
                    }
                    out.archive_of = Some(value.clone());
                }
                "keep-archive" => {
                    out.keep_archive = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad("expected true or false")),
                    }
                }
                "size" | "archive-size" => {
                    let bytes = crate::quota::parse_size(value)
                        .filter(|b| *b >= crate::quota::QUOTA_MIN_BYTES)
                        .ok_or_else(|| {
                            bad("not a size of at least 1M such as 20M, 1G or 1.5G (K, M, G, T, P: powers of 1024)")
                        })?;
                    if key == "size" {
                        out.size_bytes = Some(bytes);
                    } else {
                        out.archive_size_bytes = Some(bytes);
                    }
                }
                "quota" => {
                    out.quota_best_effort = match value.as_str() {
                        "best-effort" => true,
                        "strict" => false,
                        _ => return Err(bad("expected strict or best-effort")),
                    }
                }
                _ => return Err(ValidationError::UnknownOption { key: key.clone() }),
            }
        }
        if out.archive_of.is_some() {
            for (set, key) in [
                (out.uid.is_some(), "uid"),
                (out.gid.is_some(), "gid"),
                (out.mode.is_some(), "mode"),
                (out.keep_archive, "keep-archive"),
                (out.size_bytes.is_some(), "size"),
                (out.archive_size_bytes.is_some(), "archive-size"),
            ] {
                if set {
                    return Err(ValidationError::ArchiveOfCombined(key.to_owned()));
                }
            }
        }
        Ok(out)
    }
}

/// A uid/gid: decimal, and not `u32::MAX` (which `chown` reads as "keep").
fn parse_id_number(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u32>().ok().filter(|v| *v != u32::MAX)
}

/// An octal mode such as `750` or `0750`, at most `7777`.
fn parse_mode(value: &str) -> Option<u32> {
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_dockers_rule() {
        for ok in ["a", "vol1", "A.b-c_d", "9", "x".repeat(255).as_str()] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "-a",
            "_a",
            "a/b",
            "a..b",
            "a b",
            "é",
            "a\0",
            "a:b",
            "x".repeat(256).as_str(),
        ] {
            assert_eq!(
                validate_name(bad),
                Err(ValidationError::Name(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert_eq!(validate_id(&"f".repeat(64)), Ok(()));
        assert!(matches!(validate_id(""), Err(ValidationError::Id(_))));
        assert!(matches!(validate_id("a b"), Err(ValidationError::Id(_))));
        assert!(matches!(
            validate_id(&"a".repeat(257)),
            Err(ValidationError::Id(_))
        ));
    }

    #[test]
    fn null_and_empty_options_are_defaults() {
        assert_eq!(
            VolumeOptions::parse("v", None),
            Ok(VolumeOptions::default())
        );
        assert_eq!(
            VolumeOptions::parse("v", Some(&BTreeMap::new())),
            Ok(VolumeOptions::default())
        );
    }

    #[test]
    fn every_option_parses() {
        let o = VolumeOptions::parse(
            "v",
            Some(&opts(&[
                ("uid", "1000"),
                ("gid", "0"),
                ("mode", "0750"),
                ("keep-archive", "true"),
            ])),
        )
        .unwrap();
        assert_eq!(
            o,
            VolumeOptions {
                uid: Some(1000),
                gid: Some(0),
                mode: Some(0o750),
                archive_of: None,
                keep_archive: true,
                size_bytes: None,
                archive_size_bytes: None,
                quota_best_effort: false,
            }
        );
        let o = VolumeOptions::parse("b", Some(&opts(&[("archive-of", "v")]))).unwrap();
        assert_eq!(o.archive_of.as_deref(), Some("v"));
    }

    #[test]
    fn unknown_option_lists_the_accepted_ones() {
        let err = VolumeOptions::parse("v", Some(&opts(&[("bogus", "1G")]))).unwrap_err();
        assert_eq!(
            err,
            ValidationError::UnknownOption {
                key: "bogus".into()
            }
        );
        let msg = err.to_string();
        for k in ACCEPTED_OPTIONS {
            assert!(msg.contains(k), "{msg}");
        }
    }

    #[test]
    fn malformed_values_are_rejected() {
        for (k, v) in [
            ("uid", "-1"),
            ("uid", "abc"),
            ("uid", "4294967295"),
            ("uid", "99999999999"),
            ("gid", ""),
            ("mode", "8"),
            ("mode", "17777"),
            ("mode", "rwx"),
            ("mode", ""),
            ("keep-archive", "yes"),
            ("archive-of", "../x"),
            ("archive-of", ""),
            ("size", "20X"),
            ("size", "512K"),
            ("size", "0"),
            ("size", "-20M"),
            ("archive-size", "lots"),
            ("quota", "maybe"),
        ] {
            let err = VolumeOptions::parse("v", Some(&opts(&[(k, v)]))).unwrap_err();
            assert!(
                matches!(&err, ValidationError::OptionValue { key, .. } if key == k),
                "{k}={v}: {err}"
            );
        }
    }

    #[test]
    fn sizes_and_quota_mode_parse() {
        let o = VolumeOptions::parse(
            "v",
            Some(&opts(&[
                ("size", "20M"),
                ("archive-size", "1.5G"),
                ("quota", "best-effort"),
            ])),
        )
        .unwrap();
        assert_eq!(o.size_bytes, Some(20 << 20));
        assert_eq!(o.archive_size_bytes, Some(3 << 29));
        assert!(o.quota_best_effort);
        let o = VolumeOptions::parse("v", Some(&opts(&[("quota", "strict")]))).unwrap();
        assert!(!o.quota_best_effort);
        assert_eq!(
            VolumeOptions::parse("b", Some(&opts(&[("archive-of", "v"), ("size", "20M")]))),
            Err(ValidationError::ArchiveOfCombined("size".into()))
        );
    }

    #[test]
    fn options_without_quota_keep_the_old_json() {
        let json = serde_json::to_value(VolumeOptions::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"uid":null,"gid":null,"mode":null,"archive_of":null,"keep_archive":false})
        );
        let old: VolumeOptions = serde_json::from_value(json).unwrap();
        assert_eq!(old, VolumeOptions::default());
    }

    #[test]
    fn archive_of_rules() {
        assert_eq!(
            VolumeOptions::parse("v", Some(&opts(&[("archive-of", "v")]))),
            Err(ValidationError::ArchiveOfSelf("v".into()))
        );
        assert_eq!(
            VolumeOptions::parse("b", Some(&opts(&[("archive-of", "v"), ("uid", "1")]))),
            Err(ValidationError::ArchiveOfCombined("uid".into()))
        );
        assert_eq!(
            VolumeOptions::parse(
                "b",
                Some(&opts(&[("archive-of", "v"), ("keep-archive", "true")]))
            ),
            Err(ValidationError::ArchiveOfCombined("keep-archive".into()))
        );
    }

    #[test]
    fn too_many_options() {
        let many: BTreeMap<String, String> = (0..17)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            VolumeOptions::parse("v", Some(&many)),
            Err(ValidationError::TooManyOptions(17))
        );
    }
}
