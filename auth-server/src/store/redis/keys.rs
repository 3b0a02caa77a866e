//! The key layout (the table in the module doc of `store::redis`): every key of one atomic step
//! shares a hash tag, so that each script touches one cluster slot.

use crate::store::LoginSubject;

/// Key names; see the table in the module doc.
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn user_index(&self) -> String {
        format!("{}{{users}}:index", self.prefix)
    }
    pub(super) fn user(&self, username: &str) -> String {
        format!("{}{{users}}:user:{username}", self.prefix)
    }
    pub(super) fn removed_user(&self, username: &str) -> String {
        format!("{}{{users}}:removed:{username}", self.prefix)
    }
    pub(super) fn removed_client(&self, client_id: &str) -> String {
        format!("{}{{clients}}:removed:{client_id}", self.prefix)
    }
    pub(super) fn client_index(&self) -> String {
        format!("{}{{clients}}:index", self.prefix)
    }
    pub(super) fn client(&self, client_id: &str) -> String {
        format!("{}{{clients}}:client:{client_id}", self.prefix)
    }
    pub(super) fn refresh(&self, id: &str) -> String {
        format!("{}{{rt}}:{id}", self.prefix)
    }
    pub(super) fn revoked_family(&self, family_id: &str) -> String {
        format!("{}revoked-family:{family_id}", self.prefix)
    }
    pub(super) fn revoked_jti(&self, jti: &str) -> String {
        format!("{}revoked-jti:{jti}", self.prefix)
    }
    /// Every counter of one subject shares the hash tag, so that one script may reserve them.
    pub(super) fn login(&self, subject: &LoginSubject, counter: &str) -> String {
        format!("{}{{login:{}}}:{counter}", self.prefix, subject.hex())
    }
    /// The revocation feed's keys (`meta`, `log`, `entries`, `ends`), all under one tag, so
    /// that one script records an entry or reads the feed.
    pub(super) fn revocations(&self, part: &str) -> String {
        format!("{}{{revocations}}:{part}", self.prefix)
    }
    pub(super) fn signing_keys(&self) -> String {
        format!("{}{{keys}}:signing", self.prefix)
    }
}
