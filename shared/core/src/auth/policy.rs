//! Role-based access control in Casbin's RBAC-with-domains model, evaluated here rather than by
//! the `casbin` crate, which forces `no_float`, `only_i32` and `unchecked` on every rhai in the
//! build and would break parser scripts.
//!
//! The model this evaluates, in Casbin's own syntax:
//!
//! ```text
//! [request_definition]
//! r = sub, dom, obj, act
//! [policy_definition]
//! p = sub, dom, obj, act
//! [role_definition]
//! g = _, _, _
//! [policy_effect]
//! e = some(where (p.eft == allow))
//! [matchers]
//! m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && actionMatch(r.act, p.act)
//! ```
//!
//! The domain is the tenant. Objects are API paths (`/v1/devices/*`, `/v1/devices/:uid`) or data
//! scopes (`department:*`, `department:{id}`). `actionMatch` accepts the action itself, `*`, or
//! alternatives as in Casbin's REST examples: `(GET)|(POST)`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use thiserror::Error;

/// A `p` line: `sub` may do `act` on `obj` in `dom`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Permission {
    pub sub: String,
    pub dom: String,
    pub obj: String,
    pub act: String,
}

/// A `g` line: `user` has `role` in `dom` (roles may have roles too).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grouping {
    pub user: String,
    pub role: String,
    pub dom: String,
}

/// A set of `p` and `g` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub permissions: Vec<Permission>,
    pub groupings: Vec<Grouping>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("policy line {line}: {reason}")]
pub struct PolicyError {
    pub line: usize,
    pub reason: String,
}

/// Most role hops followed from a user, as Casbin's role manager does (its default is 10).
const MAX_ROLE_DEPTH: usize = 10;

impl Policy {
    /// Reads Casbin's policy CSV: `p, sub, dom, obj, act` and `g, user, role, dom` lines; blank
    /// lines and `#` comments are skipped. Fields may be double-quoted.
    pub fn from_csv(text: &str) -> Result<Self, PolicyError> {
        Self::parse(text, None)
    }

    /// As [`Policy::from_csv`], refusing any line whose domain is not `dom` (a tenant's import).
    pub fn from_csv_for(text: &str, dom: &str) -> Result<Self, PolicyError> {
        Self::parse(text, Some(dom))
    }

    fn parse(text: &str, only_domain: Option<&str>) -> Result<Self, PolicyError> {
        let mut policy = Policy::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields = split_csv(trimmed).map_err(|reason| PolicyError { line, reason })?;
            let error = |reason: String| PolicyError { line, reason };
            if fields.iter().any(String::is_empty) {
                return Err(error("has an empty field".into()));
            }
            match fields.first().map(String::as_str) {
                Some("p") => {
                    let [_, sub, dom, obj, act] = <[String; 5]>::try_from(fields).map_err(|f| {
                        error(format!(
                            "a p line has 4 fields (sub, dom, obj, act), this one has {}",
                            f.len() - 1
                        ))
                    })?;
                    check_domain(&dom, only_domain).map_err(error)?;
                    policy.permissions.push(Permission { sub, dom, obj, act });
                }
                Some("g") => {
                    let [_, user, role, dom] = <[String; 4]>::try_from(fields).map_err(|f| {
                        error(format!(
                            "a g line has 3 fields (user, role, dom), this one has {}",
                            f.len() - 1
                        ))
                    })?;
                    check_domain(&dom, only_domain).map_err(error)?;
                    policy.groupings.push(Grouping { user, role, dom });
                }
                other => {
                    return Err(error(format!(
                        "starts with {:?}; lines start with p or g",
                        other.unwrap_or_default()
                    )));
                }
            }
        }
        policy.normalize();
        Ok(policy)
    }

    /// Writes the policy as Casbin's policy CSV, `p` lines first, sorted.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for fields in self.lines() {
            let quoted: Vec<String> = fields.iter().map(|f| quote_csv(f)).collect();
            out.push_str(&quoted.join(", "));
            out.push('\n');
        }
        out
    }

    fn lines(&self) -> impl Iterator<Item = Vec<&str>> {
        let p = self.permissions.iter().map(|p| {
            vec![
                "p",
                p.sub.as_str(),
                p.dom.as_str(),
                p.obj.as_str(),
                p.act.as_str(),
            ]
        });
        let g = self
            .groupings
            .iter()
            .map(|g| vec!["g", g.user.as_str(), g.role.as_str(), g.dom.as_str()]);
        p.chain(g)
    }

    /// Sorts and removes duplicate lines, so equal policies compare and export equally.
    pub fn normalize(&mut self) {
        self.permissions.sort();
        self.permissions.dedup();
        self.groupings.sort();
        self.groupings.dedup();
    }

    /// Every role `sub` has in `dom`, transitively.
    pub fn roles_of(&self, sub: &str, dom: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut frontier = VecDeque::from([(sub.to_owned(), 0)]);
        while let Some((name, depth)) = frontier.pop_front() {
            if depth >= MAX_ROLE_DEPTH {
                continue;
            }
            for g in self
                .groupings
                .iter()
                .filter(|g| g.user == name && g.dom == dom)
            {
                if seen.insert(g.role.clone()) {
                    frontier.push_back((g.role.clone(), depth + 1));
                }
            }
        }
        seen
    }

    /// The permissions that apply to `sub` in `dom`, through any of its roles.
    pub fn permissions_of<'a>(
        &'a self,
        sub: &str,
        dom: &'a str,
    ) -> impl Iterator<Item = &'a Permission> + 'a {
        let mut subjects = self.roles_of(sub, dom);
        subjects.insert(sub.to_owned());
        self.permissions
            .iter()
            .filter(move |p| p.dom == dom && subjects.contains(&p.sub))
    }

    /// The permissions a user has in `dom`: through their roles only. A `p` line naming the
    /// user's own id gives them nothing, so a login that happens to be a role's name (the first
    /// administrator `admin`, say) holds only the roles it is given.
    pub fn user_permissions<'a>(
        &'a self,
        user: &str,
        dom: &'a str,
    ) -> impl Iterator<Item = &'a Permission> + 'a {
        let roles = self.roles_of(user, dom);
        self.permissions
            .iter()
            .filter(move |p| p.dom == dom && roles.contains(&p.sub))
    }

    /// Whether a user may do `act` on `obj` in `dom`, through their roles.
    pub fn user_may(&self, user: &str, dom: &str, obj: &str, act: &str) -> bool {
        self.user_permissions(user, dom)
            .any(|p| key_match2(obj, &p.obj) && action_match(act, &p.act))
    }

    /// Casbin's `Enforce(sub, dom, obj, act)` under the model above.
    pub fn enforce(&self, sub: &str, dom: &str, obj: &str, act: &str) -> bool {
        self.permissions_of(sub, dom)
            .any(|p| key_match2(obj, &p.obj) && action_match(act, &p.act))
    }

    /// Keeps only the lines of one domain: what a tenant may see and import.
    pub fn for_domain(&self, dom: &str) -> Policy {
        Policy {
            permissions: self
                .permissions
                .iter()
                .filter(|p| p.dom == dom)
                .cloned()
                .collect(),
            groupings: self
                .groupings
                .iter()
                .filter(|g| g.dom == dom)
                .cloned()
                .collect(),
        }
    }
}

fn check_domain(dom: &str, only: Option<&str>) -> Result<(), String> {
    match only {
        Some(only) if dom != only => Err(format!("its domain must be your tenant {only:?}")),
        _ => Ok(()),
    }
}

/// Casbin's `keyMatch2`: `*` matches anything (slashes included), `:name` or `{name}` one path
/// segment; the whole key must match.
pub fn key_match2(key: &str, pattern: &str) -> bool {
    // The key positions the pattern read so far can end at, advanced one pattern token at a
    // time: O(pattern x key) whatever the pattern, where backtracking on `*` is exponential.
    let key = key.as_bytes();
    let pattern = pattern.as_bytes();
    let mut at = vec![false; key.len() + 1];
    at[0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let mut next = vec![false; key.len() + 1];
        match pattern[p] {
            b'*' => {
                if let Some(first) = at.iter().position(|&r| r) {
                    next[first..].fill(true);
                }
                p += 1;
            }
            c @ (b':' | b'{') => {
                // A parameter: one non-empty segment of the key.
                let closing = c == b'{';
                let name_end = pattern[p..]
                    .iter()
                    .position(|&b| if closing { b == b'}' } else { b == b'/' })
                    .map_or(pattern.len(), |i| if closing { p + i + 1 } else { p + i });
                for i in (0..=key.len()).filter(|&i| at[i]) {
                    let end = key[i..]
                        .iter()
                        .position(|&b| b == b'/')
                        .map_or(key.len(), |n| i + n);
                    if end > i {
                        next[end] = true;
                    }
                }
                p = name_end;
            }
            c => {
                for i in (0..key.len()).filter(|&i| at[i] && key[i] == c) {
                    next[i + 1] = true;
                }
                p += 1;
            }
        }
        at = next;
        if !at.contains(&true) {
            return false;
        }
    }
    at[key.len()]
}

/// `*`, the action itself, or alternatives `(GET)|(POST)` / `GET|POST`.
pub fn action_match(act: &str, pattern: &str) -> bool {
    pattern == "*"
        || pattern
            .split('|')
            .map(|alt| alt.trim().trim_start_matches('(').trim_end_matches(')'))
            .any(|alt| alt == act || alt == "*")
}

fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("has an unclosed quote".into()),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            if !matches!(chars.peek(), None | Some(',')) {
                return Err("has text after a closing quote".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field = field.trim_end().to_owned();
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => return Ok(fields),
        }
    }
}

fn quote_csv(field: &str) -> String {
    if field.contains([',', '"']) || field.starts_with(' ') || field.ends_with(' ') {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Casbin's `examples/rbac_with_domains_policy.csv`.
    const CASBIN_DOMAINS: &str = "\
p, admin, domain1, data1, read
p, admin, domain1, data1, write
p, admin, domain2, data2, read
p, admin, domain2, data2, write
g, alice, admin, domain1
g, bob, admin, domain2
";

    #[test]
    fn casbin_rbac_with_domains_example_decides_as_casbin_does() -> Result<(), PolicyError> {
        let e = Policy::from_csv(CASBIN_DOMAINS)?;
        // The expectations of Casbin's TestRBACModelWithDomains.
        let cases = [
            ("alice", "domain1", "data1", "read", true),
            ("alice", "domain1", "data1", "write", true),
            ("alice", "domain1", "data2", "read", false),
            ("alice", "domain1", "data2", "write", false),
            ("bob", "domain2", "data1", "read", false),
            ("bob", "domain2", "data1", "write", false),
            ("bob", "domain2", "data2", "read", true),
            ("bob", "domain2", "data2", "write", true),
        ];
        for (sub, dom, obj, act, expected) in cases {
            assert_eq!(
                e.enforce(sub, dom, obj, act),
                expected,
                "{sub} {dom} {obj} {act}"
            );
        }
        // A role held in one domain grants nothing in another.
        assert!(!e.enforce("alice", "domain2", "data2", "read"));
        Ok(())
    }

    #[test]
    fn roles_are_transitive_within_a_domain_only() -> Result<(), PolicyError> {
        let e = Policy::from_csv(
            "p, reader, t1, /v1/*, GET\n\
             g, operator, reader, t1\n\
             g, carol, operator, t1\n\
             g, carol, operator, t2\n",
        )?;
        assert!(e.enforce("carol", "t1", "/v1/devices", "GET"));
        assert!(!e.enforce("carol", "t2", "/v1/devices", "GET"));
        assert_eq!(
            e.roles_of("carol", "t1"),
            BTreeSet::from(["operator".into(), "reader".into()])
        );
        Ok(())
    }

    #[test]
    fn role_cycles_end() -> Result<(), PolicyError> {
        let e = Policy::from_csv("g, a, b, t\ng, b, a, t\n")?;
        assert!(!e.enforce("a", "t", "x", "GET"));
        Ok(())
    }

    #[test]
    fn key_match2_follows_casbin() {
        // Casbin's TestKeyMatch2 cases.
        let cases = [
            ("/foo", "/foo", true),
            ("/foo", "/foo*", true),
            ("/foo", "/foo/*", false),
            ("/foo/bar", "/foo", false),
            ("/foo/bar", "/foo*", true),
            ("/foo/bar", "/foo/*", true),
            ("/foobar", "/foo", false),
            ("/foobar", "/foo*", true),
            ("/foobar", "/foo/*", false),
            ("/", "/:resource", false),
            ("/resource1", "/:resource", true),
            ("/myid", "/:id/using/:resId", false),
            ("/myid/using/myresid", "/:id/using/:resId", true),
            ("/proxy/myid", "/proxy/:id/*", false),
            ("/proxy/myid/", "/proxy/:id/*", true),
            ("/proxy/myid/res", "/proxy/:id/*", true),
            ("/proxy/myid/res/res2", "/proxy/:id/*", true),
            ("/proxy/", "/proxy/:id", false),
            ("/proxy/", "/proxy/:id/", false),
            ("/proxy/myid/res", "/proxy/{id}/*", true),
        ];
        for (key, pattern, expected) in cases {
            assert_eq!(key_match2(key, pattern), expected, "{key} ~ {pattern}");
        }
    }

    #[test]
    fn many_stars_match_in_polynomial_time() {
        // With backtracking this pattern takes about 2^40 steps against a key it cannot match.
        let pattern = format!("/{}x", "*".repeat(40));
        let key = format!("/{}", "a".repeat(200));
        assert!(!key_match2(&key, &pattern));
        assert!(key_match2(&format!("{key}x"), &pattern));
    }

    #[test]
    fn actions_match_exactly_by_wildcard_or_by_alternatives() {
        assert!(action_match("GET", "GET"));
        assert!(!action_match("POST", "GET"));
        assert!(action_match("DELETE", "*"));
        assert!(action_match("POST", "(GET)|(POST)"));
        assert!(!action_match("PUT", "(GET)|(POST)"));
    }

    #[test]
    fn csv_round_trips_quotes_and_reports_bad_lines() -> Result<(), PolicyError> {
        let text = "# roles\np, admin, t, \"/v1/a,b\", *\n\ng, alice, admin, t\n";
        let policy = Policy::from_csv(text)?;
        assert_eq!(policy.permissions[0].obj, "/v1/a,b");
        assert_eq!(Policy::from_csv(&policy.to_csv())?, policy);

        let err = Policy::from_csv("p, admin, t, /v1/*\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.reason.contains("4 fields"), "{err}");
        let err = Policy::from_csv("p, a, t, o, GET\nx, y\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(Policy::from_csv("p, a, t, \"o, GET\n").is_err());
        assert!(Policy::from_csv("g, a, , t\n").is_err());
        Ok(())
    }

    #[test]
    fn a_domain_sees_only_its_own_lines() -> Result<(), PolicyError> {
        let e = Policy::from_csv(CASBIN_DOMAINS)?;
        let d1 = e.for_domain("domain1");
        assert_eq!(d1.permissions.len(), 2);
        assert_eq!(d1.groupings.len(), 1);
        assert!(d1.to_csv().lines().all(|l| l.contains("domain1")));
        Ok(())
    }

    #[test]
    fn a_user_holds_only_the_roles_given_not_a_role_of_the_same_name() {
        let policy = Policy::from_csv(
            "p, admin, t, /v1/*, *\np, viewer, t, /v1/devices*, GET\ng, admin, viewer, t\n",
        )
        .expect("valid policy");
        // The login `admin` has the role `viewer` only: the `p, admin` lines are the role's.
        assert!(policy.user_may("admin", "t", "/v1/devices", "GET"));
        assert!(!policy.user_may("admin", "t", "/v1/users", "POST"));
        assert!(
            policy.enforce("admin", "t", "/v1/users", "POST"),
            "Casbin's own reading"
        );
    }
}
