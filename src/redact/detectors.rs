//! The built-in detectors: what each looks for, how a candidate is confirmed, and which part of
//! a match is the sensitive value.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A kind of sensitive value the built-in redactor finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Detector {
    /// Payment card numbers (Visa, Mastercard incl. 2221-2720, Amex, Discover, JCB, Diners) of
    /// the brand's length, Luhn-valid, plain or grouped by spaces, dots or dashes.
    CreditCard,
    /// US social security numbers written `AAA-GG-SSSS` (or with spaces); area 000, 666 and
    /// 900-999, group 00 and serial 0000 are not numbers ever issued and are left alone.
    UsSsn,
    /// E-mail addresses.
    Email,
    /// Phone numbers: US formats with separators, and international `+` numbers (E.164).
    Phone,
    /// IBANs, with the country's length and a valid mod-97 check.
    Iban,
    /// IPv4 and IPv6 addresses.
    IpAddress,
    /// US passport numbers, only next to the word "passport".
    UsPassport,
    /// AWS access key ids (`AKIA...`, `ASIA...`).
    AwsAccessKey,
    /// AWS secret access keys, only after an `aws ... secret` label.
    AwsSecretKey,
    /// GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// Slack tokens (`xoxb-`, `xoxp-`, ...).
    SlackToken,
    /// Slack incoming-webhook URLs.
    SlackWebhook,
    /// Stripe secret and restricted keys (`sk_live_`, `rk_test_`, ...).
    StripeKey,
    /// Google API keys (`AIza...`).
    GcpApiKey,
    /// JSON Web Tokens whose header decodes to a JSON object naming an `alg`.
    Jwt,
    /// PEM private key blocks.
    PrivateKey,
    /// Values assigned to `api_key`, `secret`, `token`, `password`-style names, when they look
    /// random (length and character entropy).
    GenericApiKey,
}

/// What a finding's category is, for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Category {
    /// Personal data.
    Pii,
    /// Health data.
    Phi,
    /// Payment card data.
    Pci,
    /// Credentials and keys.
    Secret,
}

impl Category {
    /// The policy and audit spelling: `PII`, `PHI`, `PCI`, `SECRET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "PII",
            Category::Phi => "PHI",
            Category::Pci => "PCI",
            Category::Secret => "SECRET",
        }
    }

    /// The category with this spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PII" => Category::Pii,
            "PHI" => Category::Phi,
            "PCI" => Category::Pci,
            "SECRET" => Category::Secret,
            _ => return None,
        })
    }
}

impl Detector {
    /// Every built-in detector, in the order the engine tries them.
    pub const ALL: [Detector; 17] = [
        Detector::PrivateKey,
        Detector::Jwt,
        Detector::SlackWebhook,
        Detector::GithubToken,
        Detector::SlackToken,
        Detector::StripeKey,
        Detector::GcpApiKey,
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::GenericApiKey,
        Detector::UsPassport,
        Detector::Email,
        Detector::Iban,
        Detector::CreditCard,
        Detector::UsSsn,
        Detector::Phone,
        Detector::IpAddress,
    ];

    /// The entity type name used in output, reports and audit records (`CREDIT_CARD`).
    pub fn entity(self) -> &'static str {
        match self {
            Detector::CreditCard => "CREDIT_CARD",
            Detector::UsSsn => "US_SSN",
            Detector::Email => "EMAIL",
            Detector::Phone => "PHONE",
            Detector::Iban => "IBAN",
            Detector::IpAddress => "IP_ADDRESS",
            Detector::UsPassport => "US_PASSPORT",
            Detector::AwsAccessKey => "AWS_ACCESS_KEY",
            Detector::AwsSecretKey => "AWS_SECRET_KEY",
            Detector::GithubToken => "GITHUB_TOKEN",
            Detector::SlackToken => "SLACK_TOKEN",
            Detector::SlackWebhook => "SLACK_WEBHOOK",
            Detector::StripeKey => "STRIPE_KEY",
            Detector::GcpApiKey => "GCP_API_KEY",
            Detector::Jwt => "JWT",
            Detector::PrivateKey => "PRIVATE_KEY",
            Detector::GenericApiKey => "GENERIC_API_KEY",
        }
    }

    /// The policy file's name for the detector: the entity name in lower case (`credit_card`).
    pub fn name(self) -> String {
        self.entity().to_ascii_lowercase()
    }

    /// The detector with this policy name or entity name (`credit_card` or `CREDIT_CARD`).
    pub fn from_name(name: &str) -> Option<Self> {
        Detector::ALL
            .into_iter()
            .find(|d| d.entity().eq_ignore_ascii_case(name))
    }

    /// The category of what it finds.
    pub fn category(self) -> Category {
        match self {
            Detector::CreditCard => Category::Pci,
            Detector::UsSsn
            | Detector::Email
            | Detector::Phone
            | Detector::Iban
            | Detector::IpAddress
            | Detector::UsPassport => Category::Pii,
            _ => Category::Secret,
        }
    }

    /// The candidate pattern. ASCII-only word boundaries (`(?-u:\b)`): a Unicode `\b` makes the
    /// lazy DFA give up and costs about 100x.
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            // Every card brand starts with 2 to 6.
            Detector::CreditCard => r"[2-6](?:[ \t.\-]{0,2}[0-9]){12,18}",
            Detector::UsSsn => r"(?-u:\b)[0-9]{3}([- ])[0-9]{2}[- ][0-9]{4}(?-u:\b)",
            Detector::Email => {
                // Every repetition is bounded (RFC 5321 lengths): an unbounded one lets a long run
                // of digits or letters cost the scan quadratic time.
                r#"[^\s@<>()\[\]\\,;:"'`]{1,64}@[^\s@.<>()\[\]\\,;:"'`]{1,63}(?:\.[^\s@.<>()\[\]\\,;:"'`]{1,63}){0,8}\.[^\s@.<>()\[\]\\,;:"'`0-9\-]{2,24}"#
            }
            Detector::Phone => {
                r"(?:\+[1-9][0-9]{0,3}(?:[ .\-]?\(?[0-9]{1,4}\)?){2,5}|\(?[2-9][0-9]{2}\)?[ .\-][2-9][0-9]{2}[ .\-][0-9]{4})"
            }
            Detector::Iban => {
                r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)"
            }
            Detector::IpAddress => {
                // IPv4; IPv6 in full form, or compressed with "::" (so times such as 12:30:45
                // are never candidates).
                r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}|(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?|::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?"
            }
            Detector::UsPassport => {
                r"(?i:passport)[^A-Za-z0-9\n]{0,12}(?:(?i:no|number|num|nr)\.?[^A-Za-z0-9\n]{0,4})?[A-Z0-9][0-9]{8}(?-u:\b)"
            }
            Detector::AwsAccessKey => {
                r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?-u:\b)"
            }
            Detector::AwsSecretKey => {
                r"(?i:aws)[A-Za-z0-9_\-. ]{0,24}(?i:secret)[A-Za-z0-9_\-. ]{0,24}[\x22' ]*[:=][\x22' ]*[A-Za-z0-9/+]{40}"
            }
            Detector::GithubToken => {
                r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82})(?-u:\b)"
            }
            Detector::SlackToken => r"(?-u:\b)xox[abposr]-[0-9A-Za-z\-]{10,250}",
            Detector::SlackWebhook => {
                r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32}"
            }
            Detector::StripeKey => r"(?-u:\b)(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{10,99}(?-u:\b)",
            Detector::GcpApiKey => r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}",
            Detector::Jwt => {
                r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,1024}\.eyJ[A-Za-z0-9_\-]{2,4096}\.[A-Za-z0-9_\-]{8,1024}"
            }
            Detector::PrivateKey => {
                r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            }
            Detector::GenericApiKey => {
                r#"(?i:api[_\-]?key|apikey|secret|token|password|passwd|pwd|access[_\-]?key|client[_\-]?secret|auth)[A-Za-z0-9_\-]{0,16}["']?[ \t]*[:=][ \t]*["']?[A-Za-z0-9_\-./+=]{16,200}"#
            }
        }
    }

    /// For the assignment detectors (a label, one `:` or `=`, a value), the pattern up to and
    /// including the operator. No label character is an operator, so a label ends at the first
    /// one after its start; the scanner finds labels before each operator and matches the
    /// whole pattern from there.
    pub(crate) fn assignment_label(self) -> Option<&'static str> {
        match self {
            Detector::AwsSecretKey => Some(
                r"(?i:aws)[A-Za-z0-9_\-. ]{0,24}(?i:secret)[A-Za-z0-9_\-. ]{0,24}[\x22' ]*[:=]",
            ),
            Detector::GenericApiKey => Some(
                r#"(?i:api[_\-]?key|apikey|secret|token|password|passwd|pwd|access[_\-]?key|client[_\-]?secret|auth)[A-Za-z0-9_\-]{0,16}["']?[ \t]*[:=]"#,
            ),
            _ => None,
        }
    }

    /// The sensitive value within a match of the pattern, as a byte range of `text`, or `None`
    /// when the candidate is not a finding. `m` is the match's range.
    pub(crate) fn confirm(self, text: &str, m: std::ops::Range<usize>) -> Option<(usize, usize)> {
        let candidate = text.get(m.clone())?;
        let before = |i: usize| text.get(..i).and_then(|s| s.chars().next_back());
        let after = |i: usize| text.get(i..).and_then(|s| s.chars().next());
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        match self {
            Detector::CreditCard => {
                if digit(before(m.start)) {
                    return None;
                }
                // The pattern is greedy, so a card can sit inside a longer run of groups: try
                // every prefix that ends at a group boundary, longest first.
                let separators = candidate
                    .char_indices()
                    .rev()
                    .filter(|&(_, c)| matches!(c, ' ' | '\t' | '.' | '-'))
                    .map(|(i, _)| i);
                std::iter::once(candidate.len())
                    .chain(separators)
                    .find(|&end| {
                        !digit(after(m.start + end)) && candidate.get(..end).is_some_and(card_valid)
                    })
                    .map(|end| (m.start, m.start + end))
            }
            Detector::UsSsn => {
                let mut d = [0u32; 9];
                let mut n = 0;
                for x in candidate.bytes().filter(u8::is_ascii_digit) {
                    if let Some(slot) = d.get_mut(n) {
                        *slot = u32::from(x - b'0');
                    }
                    n += 1;
                }
                if n < 9 {
                    return None;
                }
                let mut seps = candidate.chars().filter(|c| !c.is_ascii_digit());
                let consistent = seps.next() == seps.next();
                let area = d[0] * 100 + d[1] * 10 + d[2];
                let group = d[3] * 10 + d[4];
                let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
                let issued = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
                (consistent && issued).then_some((m.start, m.end))
            }
            Detector::Email => Some((m.start, m.end)),
            Detector::Phone => {
                if alnum(before(m.start)) || before(m.start) == Some('+') {
                    return None;
                }
                // Greedy groups can run into the next number: try every prefix that ends at a
                // group boundary, longest first.
                let valid = |p: &str| {
                    let digits = p.bytes().filter(u8::is_ascii_digit).count();
                    let ok = if p.starts_with('+') {
                        (8..=15).contains(&digits)
                    } else {
                        digits == 10
                    };
                    ok && p.matches('(').count() == p.matches(')').count()
                        && p.ends_with(|c: char| c.is_ascii_digit())
                };
                let separators = candidate
                    .char_indices()
                    .rev()
                    .filter(|&(_, c)| matches!(c, ' ' | '.' | '-'))
                    .map(|(i, _)| i);
                std::iter::once(candidate.len())
                    .chain(separators)
                    .find(|&end| {
                        // Not glued to what follows (a digit, a letter, an address's colon).
                        let next = after(m.start + end);
                        !alnum(next) && next != Some(':') && candidate.get(..end).is_some_and(valid)
                    })
                    .map(|end| (m.start, m.start + end))
            }
            Detector::Iban => iban_valid(candidate).then_some((m.start, m.end)),
            Detector::IpAddress => {
                let b = before(m.start);
                let a = after(m.end);
                // Part of a longer dotted or hex-and-colon token (versions, hashes, times): no.
                // A dot that ends a sentence is fine.
                let next_after_dot = text.get(m.end + 1..).and_then(|s| s.chars().next());
                let dotted_on =
                    a == Some('.') && next_after_dot.is_some_and(|c| c.is_ascii_alphanumeric());
                let dotted_before = b == Some('.')
                    && m.start > 0
                    && before(m.start - 1).is_some_and(|c| c.is_ascii_alphanumeric());
                // An IPv4 address may carry a port (`10.1.2.3:5432`); anything else glued on with
                // a colon is part of a longer token.
                let port = !candidate.contains(':')
                    && a == Some(':')
                    && text
                        .get(m.end + 1..)
                        .and_then(|s| s.chars().next())
                        .is_some_and(|c| c.is_ascii_digit());
                if b.is_some_and(|c| c.is_ascii_alphanumeric() || c == ':')
                    || a.is_some_and(|c| c.is_ascii_alphanumeric() || (c == ':' && !port))
                    || dotted_on
                    || dotted_before
                {
                    return None;
                }
                // "section 3.2.1.4", "version 1.2.3.4": numbering, not an address.
                let preceding = text.get(..m.start).unwrap_or_default().trim_end();
                let word = &preceding[preceding
                    .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .len()..];
                if [
                    "section", "version", "release", "chapter", "rfc", "step", "figure", "table",
                ]
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
                {
                    return None;
                }
                let ok = if candidate.contains(':') {
                    candidate.matches(':').count() >= 2
                        && candidate.parse::<Ipv6Addr>().is_ok()
                        && candidate.chars().any(|c| c.is_ascii_hexdigit())
                } else {
                    candidate.parse::<Ipv4Addr>().is_ok()
                };
                ok.then_some((m.start, m.end))
            }
            // Context-gated: the value is the trailing token, not the label before it.
            Detector::UsPassport => Some((m.end - 9, m.end)),
            Detector::AwsSecretKey => {
                let c = after(m.end);
                if c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '/' || c == '+') {
                    return None;
                }
                Some((m.end - 40, m.end))
            }
            Detector::GcpApiKey => {
                let c = after(m.end);
                (!c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .then_some((m.start, m.end))
            }
            Detector::Jwt => jwt_header_ok(candidate).then_some((m.start, m.end)),
            Detector::GenericApiKey => {
                // The label's own characters cannot contain ':' or '=', so the first of them
                // is the assignment; the value follows it, after spaces and a quote.
                let op = candidate.find([':', '='])?;
                let rest = candidate.get(op + 1..)?;
                let skip = rest.len() - rest.trim_start_matches([' ', '\t', '"', '\'']).len();
                let start = m.start + op + 1 + skip;
                let value = text.get(start..m.end)?;
                if !looks_random(value) {
                    return None;
                }
                // The pattern stops at 200 characters or at a character it does not expect; the
                // secret goes on to the end of the token.
                let tail = text.get(m.end..).unwrap_or_default();
                let more = tail
                    .find(|c: char| c.is_whitespace() || "\"',;)}]<>".contains(c))
                    .unwrap_or(tail.len());
                Some((start, m.end + more))
            }
            Detector::AwsAccessKey
            | Detector::GithubToken
            | Detector::SlackToken
            | Detector::SlackWebhook
            | Detector::StripeKey
            | Detector::PrivateKey => Some((m.start, m.end)),
        }
    }
}

/// Luhn over the digits of `s`, ignoring separators.
pub(crate) fn luhn_valid(s: &str) -> bool {
    let mut sum = 0u32;
    let mut count = 0usize;
    for (i, d) in s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        count += 1;
        sum += if i % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    count > 0 && sum.is_multiple_of(10)
}

/// A card number: a known brand's prefix and length, and Luhn.
fn card_valid(s: &str) -> bool {
    // No brand is longer than 19 digits: collect them once, on the stack.
    let mut digits = [0u8; 19];
    let mut n = 0;
    for d in s.bytes().filter(u8::is_ascii_digit) {
        let Some(slot) = digits.get_mut(n) else {
            return false;
        };
        *slot = d - b'0';
        n += 1;
    }
    let digits = digits.get(..n).unwrap_or_default();
    // The first `k` digits as a number: the brand's prefix.
    let p = |k: usize| {
        digits
            .get(..k)
            .map_or(0, |x| x.iter().fold(0u32, |a, &d| a * 10 + u32::from(d)))
    };
    let brand = match digits.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&p(2)) && n == 16,
        Some(2) => (2221..=2720).contains(&p(4)) && n == 16,
        Some(3) => {
            ((p(2) == 34 || p(2) == 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&p(3)) || p(2) == 36 || p(2) == 38 || p(2) == 39)
                    && (14..=19).contains(&n))
        }
        Some(6) => {
            (p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65) && (16..=19).contains(&n)
        }
        _ => false,
    };
    brand && luhn_valid(s)
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

fn iban_valid(s: &str) -> bool {
    // Gathered once without the spaces; no country's IBAN is longer than 34 characters, and
    // only ASCII capitals and digits can pass the checksum.
    let mut buf = [0u8; 34];
    let mut n = 0;
    let mut push = |c: char| {
        if c.is_whitespace() {
            return true;
        }
        let (Ok(b @ (b'0'..=b'9' | b'A'..=b'Z')), Some(slot)) = (u8::try_from(c), buf.get_mut(n))
        else {
            return false;
        };
        *slot = b;
        n += 1;
        true
    };
    // ASCII text (the usual case) is read byte by byte, without decoding characters.
    let all = if s.is_ascii() {
        s.bytes().all(|b| push(char::from(b)))
    } else {
        s.chars().all(push)
    };
    if !all {
        return false;
    }
    let compact = buf.get(..n).unwrap_or_default();
    let [c0, c1, ..] = *compact else {
        return false;
    };
    // The registry is sorted by country code.
    let code = |c: &str| {
        let b = c.as_bytes();
        [b.first().copied(), b.get(1).copied()]
    };
    let Ok(i) = IBAN_LENGTHS.binary_search_by_key(&[Some(c0), Some(c1)], |(c, _)| code(c)) else {
        return false;
    };
    if IBAN_LENGTHS.get(i).map(|&(_, len)| len) != Some(n) {
        return false;
    }
    let Some((head, tail)) = compact.split_at_checked(4) else {
        return false;
    };
    // Move the first four characters to the end, letters to numbers, mod 97 must be 1. The
    // remainder is taken only when the next step could overflow: one division per several
    // characters instead of one per character.
    let mut rem: u64 = 0;
    for &c in tail.iter().chain(head) {
        rem = if c >= b'A' {
            rem * 100 + u64::from(c - b'A') + 10
        } else {
            rem * 10 + u64::from(c - b'0')
        };
        if rem >= 1 << 56 {
            rem %= 97;
        }
    }
    rem % 97 == 1
}

/// A JWT's header is base64url JSON naming an algorithm.
fn jwt_header_ok(token: &str) -> bool {
    use base64::Engine as _;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('='))
    else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v.get("alg").is_some_and(serde_json::Value::is_string))
}

/// A value that looks generated: long enough, more than one kind of character, and spread out
/// (Shannon entropy of at least 3 bits per character). Words, paths and placeholders are not.
pub(crate) fn looks_random(v: &str) -> bool {
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ];
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[usize::from(b)] += 1;
    }
    random_enough(
        v.len(),
        classes.iter().filter(|x| **x).count(),
        counts.iter().copied(),
    )
}

/// [`looks_random`]'s decision from a value's length in bytes, how many of the three classes
/// (lower case, upper case, digits) it uses, and its byte counts in ascending byte order
/// (zeros are skipped, so counts of bytes the value cannot hold may be left out). The scanner
/// calls it with counts it keeps up to date as it slides along a value; one function for both
/// keeps the floating-point sum, and so the decision, the same to the last bit.
pub(crate) fn random_enough(len: usize, classes: usize, counts: impl Iterator<Item = u32>) -> bool {
    if len < 16 || classes < 2 {
        return false;
    }
    let n = len as f64;
    let entropy: f64 = counts
        .filter(|&c| c > 0)
        .map(|c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(card_valid("4111 1111 1111 1111"));
        assert!(card_valid("2223003122003222"));
        assert!(card_valid("378282246310005"));
        assert!(card_valid("6011111111111117"));
        assert!(card_valid("3530111333300000"));
        assert!(card_valid("30569309025904"));
        assert!(!card_valid("4111111111111112"));
        assert!(!card_valid("1234567812345670")); // Luhn-valid, no brand
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(!iban_valid("GB82WEST12345698765433"));
        assert!(jwt_header_ok(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIx.sig"
        ));
        assert!(looks_random("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(!looks_random("aaaaaaaaaaaaaaaaaaaa"));
        assert!(!looks_random("/usr/local/bin/thing"));
    }
}
#[cfg(test)]
mod compile_each {
    #[test]
    fn iban_registry_is_sorted_for_binary_search() {
        assert!(super::IBAN_LENGTHS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn assignment_labels_are_their_patterns_up_to_the_operator() {
        for d in super::Detector::ALL {
            if let Some(label) = d.assignment_label() {
                assert!(d.pattern().starts_with(label), "{d:?}");
                assert!(label.ends_with("[:=]"), "{d:?}");
                let value = &d.pattern()[label.len()..];
                assert!(!value.contains("[:=]"), "{d:?}");
            }
        }
    }

    #[test]
    fn each_pattern_compiles() {
        for d in super::Detector::ALL {
            if let Err(e) = regex_automata::meta::Regex::new(d.pattern()) {
                panic!("{d:?}: {e}");
            }
        }
    }
}
