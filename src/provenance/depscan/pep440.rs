//! PEP 440 version parsing and ordering (the subset advisories need: epochs, release
//! segments, pre-, post- and dev-releases, local versions, with PEP 440's normalisations).

use std::cmp::Ordering;

/// epoch, release, pre-release, post-release, dev-release, local: each as PEP 440 orders it.
type SortKey<'a> = (
    u64,
    &'a [u64],
    (i8, u8, u64),
    (i8, u64),
    (i8, u64),
    (bool, &'a [LocalSegment]),
);

/// A parsed PEP 440 version.
#[derive(Debug, Clone)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LocalSegment {
    Num(u64),
    Str(String),
}

impl PartialOrd for LocalSegment {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LocalSegment {
    // PEP 440: numeric segments sort after alphanumeric ones.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (LocalSegment::Num(a), LocalSegment::Num(b)) => a.cmp(b),
            (LocalSegment::Str(a), LocalSegment::Str(b)) => a.cmp(b),
            (LocalSegment::Num(_), LocalSegment::Str(_)) => Ordering::Greater,
            (LocalSegment::Str(_), LocalSegment::Num(_)) => Ordering::Less,
        }
    }
}

fn take_number(s: &str) -> (Option<u64>, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if end == 0 {
        return (None, s);
    }
    let (digits, rest) = s.split_at(end);
    (digits.parse().ok(), rest)
}

fn strip_sep(s: &str) -> &str {
    s.strip_prefix(['.', '-', '_']).unwrap_or(s)
}

impl Pep440 {
    /// Parses a version, normalising as PEP 440 says (case, `v` prefix, `alpha`/`beta`/`c`/
    /// `pre`/`preview`, `rev`/`r`, separators, implicit numbers). `None` when it is not PEP 440.
    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.trim().to_ascii_lowercase();
        let mut s = lower.strip_prefix('v').unwrap_or(&lower);
        let (public, local) = match s.split_once('+') {
            Some((p, l)) => (p, Some(l)),
            None => (s, None),
        };
        s = public;
        let mut epoch = 0;
        if let Some((e, rest)) = s.split_once('!') {
            epoch = e.parse().ok()?;
            s = rest;
        }
        let mut release = Vec::new();
        loop {
            let (n, rest) = take_number(s);
            release.push(n?);
            match rest.strip_prefix('.') {
                Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => s = r,
                _ => {
                    s = rest;
                    break;
                }
            }
        }
        let mut pre = None;
        let t = strip_sep(s);
        for (label, rank) in [
            ("alpha", 0u8),
            ("beta", 1),
            ("preview", 2),
            ("pre", 2),
            ("rc", 2),
            ("a", 0),
            ("b", 1),
            ("c", 2),
        ] {
            if let Some(rest) = t.strip_prefix(label) {
                let (n, rest) = take_number(strip_sep(rest));
                pre = Some((rank, n.unwrap_or(0)));
                s = rest;
                break;
            }
        }
        let mut post = None;
        if let Some(rest) = s.strip_prefix('-')
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            let (n, rest) = take_number(rest);
            post = n;
            s = rest;
        } else {
            let t = strip_sep(s);
            for label in ["post", "rev", "r"] {
                if let Some(rest) = t.strip_prefix(label) {
                    let (n, rest) = take_number(strip_sep(rest));
                    post = Some(n.unwrap_or(0));
                    s = rest;
                    break;
                }
            }
        }
        let mut dev = None;
        if let Some(rest) = strip_sep(s).strip_prefix("dev") {
            let (n, rest) = take_number(strip_sep(rest));
            dev = Some(n.unwrap_or(0));
            s = rest;
        }
        if !s.is_empty() {
            return None;
        }
        let local = match local {
            None => Vec::new(),
            Some(l) => l
                .split(['.', '-', '_'])
                .map(|seg| {
                    if seg.is_empty() || !seg.chars().all(|c| c.is_ascii_alphanumeric()) {
                        None
                    } else if seg.chars().all(|c| c.is_ascii_digit()) {
                        seg.parse().ok().map(LocalSegment::Num)
                    } else {
                        Some(LocalSegment::Str(seg.to_owned()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// The sort key of PEP 440 (as `packaging` computes it): a dev release of a final version
    /// sorts before its pre-releases; no pre-release sorts after any; no post before any.
    fn key(&self) -> SortKey<'_> {
        let pre = match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((r, n)), _, _) => (0, r, n),
        };
        let post = self.post.map_or((-1, 0), |n| (0, n));
        let dev = self.dev.map_or((1, 0), |n| (0, n));
        (
            self.epoch,
            &self.release,
            pre,
            post,
            dev,
            (!self.local.is_empty(), &self.local),
        )
    }
}

impl PartialEq for Pep440 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pep440 {}

impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Pep440 {
        Pep440::parse(s).unwrap_or_else(|| unreachable!("{s}"))
    }

    #[test]
    fn pep440_order() {
        // The ordering example of PEP 440 ("Summary of permitted suffixes and relative ordering").
        let ordered = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(v("1.0"), v("1.0.0"));
        assert_eq!(v("1.0-ALPHA.1"), v("1.0a1"));
        assert_eq!(v("1.0-1"), v("1.0.post1"));
        assert_eq!(v("v2.0c3"), v("2.0rc3"));
        assert!(v("1!0.1") > v("2.0"));
        for bad in ["", "abc", "1.0+", "1..0", "1.0 foo", "1.0+a b"] {
            assert!(Pep440::parse(bad).is_none(), "{bad}");
        }
    }
}
