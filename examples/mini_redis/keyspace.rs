//! The commands over the keyspace as a whole: `KEYS`, `SCAN`, `TYPE`, and
//! the glob patterns the first two take.

use crate::commands::{SYNTAX, WRONG_TYPE_INT};
use crate::db::Db;
use crate::resp::{self, Args};
use crate::session::Session;
use crate::After;

/// `TYPE key`: `string` (the only type here) or `none`.
pub fn type_(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let t = if db.exists(args.get(1)) {
        "string"
    } else {
        "none"
    };
    resp::simple(out, t);
    After::KeepReading
}

/// `KEYS pattern`: every live key matching the glob `pattern`.
pub fn keys(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let pattern = Glob::new(args.get(1));
    let found: Vec<&[u8]> = db.keys().filter(|k| pattern.matches(k)).collect();
    resp::array(out, found.len());
    for k in found {
        resp::bulk(out, k);
    }
    After::KeepReading
}

/// Reads a `SCAN` cursor as Redis does (`strtoul`): digits with an optional
/// sign, a negative one wrapping around, within 64 bits.
fn parse_cursor(s: &[u8]) -> Option<u64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if s.is_empty() {
        return Some(0);
    }
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { n.wrapping_neg() } else { n })
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`: the next cursor and
/// a batch of keys; see [`Db::scan`] for what a full scan promises.
pub fn scan(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let Some(cursor) = parse_cursor(args.get(1)) else {
        resp::error(out, "ERR invalid cursor");
        return After::KeepReading;
    };
    let mut pattern = None;
    let mut count = 10;
    let mut string_type = true;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        if i + 1 >= args.len() {
            resp::error(out, SYNTAX);
            return After::KeepReading;
        }
        let value = args.get(i + 1);
        if opt.eq_ignore_ascii_case(b"MATCH") {
            pattern = Some(Glob::new(value));
        } else if opt.eq_ignore_ascii_case(b"COUNT") {
            match resp::parse_i64(value) {
                None => {
                    resp::error(out, WRONG_TYPE_INT);
                    return After::KeepReading;
                }
                Some(n) if n < 1 => {
                    resp::error(out, SYNTAX);
                    return After::KeepReading;
                }
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if opt.eq_ignore_ascii_case(b"TYPE") {
            string_type = value.eq_ignore_ascii_case(b"string");
        } else {
            resp::error(out, SYNTAX);
            return After::KeepReading;
        }
        i += 2;
    }
    let mut found = Vec::new();
    let next = db.scan(cursor, count, |k| {
        if string_type && pattern.as_ref().map_or(true, |p| p.matches(k)) {
            found.push(k.to_vec());
        }
    });
    resp::array(out, 2);
    let mut digits = Vec::with_capacity(20);
    // The cursor is a u64 in decimal; it never exceeds the keyspace's
    // size, so it fits an i64.
    resp::push_i64(&mut digits, i64::try_from(next).unwrap_or(0));
    resp::bulk(out, &digits);
    resp::array(out, found.len());
    for k in &found {
        resp::bulk(out, k);
    }
    After::KeepReading
}

/// One element of a glob pattern.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// This byte.
    Byte(u8),
    /// `?`: any one byte.
    One,
    /// `*`: any run of bytes, the empty one included.
    Any,
    /// `[...]`: one byte in (or, negated, not in) these inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

/// A Redis glob pattern (`stringmatchlen`): `*`, `?`, `[abc]`, `[^abc]`,
/// `[a-z]` (a reversed range counts as if written in order), and `\x` for
/// a literal `x`, in a class too. A `[` left open takes the rest of the
/// pattern as its class; a `\` at the end is itself.
#[derive(Debug)]
pub struct Glob(Vec<Token>);

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &[u8]) -> Glob {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < pattern.len() {
            let token = match pattern[i] {
                b'*' => {
                    if tokens.last() == Some(&Token::Any) {
                        i += 1;
                        continue;
                    }
                    Token::Any
                }
                b'?' => Token::One,
                b'\\' if i + 1 < pattern.len() => {
                    i += 1;
                    Token::Byte(pattern[i])
                }
                b'[' => {
                    let (token, end) = Self::class(pattern, i + 1);
                    i = end;
                    token
                }
                b => Token::Byte(b),
            };
            tokens.push(token);
            i += 1;
        }
        Glob(tokens)
    }

    /// The class whose body starts at `i`; returns it and the index of its
    /// closing `]` (or of the pattern's last byte, if none).
    fn class(p: &[u8], mut i: usize) -> (Token, usize) {
        let negated = p.get(i) == Some(&b'^');
        if negated {
            i += 1;
        }
        let mut ranges = Vec::new();
        while i < p.len() && p[i] != b']' {
            if p[i] == b'\\' && i + 1 < p.len() {
                i += 1;
                ranges.push((p[i], p[i]));
            } else if i + 2 < p.len() && p[i + 1] == b'-' {
                let (a, b) = (p[i], p[i + 2]);
                ranges.push((a.min(b), a.max(b)));
                i += 2;
            } else {
                ranges.push((p[i], p[i]));
            }
            i += 1;
        }
        let end = i.min(p.len().saturating_sub(1));
        (Token::Class { negated, ranges }, end)
    }

    /// Whether one byte matches a single-byte token.
    fn one(token: &Token, b: u8) -> bool {
        match token {
            Token::Byte(c) => *c == b,
            Token::One => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) != *negated
            }
            Token::Any => false,
        }
    }

    /// Whether `s` matches, all of it. Linear in `s` times the pattern at
    /// worst: on a mismatch, the last `*` takes one more byte and the rest
    /// is tried again (an earlier `*` never needs to, as the later one can
    /// absorb anything).
    pub fn matches(&self, s: &[u8]) -> bool {
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() && p[pi] == Token::Any {
                star = Some((pi, si));
                pi += 1;
            } else if pi < p.len() && Self::one(&p[pi], s[si]) {
                pi += 1;
                si += 1;
            } else if let Some((sp, ss)) = star {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|t| *t == Token::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn globs_as_redis_matches_them() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "hllo", true),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("[\\]]", "]", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("**a", "ba", true),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("[abc", "b", true),
            ("[abc", "d", false),
            ("x\\", "x\\", true),
            ("?", "", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(
                Glob::new(p.as_bytes()).matches(s.as_bytes()),
                *want,
                "{p} vs {s}"
            );
        }
    }
}
