//! Login throttle counters: one hash per subject and counter, all of a subject's under one tag,
//! so that one script reserves or releases them together.

use super::connection::{Request, Resend};
use super::{RedisStore, EXPIRY_GRACE_SECS, MAX_EXPIRE_AT};
use crate::store::{LoginSubject, SlotRelease, StoreError};

pub(super) async fn reserve_login_slots(
    store: &RedisStore,
    subject: &LoginSubject,
    counters: &[(&str, u64)],
    now: u64,
    window: u64,
) -> Result<Option<u64>, StoreError> {
    if counters.is_empty() {
        return Ok(None);
    }
    let ttl = window.saturating_add(EXPIRY_GRACE_SECS).min(MAX_EXPIRE_AT);
    let mut invocation = store.scripts.reserve_login_slots.prepare_invoke();
    invocation.arg(now).arg(window).arg(ttl);
    for (name, limit) in counters {
        invocation.key(store.keys.login(subject, name)).arg(*limit);
    }
    // Sent again after a dropped connection, as a read is: should the first attempt have
    // run, the check counts twice, which errs on the throttle's side; refusing the login
    // instead would make every first request after a Redis restart a 503.
    let refused_until: u64 = store
        .send(Resend::Always, Request::Script(&invocation))
        .await?;
    Ok((refused_until > 0).then_some(refused_until))
}

pub(super) async fn release_login_slots(
    store: &RedisStore,
    subject: &LoginSubject,
    counters: &[(&str, SlotRelease)],
    taken_at: u64,
    window: u64,
) -> Result<(), StoreError> {
    if counters.is_empty() {
        return Ok(());
    }
    let mut invocation = store.scripts.release_login_slots.prepare_invoke();
    invocation.arg(taken_at.saturating_add(window));
    for (name, release) in counters {
        let how = match release {
            SlotRelease::GiveBack => "give-back",
            SlotRelease::Forget => "forget",
        };
        invocation.key(store.keys.login(subject, name)).arg(how);
    }
    let _: u64 = store
        .send(Resend::IfNotSent, Request::Script(&invocation))
        .await?;
    Ok(())
}
