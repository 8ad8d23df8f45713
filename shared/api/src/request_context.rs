//! What one request carries between the layers: who the guard found the caller to be, for the
//! audit log, and the token it checked, so the audit layer's read of "before" and the change
//! itself check the token against the store once. Both layers depend on this, not on each other.

use iot_core::auth::Principal;
use std::sync::Arc;

/// Who made a request, put in the response by the guard (or by login).
#[derive(Clone, Debug)]
pub struct Actor {
    pub tenant: String,
    pub user: String,
}

/// Who a token was found to be, shared by the requests of one audited change (the read of
/// "before" and the change itself), so the token is checked against the store once.
#[derive(Clone, Default)]
pub struct AuthMemo(Arc<std::sync::Mutex<Option<Authenticated>>>);

/// A token and who it was found to be.
type Authenticated = (String, Arc<Principal>);

impl AuthMemo {
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Principal>> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(t, _)| t == token)
            .map(|(_, p)| p.clone())
    }

    pub(crate) fn set(&self, token: &str, principal: Arc<Principal>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.to_owned(), principal));
    }
}
