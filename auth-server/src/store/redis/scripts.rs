//! The Lua scripts of the atomic steps, one file each under `scripts/`, loaded at build time.

use redis::Script;

/// The Lua scripts. Each checks every condition before its first write, because Redis does not
/// roll a script back when it fails halfway.
pub(super) struct Scripts {
    pub(super) insert_expiring: Script,
    pub(super) set_fields_if_exists: Script,
    pub(super) insert_account: Script,
    pub(super) remove_account: Script,
    pub(super) cut_sessions: Script,
    pub(super) rotate_client_secret: Script,
    pub(super) compare_and_set_field: Script,
    pub(super) rotate: Script,
    pub(super) revoke: Script,
    pub(super) reserve_login_slots: Script,
    pub(super) release_login_slots: Script,
    pub(super) insert_signing_key: Script,
    pub(super) stage_signing_key: Script,
    pub(super) promote_signing_key: Script,
    pub(super) revoke_signing_key: Script,
    pub(super) remove_expired_signing_keys: Script,
    pub(super) record_revocation: Script,
    pub(super) revocations_since: Script,
    pub(super) purge_revocations: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            insert_expiring: Script::new(include_str!("scripts/insert_expiring.lua")),
            set_fields_if_exists: Script::new(include_str!("scripts/set_fields_if_exists.lua")),
            insert_account: Script::new(include_str!("scripts/insert_account.lua")),
            remove_account: Script::new(include_str!("scripts/remove_account.lua")),
            cut_sessions: Script::new(include_str!("scripts/cut_sessions.lua")),
            rotate_client_secret: Script::new(include_str!("scripts/rotate_client_secret.lua")),
            compare_and_set_field: Script::new(include_str!("scripts/compare_and_set_field.lua")),
            rotate: Script::new(include_str!("scripts/rotate.lua")),
            revoke: Script::new(include_str!("scripts/revoke.lua")),
            reserve_login_slots: Script::new(include_str!("scripts/reserve_login_slots.lua")),
            release_login_slots: Script::new(include_str!("scripts/release_login_slots.lua")),
            insert_signing_key: Script::new(include_str!("scripts/insert_signing_key.lua")),
            stage_signing_key: Script::new(include_str!("scripts/stage_signing_key.lua")),
            promote_signing_key: Script::new(include_str!("scripts/promote_signing_key.lua")),
            revoke_signing_key: Script::new(include_str!("scripts/revoke_signing_key.lua")),
            remove_expired_signing_keys: Script::new(include_str!(
                "scripts/remove_expired_signing_keys.lua"
            )),
            record_revocation: Script::new(include_str!("scripts/record_revocation.lua")),
            revocations_since: Script::new(include_str!("scripts/revocations_since.lua")),
            purge_revocations: Script::new(include_str!("scripts/purge_revocations.lua")),
        }
    }
}
