//! What the auth-server writes to disk is private from its creation: the embedded store (it
//! holds password hashes) and its `-wal` and `-shm` files are mode 0600, and the directories it
//! creates for the store and the keys are mode 0700, whatever the umask lets others have.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use system_tests::TestAuth;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_store_its_wal_and_the_keys_are_created_private() {
    let auth = TestAuth::spawn_with(|settings| {
        let base = settings.keys_dir.parent().unwrap().to_owned();
        settings.store = auth_server::settings::StoreUrl(format!(
            "sqlite://{}",
            base.join("data/auth.db").display()
        ));
        settings.keys_dir = base.join("secrets/keys");
    })
    .await;
    // The server has written (its first signing key), so the WAL files exist while it runs.
    let base = auth.dir.path();
    for file in ["data/auth.db", "data/auth.db-wal", "data/auth.db-shm"] {
        assert_eq!(mode(&base.join(file)), 0o600, "{file}");
    }
    for dir in ["data", "secrets", "secrets/keys"] {
        assert_eq!(mode(&base.join(dir)), 0o700, "{dir}");
    }
    for file in ["key-encryption.key", "client-secret.key"] {
        assert_eq!(mode(&base.join("secrets/keys").join(file)), 0o600, "{file}");
    }
}
