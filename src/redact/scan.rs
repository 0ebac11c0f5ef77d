//! Where candidates come from: one forward pass that jumps between the places a value can start.
//!
//! The first engine compiled every detector into one automaton. That reads each byte through a
//! lazy DFA, about 6 cycles a byte, and the digit- and class-led patterns (cards, phones,
//! addresses, IBANs, e-mail local parts, `api_key=` labels) kept it from ever skipping text. This
//! scanner finds the same matches from cheaper signals, each a *source* of candidate starts:
//!
//! - the detectors with a case-sensitive literal prefix (`-----BEGIN`, `eyJ`, `ghp_`, `AKIA`
//!   ...) stay in one multi-pattern automaton, whose literal prefilter skips to the next prefix;
//! - e-mail addresses from each `@` (SIMD `memchr`), walking back over the local part;
//! - `api_key = value` and `aws_secret_access_key = value` assignments from each `:` or `=`
//!   followed by a long enough value;
//! - IPv6 addresses from each `:`;
//! - cards, SSNs, phones, IPv4 addresses, IBANs and passport numbers from the starts of digit
//!   runs, found eight bytes at a time, with hand-written checks of each pattern's shape;
//! - custom detectors in their own automaton.
//!
//! Every source reports a superset of the positions where its detectors can match *and* be
//! confirmed, in increasing order, so taking the smallest candidate over all sources visits the
//! same starts the single automaton did. At a start, each detector is tried in priority order
//! with an exact anchored check (its regex, or a hand-written matcher that the tests hold equal
//! to it), and the first whose validator confirms wins: the findings are those of the first
//! engine, which `PatternRedactor::scan_one_automaton` keeps for the tests and benchmarks.

use std::ops::Range;

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input, PatternID};

use super::detectors::Detector;

/// No (more) candidates from a source.
const NONE: usize = usize::MAX;

/// How one detector is found.
#[derive(Debug, Clone, Copy)]
enum How {
    /// Pattern `local` of the literal-led automaton.
    Literal(usize),
    /// Pattern `local` of the custom detectors' automaton.
    Custom(usize),
    /// Pattern `local` of the assignment automaton (AWS secret keys, generic secrets).
    Assignment(usize),
    Email,
    Passport,
    Iban,
    Card,
    Ssn,
    Phone,
    Ip,
}

/// A detector, for building a [`Scanner`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Pattern<'a> {
    /// A built-in detector.
    Builtin(Detector),
    /// A custom detector's pattern.
    Custom(&'a str),
}

/// The built-in detectors found from digit runs.
#[derive(Debug, Clone, Copy, Default)]
struct DigitLed {
    passport: bool,
    iban: bool,
    card: bool,
    ssn: bool,
    phone: bool,
    ip: bool,
}

impl DigitLed {
    fn any(self) -> bool {
        self.passport || self.iban || self.card || self.ssn || self.phone || self.ip
    }
}

/// The assignment detectors wanted.
#[derive(Debug, Clone, Copy, Default)]
struct Assignments {
    aws: bool,
    generic: bool,
}

/// The candidate sources and exact matchers for a list of detectors.
#[derive(Debug, Clone)]
pub(super) struct Scanner {
    /// One entry per detector, in priority order (the order of the specs it was built from).
    how: Vec<How>,
    literal: Option<Group>,
    custom: Option<Group>,
    assignment: Option<Regex>,
    /// The assignment patterns up to their operator.
    assignment_label: Option<Regex>,
    assignments: Assignments,
    email: Option<Regex>,
    passport: Option<Regex>,
    iban: Option<Regex>,
    phone: Option<Regex>,
    ip: Option<Regex>,
    digit_led: DigitLed,
}

/// A regex's leftmost match from a position: (start, end, pattern).
type GroupMatch = Option<(usize, usize, usize)>;

impl Scanner {
    /// A scanner for `specs`, tried in that order. `None` when a pattern does not compile.
    pub(super) fn new(specs: &[Pattern<'_>]) -> Option<Scanner> {
        let mut how = Vec::with_capacity(specs.len());
        let mut literal = Vec::new();
        let mut custom = Vec::new();
        let mut assignment = Vec::new();
        let mut assignment_label = Vec::new();
        let mut s = Scanner {
            how: Vec::new(),
            literal: None,
            custom: None,
            assignment: None,
            assignment_label: None,
            assignments: Assignments::default(),
            email: None,
            passport: None,
            iban: None,
            phone: None,
            ip: None,
            digit_led: DigitLed::default(),
        };
        let single = |d: Detector| Regex::new(d.pattern()).ok();
        for spec in specs {
            how.push(match *spec {
                Pattern::Custom(p) => {
                    custom.push(p);
                    How::Custom(custom.len() - 1)
                }
                Pattern::Builtin(d @ (Detector::AwsSecretKey | Detector::GenericApiKey)) => {
                    if d == Detector::AwsSecretKey {
                        s.assignments.aws = true;
                    } else {
                        s.assignments.generic = true;
                    }
                    assignment.push(d.pattern());
                    assignment_label.push(d.assignment_label()?);
                    How::Assignment(assignment.len() - 1)
                }
                Pattern::Builtin(d @ Detector::Email) => {
                    s.email = Some(single(d)?);
                    How::Email
                }
                Pattern::Builtin(d @ Detector::UsPassport) => {
                    s.passport = Some(single(d)?);
                    s.digit_led.passport = true;
                    How::Passport
                }
                Pattern::Builtin(d @ Detector::Iban) => {
                    s.iban = Some(single(d)?);
                    s.digit_led.iban = true;
                    How::Iban
                }
                Pattern::Builtin(Detector::CreditCard) => {
                    s.digit_led.card = true;
                    How::Card
                }
                Pattern::Builtin(Detector::UsSsn) => {
                    s.digit_led.ssn = true;
                    How::Ssn
                }
                Pattern::Builtin(d @ Detector::Phone) => {
                    s.phone = Some(single(d)?);
                    s.digit_led.phone = true;
                    How::Phone
                }
                Pattern::Builtin(d @ Detector::IpAddress) => {
                    s.ip = Some(single(d)?);
                    s.digit_led.ip = true;
                    How::Ip
                }
                Pattern::Builtin(d) => {
                    literal.push(d.pattern());
                    How::Literal(literal.len() - 1)
                }
            });
        }
        s.literal = Group::new(&literal)?;
        s.custom = Group::new(&custom)?;
        if !assignment.is_empty() {
            s.assignment = Some(Regex::new_many(&assignment).ok()?);
            s.assignment_label = Some(Regex::new_many(&assignment_label).ok()?);
        }
        s.how = how;
        Some(s)
    }

    /// Finds every confirmed value in `text`, in order and not overlapping, and hands each to
    /// `found(detector index, start, end)`. `confirm(i, range)` is detector `i`'s validator on a
    /// match of its pattern: the value's span, or `None` when the match is not a finding.
    pub(super) fn scan(
        &self,
        text: &str,
        mut confirm: impl FnMut(usize, Range<usize>) -> Option<(usize, usize)>,
        mut found: impl FnMut(usize, usize, usize),
    ) {
        let b = text.as_bytes();
        let mut cursor = Cursors::new(self);
        let mut at = 0;
        let mut last_end = 0;
        while at < b.len() {
            let s = cursor.next(self, text, at);
            if s == NONE {
                break;
            }
            // What each source found here, if its candidate is this one.
            let here = |m: GroupMatch| m.filter(|&(start, _, _)| start == s);
            let (literal, custom, assignment) = (
                here(cursor.literal),
                here(cursor.custom),
                here(cursor.assignment),
            );
            let digit = if cursor.digit.start == s {
                cursor.digit
            } else {
                DigitHit::NONE
            };
            let mut hit = None;
            for (i, how) in self.how.iter().enumerate() {
                let end = match *how {
                    How::Literal(local) if literal.is_some() => {
                        let re = self.literal.as_ref().map(|g| &g.re);
                        group_at(re, literal, text, s, local)
                    }
                    How::Custom(local) if custom.is_some() => {
                        let re = self.custom.as_ref().map(|g| &g.re);
                        group_at(re, custom, text, s, local)
                    }
                    How::Assignment(local) if assignment.is_some() => {
                        group_at(self.assignment.as_ref(), assignment, text, s, local)
                    }
                    How::Email if cursor.email.0 == s => Some(cursor.email.1),
                    How::Passport if digit.passport => anchored(self.passport.as_ref(), text, s),
                    How::Iban if digit.iban => anchored(self.iban.as_ref(), text, s),
                    How::Card => digit.card,
                    How::Ssn => digit.ssn,
                    How::Phone if digit.phone_plus => anchored(self.phone.as_ref(), text, s),
                    How::Phone => digit.phone,
                    How::Ip => match digit.ipv4 {
                        Some(end) => Some(end),
                        // IPv4 and IPv6 never match at the same start (a dot or a colon
                        // follows the first digits), and every IPv6 start is a colon candidate.
                        None if cursor.colon == s && ipv6_plausible(b, s) => {
                            anchored(self.ip.as_ref(), text, s)
                        }
                        None => None,
                    },
                    _ => None,
                };
                if let Some(span) = end.and_then(|end| confirm(i, s..end)) {
                    hit = Some((i, span));
                    break;
                }
            }
            match hit {
                Some((i, (start, end))) => {
                    // A confirmed span may reach back (an e-mail's local part), never into
                    // the previous finding.
                    let start = start.max(last_end);
                    if end > start {
                        found(i, start, end);
                        last_end = end;
                    }
                    at = end.max(s + 1);
                }
                None => at = s + 1,
            }
            while at < b.len() && !text.is_char_boundary(at) {
                at += 1;
            }
        }
    }
}

/// The next candidate of each source. A candidate stays valid while the scan has not passed
/// it: it is the first at or after any position up to it.
#[derive(Debug)]
struct Cursors {
    literal: GroupMatch,
    literal_done: bool,
    custom: GroupMatch,
    custom_done: bool,
    assignment: GroupMatch,
    assignment_done: bool,
    /// The generic secret's value at the last operator looked at, for the next one.
    window: ValueWindow,
    /// The next e-mail match: (start, end).
    email: (usize, usize),
    digit: DigitHit,
    colon: usize,
    /// Whether the plain sources have been asked once (they start "at 0, unknown").
    started: bool,
}

impl Cursors {
    fn new(s: &Scanner) -> Cursors {
        let on = |b: bool| if b { 0 } else { NONE };
        Cursors {
            literal: None,
            literal_done: s.literal.is_none(),
            custom: None,
            custom_done: s.custom.is_none(),
            assignment: None,
            assignment_done: s.assignment.is_none(),
            window: ValueWindow::new(),
            email: (on(s.email.is_some()), NONE),
            digit: DigitHit {
                start: on(s.digit_led.any()),
                ..DigitHit::NONE
            },
            colon: on(s.ip.is_some()),
            started: false,
        }
    }

    /// Brings every source up to `at` and returns the smallest candidate, or [`NONE`].
    fn next(&mut self, s: &Scanner, text: &str, at: usize) -> usize {
        let b = text.as_bytes();
        let stale = |c: usize, started: bool| c != NONE && (!started || c < at);
        if !self.literal_done && self.literal.is_none_or(|(start, _, _)| start < at) {
            self.literal = s.literal.as_ref().and_then(|g| g.leftmost(text, at));
            self.literal_done = self.literal.is_none();
        }
        if !self.custom_done && self.custom.is_none_or(|(start, _, _)| start < at) {
            self.custom = s.custom.as_ref().and_then(|g| g.leftmost(text, at));
            self.custom_done = self.custom.is_none();
        }
        if !self.assignment_done && self.assignment.is_none_or(|(start, _, _)| start < at) {
            self.assignment = next_assignment(s, text, at, &mut self.window);
            self.assignment_done = self.assignment.is_none();
        }
        if stale(self.email.0, self.started) {
            self.email = next_email(s.email.as_ref(), text, at);
        }
        if stale(self.digit.start, self.started) {
            self.digit = next_digit_led(s.digit_led, s.passport.as_ref(), text, at);
        }
        if stale(self.colon, self.started) {
            self.colon = next_ipv6(b, at);
        }
        self.started = true;
        let group = |m: GroupMatch| m.map_or(NONE, |(start, _, _)| start);
        group(self.literal)
            .min(group(self.custom))
            .min(group(self.assignment))
            .min(self.email.0)
            .min(self.digit.start)
            .min(self.colon)
    }
}

/// A multi-pattern automaton.
#[derive(Debug, Clone)]
struct Group {
    re: Regex,
}

impl Group {
    /// `Some(None)` for no patterns, `None` when one does not compile.
    fn new(patterns: &[&str]) -> Option<Option<Group>> {
        if patterns.is_empty() {
            return Some(None);
        }
        Some(Some(Group {
            re: Regex::new_many(patterns).ok()?,
        }))
    }

    /// The leftmost match at or after `at`: (start, end, pattern). Unanchored, so one pass
    /// covers every start however the candidates overlap (anchored searches from each start
    /// literal would read up to a pattern's length again at each one).
    fn leftmost(&self, text: &str, at: usize) -> GroupMatch {
        let m = self.re.search(&Input::new(text).range(at..))?;
        Some((m.start(), m.end(), m.pattern().as_usize()))
    }
}

/// Pattern `local` of a multi-pattern automaton at `s`, given the automaton's leftmost match.
/// Leftmost-first reports the first pattern that matches at a start; a later one may match
/// there too and is asked directly (its validator may accept what the first one's refused).
fn group_at(
    re: Option<&Regex>,
    m: GroupMatch,
    text: &str,
    s: usize,
    local: usize,
) -> Option<usize> {
    let (start, end, first) = m?;
    if start != s || local < first {
        None
    } else if local == first {
        Some(end)
    } else {
        let pattern = Anchored::Pattern(PatternID::new_unchecked(local));
        re?.search(&Input::new(text).range(s..).anchored(pattern))
            .map(|m| m.end())
    }
}

/// The end of `re`'s match starting exactly at `s`.
fn anchored(re: Option<&Regex>, text: &str, s: usize) -> Option<usize> {
    re?.search(&Input::new(text).range(s..).anchored(Anchored::Yes))
        .map(|m| m.end())
}

/// ASCII word characters, as `(?-u:\b)` sees them.
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The first position at or after `at` where an e-mail address starts, and the end of the
/// pattern's match there.
///
/// Every address holds an `@` after a local part of 1 to 64 characters none of which is an
/// `@`, so the match using a given `@` starts as far back as the local part reaches (not before
/// `at`), and exists when the pattern matches from there.
fn next_email(re: Option<&Regex>, text: &str, at: usize) -> (usize, usize) {
    let b = text.as_bytes();
    for i in memchr::memchr_iter(b'@', b.get(at..).unwrap_or_default()) {
        let a = at + i;
        if !domain_follows(b, a) {
            continue;
        }
        let mut s = a;
        let mut chars = 0;
        while s > at && chars < 64 {
            let Some(c) = text.get(..s).and_then(|t| t.chars().next_back()) else {
                break;
            };
            // The local part's class in `Detector::Email`'s pattern.
            if c.is_whitespace() || "@<>()[]\\,;:\"'`".contains(c) {
                break;
            }
            s -= c.len_utf8();
            chars += 1;
        }
        if s < a
            && let Some(end) = anchored(re, text, s)
        {
            return (s, end);
        }
    }
    (NONE, NONE)
}

/// Whether the `@` at `a` is followed by what every address's domain starts with: at least one
/// label character, then a dot (before any character the domain pattern refuses). Cheaper than
/// the pattern for the `@`s of handles, decorators and `a@a@a@` noise.
fn domain_follows(b: &[u8], a: usize) -> bool {
    let mut i = a + 1;
    // Non-ASCII bytes count as label characters: a superset, so the check never refuses an
    // address the pattern would accept.
    while let Some(&c) = b.get(i) {
        if c == b'.' {
            return i > a + 1;
        }
        if c.is_ascii_whitespace() || b"@<>()[]\\,;:\"'`".contains(&c) {
            return false;
        }
        i += 1;
    }
    false
}

/// Value characters of `Detector::GenericApiKey`'s pattern.
fn generic_value_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'/' | b'+' | b'=')
}

/// Value characters of `Detector::AwsSecretKey`'s pattern.
fn aws_value_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'/' | b'+')
}

/// The longest value `Detector::GenericApiKey`'s pattern takes (`{16,200}`).
const GENERIC_VALUE_MAX: usize = 200;

/// The byte counts of the generic secret's value at an operator, kept up to date as the scan
/// moves on, so that the operators inside one long value (`token=token=…`, each with a label
/// before it) share one pass over it instead of matching and checking up to 200 bytes each.
///
/// The value at `g` is the run of value characters from `g`, cut at 200: what the pattern's
/// greedy `[A-Za-z0-9_\-./+=]{16,200}` takes there. Its start and end only move forward while
/// the scan stays in one run, so each byte is counted in and out at most once per run.
#[derive(Debug)]
struct ValueWindow {
    /// The counted bytes: `lo..hi`.
    lo: usize,
    hi: usize,
    /// Where the run of value characters holding `lo..hi` ends.
    run_end: usize,
    /// Counts by byte; value characters are ASCII.
    counts: [u32; 128],
    lower: u32,
    upper: u32,
    digits: u32,
}

impl ValueWindow {
    fn new() -> ValueWindow {
        ValueWindow {
            lo: 0,
            hi: 0,
            run_end: 0,
            counts: [0; 128],
            lower: 0,
            upper: 0,
            digits: 0,
        }
    }

    /// Whether the generic pattern's value at `g` passes its validator, as
    /// `Detector::GenericApiKey`'s confirmation decides it (the same function on the same
    /// counts). `g` starts at least 16 value characters.
    fn random(&mut self, b: &[u8], g: usize) -> bool {
        if g < self.lo || g >= self.run_end {
            // A new run (or, never in a forward scan, an earlier start): count from scratch.
            *self = ValueWindow::new();
            self.lo = g;
            self.hi = g;
            self.run_end = g + b.get(g..).map_or(0, |r| {
                r.iter()
                    .position(|&c| !generic_value_byte(c))
                    .unwrap_or(r.len())
            });
        }
        while self.lo < g.min(self.hi) {
            self.count(b, self.lo, false);
            self.lo += 1;
        }
        self.lo = g;
        self.hi = self.hi.max(g);
        let end = self.run_end.min(g + GENERIC_VALUE_MAX);
        while self.hi < end {
            self.count(b, self.hi, true);
            self.hi += 1;
        }
        let classes = usize::from(self.lower > 0)
            + usize::from(self.upper > 0)
            + usize::from(self.digits > 0);
        super::detectors::random_enough(end - g, classes, self.counts.iter().copied())
    }

    fn count(&mut self, b: &[u8], i: usize, add: bool) {
        let Some(&c) = b.get(i) else {
            return;
        };
        let step = |n: &mut u32| {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        };
        if let Some(n) = self.counts.get_mut(usize::from(c)) {
            step(n);
        }
        if c.is_ascii_lowercase() {
            step(&mut self.lower);
        } else if c.is_ascii_uppercase() {
            step(&mut self.upper);
        } else if c.is_ascii_digit() {
            step(&mut self.digits);
        }
    }
}

/// How far before its operator (past the spaces and quotes next to it) an assignment can
/// start: `aws`, 24 label characters, `secret` and 24 more (the keywords 4 bytes a character
/// at most under Unicode case folding), or a generic keyword (13 characters) and 16 label
/// characters.
const ASSIGNMENT_REACH: usize = 3 * 4 + 24 + 6 * 4 + 24;

/// The leftmost match at or after `at` of the assignment automaton (AWS secret keys and generic
/// `api_key = value` secrets, in that order).
///
/// Every such match is a label, exactly one operator (`:` or `=`; no label character is one),
/// and a value of at least 16 (generic) or exactly 40 (AWS) characters. So only operators
/// followed by a long enough value count, the labels using one lie between it and the
/// operator before, within [`ASSIGNMENT_REACH`] bytes of it past the spaces and quotes next to
/// it, and the whole pattern is matched from the leftmost label found there. Each byte is read
/// by a label search for one operator only, so the work stays linear however dense the
/// operators are. An operator whose value only the generic pattern can take, and whose value
/// its validator refuses, is passed over at its first label: `window` carries that value's
/// byte counts to the next operator (see [`ValueWindow`]).
fn next_assignment(sc: &Scanner, text: &str, at: usize, window: &mut ValueWindow) -> GroupMatch {
    let (Some(full), Some(label)) = (&sc.assignment, &sc.assignment_label) else {
        return None;
    };
    let want = sc.assignments;
    let b = text.as_bytes();
    // No label using a later operator starts before this: the byte after the last operator.
    let mut floor = at;
    for i in memchr::memchr2_iter(b':', b'=', b.get(at..).unwrap_or_default()) {
        let op = at + i;
        let region = floor;
        floor = op + 1;
        if region >= op {
            // No room for a label (operators side by side).
            continue;
        }
        // Generic: `[ \t]*["']?` then 16 value characters or more.
        let mut g = op + 1;
        while matches!(b.get(g), Some(b' ' | b'\t')) {
            g += 1;
        }
        if matches!(b.get(g), Some(b'"' | b'\'')) {
            g += 1;
        }
        let generic = want.generic
            && b.get(g..g + 16)
                .is_some_and(|v| v.iter().all(|&c| generic_value_byte(c)));
        // AWS: `[\x22' ]*` then 40 key characters.
        let mut a = op + 1;
        while matches!(b.get(a), Some(b' ' | b'"' | b'\'')) {
            a += 1;
        }
        let aws = want.aws
            && b.get(a..a + 40)
                .is_some_and(|v| v.iter().all(|&c| aws_value_byte(c)));
        if !generic && !aws {
            continue;
        }
        let mut w = op;
        while w > region && matches!(b.get(w - 1), Some(b' ' | b'\t' | b'"' | b'\'')) {
            w -= 1;
        }
        let mut start = w.saturating_sub(ASSIGNMENT_REACH).max(region);
        while start < op {
            while !text.is_char_boundary(start) {
                start += 1;
            }
            // The range ends just past `op`, the only operator in it: a label found ends there.
            let Some(m) = label.search(&Input::new(text).range(start..op + 1)) else {
                break;
            };
            // Only the generic pattern can match here and its validator would refuse the value:
            // no label can make a finding of this operator. Without this, text such as
            // `token=token=…` matched and refused a 200-character value at every label. Asked
            // once a label is found: most operators have none, and the label search is cheaper.
            if !aws && !window.random(b, g) {
                break;
            }
            let here = Input::new(text).range(m.start()..).anchored(Anchored::Yes);
            if let Some(whole) = full.search(&here) {
                return Some((m.start(), whole.end(), whole.pattern().as_usize()));
            }
            start = m.start() + 1;
        }
    }
    None
}

/// How far before the digits of its number a passport match can start: `passport` (8
/// characters, 4 bytes each at most under case folding), 12 separators (4 bytes each), `number`,
/// a dot, 4 more separators and the number's first character.
const PASSPORT_REACH: usize = 8 * 4 + 12 * 4 + 6 + 1 + 4 * 4 + 1;

/// The start of a passport match whose number ends the digit run `d..e`, at or after `at`.
///
/// The number is `[A-Z0-9][0-9]{8}` and ends at a word boundary, so its digits are a run of
/// exactly nine, or eight after a capital; the label `passport` ends in `port`, which has no
/// non-ASCII case variants.
fn passport_before(re: Option<&Regex>, text: &str, at: usize, d: usize, e: usize) -> Option<usize> {
    let b = text.as_bytes();
    let len = e - d;
    let capital = d > 0 && b.get(d - 1).is_some_and(u8::is_ascii_uppercase);
    if !(len == 9 || (len == 8 && capital)) {
        return None;
    }
    let mut w = d.saturating_sub(PASSPORT_REACH).max(at);
    while !text.is_char_boundary(w) {
        w += 1;
    }
    let label = b.get(w..d)?;
    if !label.windows(4).any(|x| x.eq_ignore_ascii_case(b"port")) {
        return None;
    }
    let m = re?.search(&Input::new(text).range(w..e))?;
    (m.end() == e).then_some(m.start())
}

/// A mask with the high bit set in each byte of `w` that is an ASCII digit. Exact per byte:
/// the sums below never carry or borrow across bytes.
fn digit_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HI;
    let at_least_0 = (low7 + LO * (0x80 - u64::from(b'0'))) & HI;
    let at_most_9 = (LO * (0x80 + u64::from(b'9')) - low7) & HI;
    at_least_0 & at_most_9 & !w & HI
}

/// The first position at or after `from` holding a digit whose previous byte is not one,
/// eight bytes at a time.
fn next_run_start(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    let mut prev_digit = i > 0 && b.get(i - 1).is_some_and(u8::is_ascii_digit);
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let digits = digit_mask(u64::from_le_bytes(word));
        let starts = digits & !((digits << 8) | (u64::from(prev_digit) << 7));
        if starts != 0 {
            return Some(i + (starts.trailing_zeros() / 8) as usize);
        }
        prev_digit = digits >> 63 != 0;
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c.is_ascii_digit() && !prev_digit {
            return Some(i);
        }
        prev_digit = c.is_ascii_digit();
        i += 1;
    }
    None
}

/// The first position at or after `from` that does not hold a digit, eight bytes at a time (a
/// byte loop would mispredict its exit at every run of a different length).
fn run_end(b: &[u8], from: usize) -> usize {
    let mut e = from;
    while let Some(chunk) = b.get(e..e + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let other = !digit_mask(u64::from_le_bytes(word)) & 0x8080_8080_8080_8080;
        if other != 0 {
            return e + (other.trailing_zeros() / 8) as usize;
        }
        e += 8;
    }
    while b.get(e).is_some_and(u8::is_ascii_digit) {
        e += 1;
    }
    e
}

/// The first position at or after `at` where a digit-led detector matches and could be
/// confirmed.
///
/// Every card, SSN, phone number, IPv4 address and IBAN holds a digit run whose start is the
/// value's start (cards, SSNs, US phones, addresses), or one byte after it (`+` and `(`
/// phones), or two (the IBAN's country letters); a passport number ends one, a bounded
/// distance after its label. A value glued to a letter or digit before it is never confirmed,
/// so starts inside a run are skipped. Each run is then checked against the shapes cheaply
/// (its length and the byte after it rule out most) before the exact matcher. Candidates come
/// out in order: nothing between a passport label and its number is a digit.
fn next_digit_led(want: DigitLed, passport: Option<&Regex>, text: &str, at: usize) -> DigitHit {
    let b = text.as_bytes();
    // Not glued to a letter, digit or `+` before: where a phone number can be confirmed.
    let free = |c: u8| !c.is_ascii_alphanumeric() && c != b'+';
    let mut i = at;
    while let Some(d) = next_run_start(b, i) {
        let e = run_end(b, d + 1);
        // The byte at `e` is not a digit, so the next run starts after it.
        i = e + 1;
        let len = e - d;
        let next = b.get(e).copied().unwrap_or(0);
        let before = |k: usize| {
            if k > 0 {
                b.get(k - 1).copied().unwrap_or(0)
            } else {
                b' '
            }
        };
        let prev = before(d);
        if want.passport
            && let Some(p) = passport_before(passport, text, at, d, e)
        {
            return DigitHit::at(p, |h| h.passport = true);
        }
        if want.iban && d >= at + 2 && len >= 2 && prev.is_ascii_uppercase() && iban_start(b, d - 2)
        {
            return DigitHit::at(d - 2, |h| h.iban = true);
        }
        if want.phone && matches!(prev, b'+' | b'(') && d > at && free(before(d - 1)) {
            if prev == b'+' && b.get(d) != Some(&b'0') {
                return DigitHit::at(d - 1, |h| h.phone_plus = true);
            }
            if prev == b'('
                && len == 3
                && let Some(end) = phone_us_at(b, d - 1)
            {
                return DigitHit::at(d - 1, |h| h.phone = Some(end));
            }
        }
        let mut hit = DigitHit {
            start: d,
            ..DigitHit::NONE
        };
        if want.card
            && matches!(b.get(d), Some(b'2'..=b'6'))
            && (len >= 13 || matches!(next, b' ' | b'\t' | b'.' | b'-'))
        {
            hit.card = card_at(b, d);
        }
        if len == 3 {
            if want.ssn && matches!(next, b'-' | b' ') && !is_word(prev) {
                hit.ssn = ssn_at(b, d);
            }
            if want.phone && matches!(next, b' ' | b'.' | b'-' | b')') && free(prev) {
                hit.phone = phone_us_at(b, d);
            }
        }
        if want.ip && len <= 3 && next == b'.' && !prev.is_ascii_alphanumeric() && prev != b':' {
            hit.ipv4 = ipv4_at(b, d);
        }
        if hit.card.is_some() || hit.ssn.is_some() || hit.phone.is_some() || hit.ipv4.is_some() {
            return hit;
        }
    }
    DigitHit::NONE
}

/// A candidate from the digit runs: where, and what matches there that could be confirmed
/// (the end of each hand-checked pattern's match; the rest are asked of their regexes).
#[derive(Debug, Clone, Copy)]
struct DigitHit {
    start: usize,
    passport: bool,
    iban: bool,
    phone_plus: bool,
    phone: Option<usize>,
    card: Option<usize>,
    ssn: Option<usize>,
    ipv4: Option<usize>,
}

impl DigitHit {
    const NONE: DigitHit = DigitHit {
        start: NONE,
        passport: false,
        iban: false,
        phone_plus: false,
        phone: None,
        card: None,
        ssn: None,
        ipv4: None,
    };

    fn at(start: usize, set: impl FnOnce(&mut DigitHit)) -> DigitHit {
        let mut h = DigitHit {
            start,
            ..DigitHit::NONE
        };
        set(&mut h);
        h
    }
}

/// Two capitals and two digits at `s`, not glued to a word before: how every IBAN starts.
fn iban_start(b: &[u8], s: usize) -> bool {
    let shape = matches!(b.get(s..s + 4), Some([c0, c1, d0, d1])
        if c0.is_ascii_uppercase() && c1.is_ascii_uppercase() && d0.is_ascii_digit() && d1.is_ascii_digit());
    shape && (s == 0 || b.get(s - 1).is_some_and(|&c| !is_word(c)))
}

/// `Detector::CreditCard`'s pattern, `[2-6](?:[ \t.\-]{0,2}[0-9]){12,18}`, anchored at `s`:
/// the end of its match. Each repetition can match in one way only (separators are not
/// digits), so taking as many as possible is what the regex does.
fn card_at(b: &[u8], s: usize) -> Option<usize> {
    if !matches!(b.get(s), Some(b'2'..=b'6')) {
        return None;
    }
    let digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    let sep = |k: usize| matches!(b.get(k), Some(b' ' | b'\t' | b'.' | b'-'));
    let mut i = s + 1;
    let mut groups = 0;
    while groups < 18 {
        i = if digit(i) {
            i + 1
        } else if sep(i) && digit(i + 1) {
            i + 2
        } else if sep(i) && sep(i + 1) && digit(i + 2) {
            i + 3
        } else {
            break;
        };
        groups += 1;
    }
    (groups >= 12).then_some(i)
}

/// `Detector::UsSsn`'s pattern, `(?-u:\b)[0-9]{3}([- ])[0-9]{2}[- ][0-9]{4}(?-u:\b)`, anchored
/// at `s`.
fn ssn_at(b: &[u8], s: usize) -> Option<usize> {
    let Some(&[a0, a1, a2, s0, g0, g1, s1, n0, n1, n2, n3]) = b.get(s..s + 11) else {
        return None;
    };
    let digits = [a0, a1, a2, g0, g1, n0, n1, n2, n3]
        .iter()
        .all(u8::is_ascii_digit);
    let seps = matches!(s0, b'-' | b' ') && matches!(s1, b'-' | b' ');
    let before = s == 0 || b.get(s - 1).is_some_and(|&c| !is_word(c));
    let after = b.get(s + 11).is_none_or(|&c| !is_word(c));
    (digits && seps && before && after).then_some(s + 11)
}

/// The US branch of `Detector::Phone`'s pattern,
/// `\(?[2-9][0-9]{2}\)?[ .\-][2-9][0-9]{2}[ .\-][0-9]{4}`, anchored at `s`. Each optional
/// parenthesis can only be taken one way (a parenthesis is neither a digit nor a separator).
fn phone_us_at(b: &[u8], s: usize) -> Option<usize> {
    let digit = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
    let lead = |k: usize| matches!(b.get(k), Some(b'2'..=b'9'));
    let sep = |k: usize| matches!(b.get(k), Some(b' ' | b'.' | b'-'));
    let mut i = s;
    if b.get(i) == Some(&b'(') {
        i += 1;
    }
    if !(lead(i) && digit(i + 1) && digit(i + 2)) {
        return None;
    }
    i += 3;
    if b.get(i) == Some(&b')') {
        i += 1;
    }
    if !(sep(i) && lead(i + 1) && digit(i + 2) && digit(i + 3) && sep(i + 4)) {
        return None;
    }
    i += 5;
    (digit(i) && digit(i + 1) && digit(i + 2) && digit(i + 3)).then_some(i + 4)
}

/// The IPv4 branch of `Detector::IpAddress`'s pattern, `(?:[0-9]{1,3}\.){3}[0-9]{1,3}`,
/// anchored at `s`. A group followed by a dot must be its whole digit run; the last takes up to
/// three digits.
fn ipv4_at(b: &[u8], s: usize) -> Option<usize> {
    let mut i = s;
    for group in 0..4 {
        let mut n = 0;
        while n < 3 && b.get(i + n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
        if n == 0 {
            return None;
        }
        i += n;
        if group < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

/// Whether an IPv6 branch of `Detector::IpAddress`'s pattern can match at `s`: every one needs,
/// in the run of hex digits and colons from `s`, a colon after at most four hex digits, and
/// either `::` or seven colons.
fn ipv6_plausible(b: &[u8], s: usize) -> bool {
    let mut colons = 0;
    let mut lead = 0;
    let mut i = s;
    while let Some(&c) = b.get(i) {
        if c == b':' {
            if b.get(i + 1) == Some(&b':') {
                return true;
            }
            colons += 1;
            if colons == 7 {
                return true;
            }
        } else if c.is_ascii_hexdigit() {
            if colons == 0 {
                lead += 1;
                if lead > 4 {
                    return false;
                }
            }
        } else {
            return false;
        }
        i += 1;
    }
    false
}

/// The first position at or after `at` where an IPv6 address can start and be confirmed: the
/// start of the hex digits (at most four) before a colon, or a `::`, not glued to a letter,
/// digit or colon before.
fn next_ipv6(b: &[u8], at: usize) -> usize {
    let free = |k: usize| {
        k == 0
            || b.get(k - 1)
                .is_some_and(|&c| !c.is_ascii_alphanumeric() && c != b':')
    };
    for i in memchr::memchr_iter(b':', b.get(at..).unwrap_or_default()) {
        let colon = at + i;
        let mut j = colon;
        while j > 0 && colon - j < 5 && b.get(j - 1).is_some_and(u8::is_ascii_alphanumeric) {
            j -= 1;
        }
        let s = if j < colon {
            let hex = b
                .get(j..colon)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if colon - j > 4 || !hex || !free(j) {
                continue;
            }
            j
        } else if free(colon) && b.get(colon + 1) == Some(&b':') {
            colon
        } else {
            continue;
        };
        if s >= at && ipv6_plausible(b, s) {
            return s;
        }
    }
    NONE
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use proptest::prelude::*;

    fn re(d: Detector) -> Regex {
        Regex::new(d.pattern()).unwrap()
    }

    /// Digits, every separator the digit-led patterns know, and a few letters and symbols
    /// around them.
    const DIGITISH: &str = "[0-9 .:()+\\-\t_aAfFzZ/]{0,48}";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The hand-written matchers end where the regexes they replace end, at every start.
        #[test]
        fn matchers_agree_with_their_patterns(text in DIGITISH) {
            let b = text.as_bytes();
            let (card, ssn, phone, ip) = (re(Detector::CreditCard), re(Detector::UsSsn), re(Detector::Phone), re(Detector::IpAddress));
            for s in 0..b.len() {
                prop_assert_eq!(card_at(b, s), anchored(Some(&card), &text, s), "card at {}", s);
                prop_assert_eq!(ssn_at(b, s), anchored(Some(&ssn), &text, s), "ssn at {}", s);
                if b[s] != b'+' {
                    prop_assert_eq!(phone_us_at(b, s), anchored(Some(&phone), &text, s), "phone at {}", s);
                }
                let regex = anchored(Some(&ip), &text, s);
                match ipv4_at(b, s) {
                    Some(end) => prop_assert_eq!(Some(end), regex, "ipv4 at {}", s),
                    None => prop_assert!(regex.is_none() || ipv6_plausible(b, s), "ipv6 at {}", s),
                }
            }
        }

        /// The sliding counts decide as the generic secret's validator does on the value at
        /// each start, start after start, across runs and jumps.
        #[test]
        fn value_window_agrees_with_the_validator(
            pieces in proptest::collection::vec(prop_oneof![
                Just("token=".to_owned()),
                Just("Token1=".to_owned()),
                Just("secret=Ab1aaaaaaaa".to_owned()),
                Just("X7dK29LmQp4vR8sT2wY6zA1b".to_owned()),
                Just(" ".to_owned()),
                Just(":".to_owned()),
                "[a-dA-D0-3./+=_-]{0,60}",
                "[a-d]{150,450}",
            ], 0..40),
            // Short steps, and jumps past the counted window inside one long run.
            steps in proptest::collection::vec(prop_oneof![1usize..40, 190usize..500], 1..200),
        ) {
            let text = pieces.concat();
            let b = text.as_bytes();
            let mut window = ValueWindow::new();
            let mut g = 0;
            for step in steps.iter().copied().cycle().take(4 * b.len() + 1) {
                if g >= b.len() {
                    break;
                }
                let run = b[g..].iter().position(|&c| !generic_value_byte(c)).unwrap_or(b.len() - g);
                if run >= 16 {
                    let end = g + run.min(GENERIC_VALUE_MAX);
                    let expect = super::super::detectors::looks_random(&text[g..end]);
                    prop_assert_eq!(window.random(b, g), expect, "at {} in {:?}", g, text);
                }
                // Every start one by one in even cases, jumps in odd ones.
                g += if steps.len() % 2 == 0 { 1 } else { step };
            }
        }

        /// The eight-lane digit test agrees with a byte-by-byte one on any word.
        #[test]
        fn digit_mask_agrees_with_bytes(w in any::<u64>()) {
            let expect = w.to_le_bytes().iter().enumerate().fold(0u64, |m, (lane, x)| {
                if x.is_ascii_digit() { m | 0x80 << (lane * 8) } else { m }
            });
            prop_assert_eq!(digit_mask(w), expect);
        }

        /// Run ends found eight bytes at a time are the ones a byte loop finds.
        #[test]
        fn run_ends_are_exact(text in "[0-9a ]{0,40}", from in 0usize..40) {
            let b = text.as_bytes();
            let from = from.min(b.len());
            let slow = (from..b.len()).find(|&i| !b[i].is_ascii_digit()).unwrap_or(b.len());
            prop_assert_eq!(run_end(b, from), slow);
        }

        /// The digit-run starts found eight bytes at a time are the ones a byte loop finds.
        #[test]
        fn run_starts_are_exact(text in "[0-9a ]{0,40}", from in 0usize..40) {
            let b = text.as_bytes();
            let from = from.min(b.len());
            let slow = (from..b.len()).find(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()));
            prop_assert_eq!(next_run_start(b, from), slow);
        }
    }

    #[test]
    fn digit_mask_is_exact_for_every_byte() {
        for x in 0..=255u8 {
            for lane in 0..8 {
                let w = u64::from(x) << (lane * 8);
                let expect = if x.is_ascii_digit() {
                    0x80u64 << (lane * 8)
                } else {
                    0
                };
                assert_eq!(digit_mask(w), expect, "byte {x:#x} in lane {lane}");
            }
        }
    }
}
