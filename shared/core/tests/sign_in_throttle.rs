//! Failed sign-ins are counted per account and source address: a stranger locks only their
//! own address out, an unknown name answers as a known one, and a guess spread over many
//! addresses still locks the account.

use std::sync::Arc;

use iot_core::auth::{AuthError, AuthService, AuthSettings, TokenKeys};
use iot_core::ports::ManualClock;
use iot_core::ports::memory::MemoryMetaStore;
use iot_core::repo::Catalog;
use iot_core::time::MINUTE;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PASSWORD: &str = "first password!";

async fn service() -> Result<(AuthService, Arc<ManualClock>), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(1_795_000_000_000));
    let store = Arc::new(MemoryMetaStore::with_clock(clock.clone()));
    let keys = TokenKeys::from_secret(&[7u8; 32])?;
    let auth = AuthService::new(
        Catalog::new(store),
        clock.clone(),
        keys,
        AuthSettings::default(),
    );
    auth.bootstrap_tenant("acme", "admin", PASSWORD).await?;
    Ok((auth, clock))
}

async fn attempt(
    auth: &AuthService,
    user: &str,
    password: &str,
    from: &str,
) -> Result<(), AuthError> {
    auth.login("acme", user, password, None, Some(from))
        .await
        .map(drop)
}

#[tokio::test]
async fn a_stranger_locks_out_only_their_own_address() -> TestResult {
    let (auth, clock) = service().await?;
    for _ in 0..4 {
        assert!(matches!(
            attempt(&auth, "admin", "guess", "203.0.113.9").await,
            Err(AuthError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        attempt(&auth, "admin", "guess", "203.0.113.9").await,
        Err(AuthError::Locked(_))
    ));
    // Locked from there, even with the right password; not from the owner's address.
    assert!(matches!(
        attempt(&auth, "admin", PASSWORD, "203.0.113.9").await,
        Err(AuthError::Locked(_))
    ));
    attempt(&auth, "admin", PASSWORD, "198.51.100.7").await?;
    // The lock passes.
    clock.advance(16 * MINUTE);
    attempt(&auth, "admin", PASSWORD, "203.0.113.9").await?;
    Ok(())
}

#[tokio::test]
async fn an_unknown_name_is_locked_as_a_known_one() -> TestResult {
    let (auth, _) = service().await?;
    let mut answers = Vec::new();
    for user in ["admin", "nobody"] {
        let mut last = None;
        for _ in 0..5 {
            last = Some(attempt(&auth, user, "guess", "203.0.113.9").await);
        }
        answers.push(matches!(last, Some(Err(AuthError::Locked(_)))));
    }
    assert_eq!(answers, [true, true]);
    Ok(())
}

#[tokio::test]
async fn a_guess_spread_over_many_addresses_locks_the_account() -> TestResult {
    let (auth, _) = service().await?;
    for n in 0..49 {
        let from = format!("192.0.2.{}", n / 4);
        assert!(attempt(&auth, "admin", "guess", &from).await.is_err());
    }
    assert!(matches!(
        attempt(&auth, "admin", "guess", "192.0.2.200").await,
        Err(AuthError::Locked(_))
    ));
    assert!(matches!(
        attempt(&auth, "admin", PASSWORD, "198.51.100.7").await,
        Err(AuthError::Locked(_))
    ));
    Ok(())
}
