//! The authentication service as a whole: sign-in, second factor, sessions, data scope.

use super::*;
use crate::auth::mfa::TotpEnrollment;
use crate::auth::{DataScope, DepartmentTree, Policy, data_scope};
use crate::model::Department;
use crate::ports::ManualClock;
use crate::ports::memory::MemoryMetaStore;
use crate::ports::{Condition, Item, Key, MetaStore, Page, Query, Write};
use crate::time::SECOND;
use std::collections::BTreeSet;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const START: Millis = 1_800_000_000_000;

/// Logs `admin` of `acme` in with a password, expecting no second factor.
async fn login(auth: &AuthService, password: &str) -> Result<Tokens, Box<dyn std::error::Error>> {
    Ok(auth
        .login("acme", "admin", password, None, None)
        .await?
        .tokens()
        .ok_or("a second factor was asked")?)
}

fn service() -> (AuthService, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(MemoryMetaStore::with_clock(clock.clone()));
    (service_on(store, clock.clone()), clock)
}

fn service_on(store: Arc<dyn MetaStore>, clock: Arc<ManualClock>) -> AuthService {
    let keys = TokenKeys::from_secret(&[9u8; 32]).expect("a 32-byte key");
    AuthService::new(Catalog::new(store), clock, keys, AuthSettings::default())
}

#[tokio::test]
async fn bootstrap_makes_an_admin_who_can_log_in_once_only() -> TestResult {
    let (auth, _) = service();
    assert!(
        auth.bootstrap_tenant("acme", "admin", "first password!")
            .await?
    );
    assert!(
        !auth
            .bootstrap_tenant("acme", "admin", "another password")
            .await?
    );
    let tokens = login(&auth, "first password!").await?;
    let me = auth.authenticate(&tokens.access_token).await?;
    assert_eq!((me.tenant.as_str(), me.user.as_str()), ("acme", "admin"));
    assert!(me.can("/v1/users", "POST"));
    assert_eq!(me.scope, DataScope::All);
    assert_eq!(me.roles(), BTreeSet::from(["admin".to_owned()]));
    Ok(())
}

/// A store whose reads each take one turn of the executor, counting how many are under way
/// at once: reads asked one after another never overlap.
struct OverlapCountingStore {
    inner: MemoryMetaStore,
    in_flight: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

impl OverlapCountingStore {
    async fn read<T>(&self, read: impl Future<Output = T>) -> T {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_at_once.fetch_max(now, SeqCst);
        let mut waited = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut waited, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        self.in_flight.fetch_sub(1, SeqCst);
        read.await
    }
}

#[async_trait::async_trait]
impl MetaStore for OverlapCountingStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.read(self.inner.get(key)).await
    }
    async fn put(&self, item: Item, condition: Condition) -> Result<(), StoreError> {
        self.inner.put(item, condition).await
    }
    async fn delete(&self, key: &Key, condition: Condition) -> Result<(), StoreError> {
        self.inner.delete(key, condition).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.read(self.inner.query(query)).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.transact(writes).await
    }
}

#[tokio::test]
async fn a_request_reads_its_session_user_and_policy_at_once() -> TestResult {
    use std::sync::atomic::Ordering::SeqCst;
    let clock = Arc::new(ManualClock::new(START));
    let store = Arc::new(OverlapCountingStore {
        inner: MemoryMetaStore::with_clock(clock.clone()),
        in_flight: 0.into(),
        most_at_once: 0.into(),
    });
    let auth = service_on(store.clone(), clock);
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    let tokens = login(&auth, "first password!").await?;
    store.most_at_once.store(0, SeqCst);
    let me = auth.authenticate(&tokens.access_token).await?;
    assert_eq!(me.user, "admin");
    // Session, user, policy, departments, the tenant's settings and its record, in one
    // round trip.
    assert_eq!(store.most_at_once.load(SeqCst), 6);
    Ok(())
}

#[tokio::test]
async fn password_re_checks_count_failures_as_logins_do() -> TestResult {
    let (auth, _clock) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    assert!(
        auth.check_password("acme", "admin", "first password!", None)
            .await?
    );
    for _ in 0..4 {
        assert!(!auth.check_password("acme", "admin", "guess", None).await?);
    }
    let e = auth
        .check_password("acme", "admin", "guess", None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Locked(_)), "{e}");
    // The lock holds for the right password and for sign-in alike.
    let e = auth
        .check_password("acme", "admin", "first password!", None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Locked(_)), "{e}");
    let e = auth
        .login("acme", "admin", "first password!", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Locked(_)), "{e}");
    Ok(())
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_a_while() -> TestResult {
    let (auth, clock) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    for _ in 0..4 {
        let e = auth
            .login("acme", "admin", "wrong", None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, AuthError::InvalidCredentials), "{e}");
    }
    let e = auth
        .login("acme", "admin", "wrong", None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, AuthError::Locked(t) if t == START + 15 * MINUTE),
        "{e}"
    );
    // Even the right password waits out the lock.
    let e = auth
        .login("acme", "admin", "first password!", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Locked(_)), "{e}");
    clock.advance(15 * MINUTE);
    login(&auth, "first password!").await?;
    // An unknown user gets the very same answer as a wrong password.
    let e = auth
        .login("acme", "nobody", "x", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidCredentials));
    Ok(())
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_session() -> TestResult {
    let (auth, _) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    let first = login(&auth, "first password!").await?;
    let second = auth.refresh(&first.refresh_token).await?;
    assert_ne!(first.refresh_token, second.refresh_token);
    auth.authenticate(&second.access_token).await?;
    // The first token again: theft assumed, the whole session ends.
    assert!(matches!(
        auth.refresh(&first.refresh_token).await,
        Err(AuthError::InvalidRefresh)
    ));
    assert!(matches!(
        auth.refresh(&second.refresh_token).await,
        Err(AuthError::InvalidRefresh)
    ));
    assert!(matches!(
        auth.authenticate(&second.access_token).await,
        Err(AuthError::SessionEnded)
    ));
    Ok(())
}

#[tokio::test]
async fn logout_and_expiry_end_access() -> TestResult {
    let (auth, clock) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    let a = login(&auth, "first password!").await?;
    let b = login(&auth, "first password!").await?;
    let session = auth.authenticate(&a.access_token).await?.session;
    auth.logout(&session).await?;
    assert!(matches!(
        auth.authenticate(&a.access_token).await,
        Err(AuthError::SessionEnded)
    ));
    assert!(auth.refresh(&a.refresh_token).await.is_err());
    // The other login is untouched until its access token expires.
    auth.authenticate(&b.access_token).await?;
    clock.advance(15 * MINUTE);
    assert!(matches!(
        auth.authenticate(&b.access_token).await,
        Err(AuthError::Token(TokenError::Expired))
    ));
    // Its refresh token still works, once.
    let c = auth.refresh(&b.refresh_token).await?;
    auth.authenticate(&c.access_token).await?;
    Ok(())
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions() -> TestResult {
    let (auth, _) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    let a = login(&auth, "first password!").await?;
    let b = login(&auth, "first password!").await?;
    let keep = auth.authenticate(&a.access_token).await?.session;
    let weak = auth
        .set_password("acme", "admin", "short", Some(&keep))
        .await;
    assert!(matches!(weak, Err(AuthError::WeakPassword(_))));
    auth.set_password("acme", "admin", "second password!", Some(&keep))
        .await?;
    auth.authenticate(&a.access_token).await?;
    assert!(auth.authenticate(&b.access_token).await.is_err());
    assert!(
        auth.login("acme", "admin", "first password!", None, None)
            .await
            .is_err()
    );
    auth.login("acme", "admin", "second password!", None, None)
        .await?;
    Ok(())
}

#[test]
fn data_scope_is_the_department_subtree_plus_what_roles_grant() -> Result<(), PolicyErr> {
    let dept = |id: &str, parent: Option<&str>| Department {
        id: id.into(),
        tenant_id: "t".into(),
        name: id.into(),
        parent_id: parent.map(Into::into),
    };
    let tree = DepartmentTree::new(&[
        dept("hq", None),
        dept("north", Some("hq")),
        dept("plant-1", Some("north")),
        dept("south", Some("hq")),
    ]);
    let policy = Policy::from_csv(
        "p, auditor, t, department:south, GET\n\
         g, sam, auditor, t\n\
         p, boss, t, department:*, GET\n\
         g, bo, boss, t\n",
    )?;
    let scope = data_scope(&policy, "t", "nora", Some("north"), &tree, "GET");
    assert!(scope.allows("plant-1") && scope.allows("north"));
    assert!(!scope.allows("hq") && !scope.allows("south"));
    let scope = data_scope(&policy, "t", "sam", Some("plant-1"), &tree, "GET");
    assert!(scope.allows("plant-1") && scope.allows("south") && !scope.allows("north"));
    // A grant counts for its action only: sam reads south, and changes his own plant only.
    for write in ["PUT", "POST", "DELETE"] {
        let scope = data_scope(&policy, "t", "sam", Some("plant-1"), &tree, write);
        assert!(scope.allows("plant-1") && !scope.allows("south"), "{write}");
    }
    assert_eq!(
        data_scope(&policy, "t", "bo", None, &tree, "GET"),
        DataScope::All
    );
    assert!(!data_scope(&policy, "t", "bo", None, &tree, "PUT").allows("hq"));
    assert!(!data_scope(&policy, "t", "nobody", None, &tree, "GET").allows("hq"));
    Ok(())
}

type PolicyErr = super::super::PolicyError;

#[tokio::test]
async fn totp_is_enrolled_confirmed_and_then_asked_at_every_login() -> TestResult {
    let (auth, clock) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    let enrollment = auth.enroll_mfa("acme", "admin").await?;
    assert!(enrollment.otpauth_url.contains(&enrollment.secret));
    let app = TotpEnrollment {
        secret: enrollment.secret.clone(),
        confirmed: true,
        last_step: 0,
    };
    assert!(matches!(
        auth.confirm_mfa("acme", "admin", "000000").await,
        Err(AuthError::InvalidCode)
    ));
    let recovery = auth
        .confirm_mfa("acme", "admin", &app.code_at(clock.now_ms()))
        .await?;
    assert_eq!(recovery.len(), 10);

    let outcome = auth
        .login("acme", "admin", "first password!", None, None)
        .await?;
    let LoginOutcome::MfaRequired { mfa_token, .. } = outcome else {
        return Err("a second factor should be asked".into());
    };
    // The intermediate token is no access token.
    assert!(auth.authenticate(&mfa_token).await.is_err());
    clock.advance(30 * SECOND);
    let code = app.code_at(clock.now_ms());
    let tokens = auth.verify_mfa(&mfa_token, &code, None, None).await?;
    let me = auth.authenticate(&tokens.access_token).await?;
    assert!(!me.needs_mfa_enrollment);
    // The same code again is refused; a recovery code works once.
    assert!(matches!(
        auth.verify_mfa(&mfa_token, &code, None, None).await,
        Err(AuthError::InvalidCode)
    ));
    auth.verify_mfa(&mfa_token, &recovery[0], None, None)
        .await?;
    assert!(
        auth.verify_mfa(&mfa_token, &recovery[0], None, None)
            .await
            .is_err()
    );
    // The intermediate token expires.
    clock.advance(5 * MINUTE);
    assert!(matches!(
        auth.verify_mfa(&mfa_token, &recovery[1], None, None).await,
        Err(AuthError::Token(TokenError::Expired))
    ));
    Ok(())
}

#[tokio::test]
async fn a_tenant_that_requires_mfa_holds_back_users_without_it() -> TestResult {
    let (auth, _) = service();
    auth.bootstrap_tenant("acme", "admin", "first password!")
        .await?;
    auth.catalog()
        .put_settings(
            "acme",
            &crate::auth::TenantSettings {
                require_mfa: true,
                oidc: None,
            },
        )
        .await?;
    let tokens = auth
        .login("acme", "admin", "first password!", None, None)
        .await?
        .tokens()
        .ok_or("not enrolled yet, so no second factor is asked")?;
    assert!(
        auth.authenticate(&tokens.access_token)
            .await?
            .needs_mfa_enrollment
    );
    Ok(())
}
