//! Built-in rule sets for string arguments that end up in a query, a shell or a command line.
//!
//! Every set is opt-in per argument (`reject = ["sql_injection"]` in the policy): a rule that
//! refuses `;` has no business on a free-text field. Patterns are compiled once per process and
//! matched against the NFKC form of the value with invisible characters removed.

use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// A built-in family of dangerous values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RuleSet {
    /// SQL injection: tautologies after a quote (`' OR '1'='1`), a quote closed into a comment
    /// or a new statement (`admin'--`), `UNION SELECT`, stacked statements (`; DROP TABLE`),
    /// inline comments (`UN/**/ION`), time and file functions (`SLEEP(`, `WAITFOR DELAY`,
    /// `xp_cmdshell`, `INTO OUTFILE`), and catalogue probes (`information_schema`). A lone
    /// apostrophe (`O'Brien`) is not one.
    SqlInjection,
    /// Characters a shell gives meaning to: `; & | $ \` < > ( ) { } \ ! ' "`, newlines; for
    /// values interpolated into a command line.
    ShellMetacharacters,
    /// A value that starts with `-`: it would be read as an option by git, ssh, curl, tar and
    /// most other programs (`--upload-pack=...`, `-oProxyCommand=...`).
    ArgumentInjection,
}

impl RuleSet {
    /// Parses the policy spelling (`"sql_injection"`, `"shell_metacharacters"`,
    /// `"argument_injection"`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sql_injection" => RuleSet::SqlInjection,
            "shell_metacharacters" => RuleSet::ShellMetacharacters,
            "argument_injection" => RuleSet::ArgumentInjection,
            _ => return None,
        })
    }

    /// What a match means, for the error message.
    pub fn describe(self) -> &'static str {
        match self {
            RuleSet::SqlInjection => "looks like sql injection",
            RuleSet::ShellMetacharacters => "contains shell metacharacters",
            RuleSet::ArgumentInjection => "starts with `-` (would be read as an option)",
        }
    }

    /// Whether `value` (already in its matching form) falls in this set.
    pub fn matches(self, value: &str) -> bool {
        match self {
            RuleSet::SqlInjection => SQL.is_match(value),
            RuleSet::ShellMetacharacters => value.contains(SHELL_CHARS),
            RuleSet::ArgumentInjection => value.trim_start().starts_with('-'),
        }
    }
}

const SHELL_CHARS: &[char] = &[
    ';', '&', '|', '`', '$', '<', '>', '(', ')', '{', '}', '\\', '!', '\'', '"', '\n', '\r',
];

// Built from literals known to compile; an empty set (matching nothing) is the fallback that
// can never be reached, so no request path can panic on it.
static SQL: LazyLock<RegexSet> = LazyLock::new(|| {
    // ASCII word boundaries: a Unicode `\b` keeps the set off the lazy DFA (about 20 times
    // slower), and values are matched in their NFKC form, where the keywords are ASCII.
    RegexSet::new(SQL_PATTERNS.iter().map(|p| p.replace(r"\b", r"(?-u:\b)")))
        .unwrap_or_else(|_| RegexSet::empty())
});

const SQL_PATTERNS: &[&str] = &[
    // A quote, then a boolean operator and the start of an operand: ' OR '1'='1, ' or 1=1,
    // ') OR ('a'='a, " or ""=".
    r#"(?i)['"`]\s*\)*\s*(?:or|and|xor|\|\||&&)\s*\(*\s*(?:['"`\d(]|true\b|false\b|not\b|null\b|[a-z_]+\s*(?:=|like\b|is\b))"#,
    // A quote closed straight into a comment or a new statement: admin'--, admin'#, 1';
    r#"(?i)['"`]\s*\)*\s*(?:--|#|/\*|;)"#,
    // Column probing after a quote: 1' ORDER BY 1--, ' GROUP BY x
    r#"(?i)['"`]\s*\)*\s*(?:order|group)\s+by\b"#,
    // Numeric tautologies: 1 OR 1=1, x' AND 2>1
    r"(?i)\b(?:or|and)\s+(\d+)\s*(?:=|<>|!=|>|<|like)\s*\d+",
    r"(?i)\b(?:or|and)\s+(?:true|false)\b\s*(?:--|#|;|$)",
    // UNION [ALL|DISTINCT] SELECT, with whitespace or comments between.
    r"(?i)\bunion\b(?:\s|/\*.*?\*/|\(|\+)+(?:all\b|distinct\b)?(?:\s|/\*.*?\*/|\(|\+)*select\b",
    // Stacked statements.
    r"(?i);\s*(?:drop|truncate|alter|create)\s+(?:table|database|schema|user|index|view|function|procedure)\b",
    r"(?i);\s*(?:insert\s+into|delete\s+from|update\s+\S+\s+set|select\s.+\sfrom|exec(?:ute)?\s|declare\s+@|shutdown\b|grant\s|revoke\s)",
    // Inline comments used to split keywords.
    r"/\*.*?\*/",
    // Time, file and command functions.
    r"(?i)\b(?:sleep|benchmark|pg_sleep|load_file|extractvalue|updatexml|sys_eval|sys_exec|make_set|elt)\s*\(",
    r"(?i)\bwaitfor\s+(?:delay|time)\b",
    r"(?i)\b(?:xp_cmdshell|sp_executesql|sp_oacreate|dbms_pipe\.receive_message|utl_http\.request|utl_inaddr\.get_host_address)\b",
    r"(?i)\binto\s+(?:out|dump)file\b",
    // Catalogue probes and banner grabs.
    r"(?i)\b(?:information_schema|pg_catalog|sqlite_master|sysobjects|mysql\.user)\b",
    r"(?i)@@(?:version|hostname|datadir)\b",
    // String building to dodge keyword filters: CHAR(83)+CHAR(69), 0x53454c454354
    r"(?i)\b(?:char|chr|nchar)\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,)",
];

/// Whether `pattern` compiles, for the policy loader.
pub(crate) fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(pattern)
}

/// `s` with `& < > " '` as HTML entities, for values a handler puts into HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_sql_patterns_compile() {
        for p in SQL_PATTERNS {
            assert!(Regex::new(&p.replace(r"\b", r"(?-u:\b)")).is_ok(), "{p}");
        }
        assert_eq!(SQL.len(), SQL_PATTERNS.len());
    }

    #[test]
    fn sql() {
        let s = RuleSet::SqlInjection;
        for bad in [
            "' OR '1'='1",
            "' or 1=1--",
            "admin'--",
            "admin' #",
            "1' OR 'a'='a",
            "') OR ('a'='a",
            "\" or \"\"=\"",
            "1 OR 1=1",
            "1 UNION SELECT username, password FROM users",
            "1 UN/**/ION SEL/**/ECT 1",
            "x'; DROP TABLE users; --",
            "1; exec xp_cmdshell 'dir'",
            "1 AND SLEEP(5)",
            "1'; WAITFOR DELAY '0:0:5'--",
            "' UNION ALL SELECT NULL,NULL--",
            "1 and extractvalue(1,concat(0x7e,version()))",
            "' or username like '%",
            "SELECT * FROM information_schema.tables",
            "' ＯＲ '1'='1",
        ] {
            let form = crate::validate::unicode::matching_form(bad);
            assert!(s.matches(&form), "{bad}");
        }
        for ok in [
            "O'Brien",
            "Rock 'n' roll",
            "it's 5 o'clock; see you",
            "select the best option",
            "drop me a note; delete later",
            "Union Station, Washington",
            "orders and returns",
            "width 10 or 20 cm",
            "d'Artagnan",
        ] {
            assert!(!s.matches(ok), "{ok}");
        }
    }

    #[test]
    fn shell_and_options() {
        assert!(RuleSet::ShellMetacharacters.matches("a; rm -rf /"));
        assert!(RuleSet::ShellMetacharacters.matches("$(id)"));
        assert!(!RuleSet::ShellMetacharacters.matches("report-2024_final.txt"));
        assert!(RuleSet::ArgumentInjection.matches("--upload-pack=touch /tmp/x"));
        assert!(RuleSet::ArgumentInjection.matches(" -oProxyCommand=x"));
        assert!(!RuleSet::ArgumentInjection.matches("main"));
        assert!(!RuleSet::ArgumentInjection.matches("feature-x"));
        assert_eq!(
            escape_html("<a href='x'>&</a>"),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&lt;/a&gt;"
        );
    }
}
