//! Secrets are wiped before their memory is freed.
//!
//! The test binary's global allocator scans every block it frees, while a check is running,
//! for a canary string used as the password or secret. A block that still holds the canary
//! when it is freed is a copy that was never wiped: it lingers in the heap until reused, and a
//! core dump or a later memory disclosure would show it. Each check runs real code (the form
//! the `/token` handler drops, Basic header parsing, the password pool, the keyed secret hash)
//! and first shows that the detector sees an unwiped copy, so that a check cannot pass by
//! seeing nothing.
//!
//! Out of reach here: the raw request bytes in hyper's read buffer, which belong to the HTTP
//! stack (bytes::Bytes, freed without wiping); the README says so.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use zeroize::Zeroizing;

struct CanaryWatch;

static WATCHING: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);
/// Checks share the allocator's counters: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The secret the checks use; each call makes a fresh heap copy of it.
const CANARY: &str = "wQ4v-canary-Hk29sZ7";
const CANARY_LEN: usize = CANARY.len();

fn canary() -> String {
    CANARY.to_owned()
}

// SAFETY: every method forwards to the system allocator with the caller's own pointer and
// layout. The scan in `dealloc` reads only the `layout.size()` bytes of the block being freed,
// which the caller owns and which stay valid until `System.dealloc` returns.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CanaryWatch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::Relaxed) && layout.size() >= CANARY_LEN {
            let block = std::slice::from_raw_parts(ptr, layout.size());
            if block
                .windows(CANARY_LEN)
                .any(|window| window == CANARY.as_bytes())
            {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CanaryWatch = CanaryWatch;

/// Runs `work` with the scan on and returns how many freed blocks still held the canary.
fn unwiped_copies(work: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    work();
    WATCHING.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

fn detector_sees_an_unwiped_copy() {
    let found = unwiped_copies(|| drop(canary()));
    assert!(
        found >= 1,
        "the scan missed a plain String holding the canary"
    );
    let found = unwiped_copies(|| drop(Zeroizing::new(canary())));
    assert_eq!(found, 0, "the scan flagged a wiped String");
}

#[test]
fn the_token_form_wipes_password_refresh_token_and_client_secret() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    detector_sees_an_unwiped_copy();
    let body = Zeroizing::new(format!(
        "grant_type=password&username=alice&password={0}&refresh_token={0}&client_id=svc&client_secret={0}",
        canary()
    ));
    let found = unwiped_copies(|| {
        let form: auth_server::http::token::TokenForm = serde_urlencoded::from_str(&body).unwrap();
        assert!(form
            .password
            .as_deref()
            .is_some_and(|p| p.len() == CANARY_LEN));
        drop(form);
    });
    assert_eq!(
        found, 0,
        "{found} freed blocks still held a secret from the form"
    );
}

#[test]
fn revocation_and_introspection_forms_wipe_token_and_client_secret() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let body = Zeroizing::new(format!(
        "token={0}&token_type_hint=refresh_token&client_id=svc&client_secret={0}",
        canary()
    ));
    let found = unwiped_copies(|| {
        let form: auth_server::http::revoke::TokenParams =
            serde_urlencoded::from_str(&body).unwrap();
        drop(form);
    });
    assert_eq!(
        found, 0,
        "{found} freed blocks still held a secret from the form"
    );
}

#[test]
fn basic_header_parsing_wipes_the_secret() {
    use base64::Engine;
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // With `+` and an escape, so that both decoding steps run.
    let header = Zeroizing::new(format!(
        "Basic {}",
        encode(&format!("svc:{}+%21", canary()))
    ));
    let found = unwiped_copies(|| {
        let (id, secret) = auth_server::http::credentials::parse_basic(&header).unwrap();
        assert_eq!(id, "svc");
        assert!(secret.ends_with(" !"));
        drop(secret);
    });
    assert_eq!(found, 0, "{found} freed blocks still held the Basic secret");
}

#[test]
fn the_keyed_secret_hash_leaves_no_copy() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let secret = Zeroizing::new(canary());
    let found = unwiped_copies(|| {
        let hash = auth_server::oauth::client_auth::hash_secret(&[7u8; 32], &secret);
        assert!(!hash.contains(secret.as_str()));
    });
    assert_eq!(
        found, 0,
        "{found} freed blocks still held the client secret"
    );
}

#[test]
fn the_password_pool_wipes_the_password_after_checking_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let passwords = auth_server::passwords::Passwords::new(1, 4, None).unwrap();
    let stored = auth_server::passwords::hash_blocking(&canary()).unwrap();
    let found = unwiped_copies(|| {
        runtime.block_on(async {
            let right = passwords
                .verify(Zeroizing::new(canary()), Some(stored.clone()))
                .await
                .unwrap();
            assert!(matches!(
                right,
                auth_server::passwords::Verdict::Valid { .. }
            ));
            let unknown_user = passwords
                .verify(Zeroizing::new(canary()), None)
                .await
                .unwrap();
            assert!(matches!(
                unknown_user,
                auth_server::passwords::Verdict::Invalid
            ));
        });
    });
    assert_eq!(found, 0, "{found} freed blocks still held the password");
}
