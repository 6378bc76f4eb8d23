//! The C# API allowlist (`csharp-allowlist.txt`): what uploaded reducers and projections may use. The compiler (C#,
//! `dotnet-host/src/Hapnd.Compiler/Allowlist.cs`) applies it in both gates; this crate ships the text, its hash (which
//! every artifact records) and a check of its shape: rules only in groups that say why, known verbs, one symbol each.

use sha2::{Digest, Sha256};

/// The allowlist's text, as sent to the compiler.
pub const ALLOWLIST: &str = include_str!("../csharp-allowlist.txt");

const VERBS: [&str; 6] = ["namespace", "type", "member", "deny", "emitted", "internal"];

/// The SHA-256 of [`ALLOWLIST`], lowercase hex: the `policyHash` of every artifact compiled under it.
pub fn allowlist_hash() -> String {
    Sha256::digest(ALLOWLIST.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("allowlist line {line}: {problem}")]
pub struct AllowlistError {
    pub line: usize,
    pub problem: String,
}

/// Counts of an allowlist's rules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllowlistSummary {
    pub groups: usize,
    pub rules: usize,
    pub denials: usize,
    pub hints: usize,
}

/// Checks the allowlist's shape (the compiler parses the same rules).
pub fn check_allowlist(text: &str) -> Result<AllowlistSummary, AllowlistError> {
    let mut summary = AllowlistSummary::default();
    let mut group_says_why = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let fail = |problem: &str| AllowlistError {
            line: index + 1,
            problem: format!("{problem}: {line}"),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (verb, rest) = line.split_once(' ').map_or((line, ""), |(v, r)| (v, r.trim()));
        match verb {
            "group" if !rest.is_empty() => {
                summary.groups += 1;
                group_says_why = Some(false);
            }
            "why" if group_says_why.is_some() && !rest.is_empty() => group_says_why = Some(true),
            "hint" if rest.contains(" : ") => summary.hints += 1,
            _ if VERBS.contains(&verb) => {
                if group_says_why != Some(true) {
                    return Err(fail("every rule belongs to a group that says why"));
                }
                let symbol = if verb == "deny" {
                    let (symbol, instead) = rest
                        .split_once(" : ")
                        .ok_or_else(|| fail("`deny` needs `SYMBOL : INSTEAD`"))?;
                    if instead.trim().is_empty() {
                        return Err(fail("a denial says what to do instead"));
                    }
                    summary.denials += 1;
                    symbol.trim()
                } else {
                    rest
                };
                if symbol.is_empty() || symbol.contains(' ') {
                    return Err(fail("a rule names exactly one symbol"));
                }
                summary.rules += 1;
            }
            _ => return Err(fail("not a rule")),
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_allowlist_is_well_formed_and_justified() {
        let summary = check_allowlist(ALLOWLIST).expect("the allowlist parses");
        assert!(
            summary.groups >= 10 && summary.rules > 200 && summary.denials > 20,
            "{summary:?}"
        );
        assert_eq!(allowlist_hash().len(), 64);
    }

    #[test]
    fn rules_outside_a_justified_group_or_unknown_verbs_are_refused() {
        assert_eq!(check_allowlist("type System.String").map_err(|e| e.line), Err(1));
        assert!(check_allowlist("group g\ntype System.String").is_err(), "no why");
        assert!(check_allowlist("group g\nwhy pure\nallow System.IO.File").is_err());
        assert!(
            check_allowlist("group g\nwhy pure\ndeny System.Random").is_err(),
            "no instead"
        );
        assert_eq!(
            check_allowlist("group g\nwhy pure\ntype System.String\ndeny System.Random : use the event"),
            Ok(AllowlistSummary {
                groups: 1,
                rules: 2,
                denials: 1,
                hints: 0
            })
        );
    }

    #[test]
    fn every_denied_api_of_the_issue_is_denied_or_left_out() {
        // Non-determinism and reflection that sit on otherwise allowed types must be denied explicitly.
        for denied in [
            "deny System.DateTime.Now ",
            "deny System.DateTime.UtcNow ",
            "deny System.DateTimeOffset.UtcNow ",
            "deny System.Guid.NewGuid ",
            "deny System.Object.GetType ",
            "deny *.GetHashCode ",
            "deny *.BeginInvoke ",
        ] {
            assert!(ALLOWLIST.contains(denied), "{denied}");
        }
        // Whole families stay off the list: no allow rule names them or anything under them.
        let allowed: Vec<&str> = ALLOWLIST
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                ["type ", "namespace ", "member "]
                    .iter()
                    .find_map(|verb| line.strip_prefix(verb))
            })
            .collect();
        for absent in [
            "System.IO",
            "System.Net",
            "System.Reflection",
            "System.Threading",
            "System.Diagnostics.Process",
            "System.Diagnostics.Stopwatch",
            "System.Environment",
            "System.Console",
            "System.Random",
            "System.GC",
            "System.Activator",
            "System.Type",
            "System.Linq.Expressions",
            "System.Text.RegularExpressions",
            "System.Runtime.InteropServices",
            "System.Runtime.CompilerServices.Unsafe",
        ] {
            let under = |symbol: &&str| {
                *symbol == absent
                    || symbol.starts_with(&format!("{absent}."))
                    || symbol.starts_with(&format!("{absent}+"))
            };
            assert!(!allowed.iter().any(under), "{absent} must not be allowed");
        }
    }
}
