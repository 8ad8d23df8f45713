//! What a caller may hand out: nobody grants a right they do not hold, or acts on a user who
//! holds one they do not (setting their roles, password or second factor).

use super::policy::{Permission, Policy, action_match, key_match2};
use super::principal::{Principal, data_scope};

/// The methods a `*` action stands for when a data scope is compared.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The first permission of role `role` under `policy` that `caller` does not hold, if any.
pub fn first_uncovered<'a>(
    caller: &'a Principal,
    policy: &'a Policy,
    role: &str,
) -> Option<&'a Permission> {
    policy
        .permissions_of(role, &caller.tenant)
        .find(|p| !holds(caller, p))
}

/// The first permission user `user` has under `policy` that `caller` does not hold, if any.
pub fn first_uncovered_by_user<'a>(
    caller: &'a Principal,
    policy: &'a Policy,
    user: &str,
) -> Option<&'a Permission> {
    policy
        .user_permissions(user, &caller.tenant)
        .find(|p| !holds(caller, p))
}

/// Whether the caller holds `wanted`: some permission of theirs covers its object and every
/// action it names, or (for a department) their data scope covers that department for them.
pub fn holds(caller: &Principal, wanted: &Permission) -> bool {
    let own: Vec<&Permission> = caller
        .policy
        .user_permissions(&caller.user, &caller.tenant)
        .collect();
    let actions = actions_of(&wanted.act);
    let by_pattern = actions.iter().all(|act| {
        own.iter()
            .any(|p| object_covers(&p.obj, &wanted.obj) && action_covers(&p.act, act))
    });
    by_pattern
        || wanted.obj.strip_prefix("department:").is_some_and(|id| {
            id != "*"
                && actions.iter().all(|act| {
                    let methods: &[&str] = if *act == "*" { &METHODS } else { &[*act] };
                    methods.iter().all(|m| {
                        data_scope(
                            &caller.policy,
                            &caller.tenant,
                            &caller.user,
                            caller.department.as_deref(),
                            &caller.departments,
                            m,
                        )
                        .allows(id)
                    })
                })
        })
}

/// The alternatives of an action pattern: `(GET)|(POST)` is `GET` and `POST`.
fn actions_of(act: &str) -> Vec<&str> {
    act.split('|')
        .map(|alt| alt.trim().trim_start_matches('(').trim_end_matches(')'))
        .collect()
}

/// Whether holding action pattern `own` includes `act` (`*` only by `*`).
fn action_covers(own: &str, act: &str) -> bool {
    if act == "*" {
        actions_of(own).contains(&"*")
    } else {
        action_match(act, own)
    }
}

/// Whether everything object pattern `wanted` matches is matched by `own`. Departments are
/// compared by id (`department:*` covers them all). A path pattern is matched as a path with
/// its wildcards made into stand-ins only an equal or wider wildcard of `own` matches: a `*`
/// (any run, across segments) becomes two segments, a parameter one segment no literal
/// matches.
pub fn object_covers(own: &str, wanted: &str) -> bool {
    match (
        own.strip_prefix("department:"),
        wanted.strip_prefix("department:"),
    ) {
        (Some(own), Some(wanted)) => own == "*" || own == wanted,
        (None, Some(_)) => own == "*",
        (Some(_), None) => false,
        (None, None) => path_covers(own, wanted),
    }
}

fn path_covers(own: &str, wanted: &str) -> bool {
    const ANY: &str = "\u{1}";
    let mut path = String::with_capacity(wanted.len() + 8);
    let mut chars = wanted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                path.push_str(ANY);
                path.push('/');
                path.push_str(ANY);
            }
            ':' => {
                while chars.peek().is_some_and(|&n| n != '/') {
                    chars.next();
                }
                path.push_str(ANY);
            }
            '{' => {
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                }
                path.push_str(ANY);
            }
            c => path.push(c),
        }
    }
    key_match2(&path, own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wider_pattern_covers_a_narrower_one_and_not_the_reverse() {
        for (own, wanted) in [
            ("/v1/*", "/v1/devices*"),
            ("/v1/devices*", "/v1/devices*"),
            ("/v1/devices/*", "/v1/devices/:uid"),
            ("/v1/devices/:id", "/v1/devices/{uid}"),
            ("/v1/devices/:id", "/v1/devices/d1"),
            ("department:*", "department:south"),
        ] {
            assert!(object_covers(own, wanted), "{own} covers {wanted}");
        }
        for (own, wanted) in [
            ("/v1/devices*", "/v1/*"),
            ("/v1/devices/*", "/v1/devices*"),
            ("/v1/:x", "/v1/*"),
            ("/v1/devices/d1", "/v1/devices/:uid"),
            ("department:south", "department:*"),
            ("department:south", "department:north"),
            ("/v1/*", "department:south"),
        ] {
            assert!(!object_covers(own, wanted), "{own} does not cover {wanted}");
        }
    }

    #[test]
    fn only_a_star_action_covers_a_star() {
        assert!(action_covers("*", "*"));
        assert!(action_covers("(GET)|(POST)", "GET"));
        assert!(!action_covers("(GET)|(POST)", "*"));
        assert!(!action_covers("GET", "PUT"));
        assert_eq!(actions_of("(GET)|(POST)"), ["GET", "POST"]);
    }
}
