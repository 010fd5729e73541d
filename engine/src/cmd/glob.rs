//! Redis glob matching (KEYS, SCAN MATCH, CONFIG GET).

/// Redis glob matching: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    // Two-pointer matcher with backtracking to the last '*'.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            star = Some((p, i));
            continue;
        }
        if p < pattern.len() {
            if let Some(next) = match_one(pattern, p, s[i]) {
                p = next;
                i += 1;
                continue;
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches one pattern token at `p` against `c`; returns the next token.
fn match_one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => {
            let mut j = p + 1;
            let negate = j < pattern.len() && pattern[j] == b'^';
            if negate {
                j += 1;
            }
            let mut matched = false;
            while j < pattern.len() && pattern[j] != b']' {
                if pattern[j] == b'\\' && j + 1 < pattern.len() {
                    matched |= pattern[j + 1] == c;
                    j += 2;
                } else if j + 2 < pattern.len() && pattern[j + 1] == b'-' && pattern[j + 2] != b']'
                {
                    let (a, b) = (
                        pattern[j].min(pattern[j + 2]),
                        pattern[j].max(pattern[j + 2]),
                    );
                    matched |= (a..=b).contains(&c);
                    j += 3;
                } else {
                    matched |= pattern[j] == c;
                    j += 1;
                }
            }
            // an unterminated class matches like Redis: up to the end
            let next = (j + 1).min(pattern.len());
            (matched != negate).then_some(next)
        }
        lit => (lit == c).then_some(p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"k?y*", b"key:1"));
        assert!(!glob_match(b"k?y", b"key:1"));
        assert!(glob_match(b"h[ae]llo", b"hello"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-f]llo", b"hello"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*a*a*b", b"xaaaaaab"));
        assert!(!glob_match(b"*a*a*b", b"xaaaaaa"));
        assert!(glob_match(b"", b""));
    }
}
