//! Names given on a command line that become one directory entry.

/// Why a name is not one plain directory entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("empty name")]
    Empty,
    /// `.` or `..`.
    #[error("{0:?} is not a plain name")]
    Dot(String),
    /// Holds a `/` or a NUL byte.
    #[error("{0:?} holds '/' or NUL")]
    Separator(String),
    /// Longer than NAME_MAX (255 bytes).
    #[error("{0:?} is longer than 255 bytes")]
    TooLong(String),
    /// Ends in `.tmp`, the suffix every reader ignores as a temp file.
    #[error("{0:?} ends in .tmp (a temp-file name)")]
    TempSuffix(String),
}

/// Suffix of temp files; every reader of a persistence dir ignores them.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Checks that `name` is one plain directory entry: the archive directory
/// name (`--archive-dir-name`) of the engine, the snapshotter and the plugin
/// is validated by this one function.
pub fn validate_dir_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(NameError::Dot(name.to_string()));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(NameError::Separator(name.to_string()));
    }
    if name.len() > 255 {
        return Err(NameError::TooLong(name.to_string()));
    }
    if name.ends_with(TEMP_SUFFIX) {
        return Err(NameError::TempSuffix(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        for ok in ["archived", "a.b", "...", "x y", "ünïcode"] {
            assert_eq!(validate_dir_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_dir_name(""), Err(NameError::Empty));
        assert!(matches!(validate_dir_name("."), Err(NameError::Dot(_))));
        assert!(matches!(validate_dir_name(".."), Err(NameError::Dot(_))));
        for bad in ["a/b", "/a", "a/", "a\0b"] {
            assert!(
                matches!(validate_dir_name(bad), Err(NameError::Separator(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            validate_dir_name(&"x".repeat(256)),
            Err(NameError::TooLong(_))
        ));
        assert_eq!(validate_dir_name(&"x".repeat(255)), Ok(()));
        assert!(matches!(
            validate_dir_name("archived.tmp"),
            Err(NameError::TempSuffix(_))
        ));
    }
}
