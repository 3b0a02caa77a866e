//! The built `auth-server` and `resource-server` executables (and the example services of
//! `shared/examples`), and running the auth-server's command line as an operator would: for
//! tests about signals, exit status and logs, and for scenarios written as the commands of the
//! README followed by HTTP answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use test_kit::process::Server;

/// The servers as built by cargo.
pub struct Binaries {
    pub auth: PathBuf,
    pub resource: PathBuf,
}

/// The `auth-server` and `resource-server` executables, built once per test run.
///
/// Cargo builds a package's binaries for its own integration tests only (`CARGO_BIN_EXE_*`), so
/// neither `cargo test -p system-tests` nor `cargo test --workspace` is sure to have built them
/// (resource-server has no integration test, and a binary left from an earlier build may be
/// stale). So this runs `cargo build --bins` for them itself, into the target directory and
/// profile of this test binary, which cargo puts in `<target-dir>/<profile-dir>/deps/`; the
/// binaries land in `<target-dir>/<profile-dir>/`. Cargo holds no lock on the target directory
/// while tests run, so the nested build does not wait on the outer one. Selecting
/// `system-tests` too gives the same feature unification as `cargo test -p system-tests`, so
/// the libraries built for this test are reused and only the binaries are linked; when they are
/// up to date the build takes well under a second.
pub async fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    tokio::task::spawn_blocking(|| BINARIES.get_or_init(build_binaries))
        .await
        .unwrap()
}

fn build_binaries() -> Binaries {
    let profile_dir = cargo_build_bins(&["auth-server", "resource-server"]);
    let binaries = Binaries {
        auth: profile_dir.join(format!("auth-server{}", std::env::consts::EXE_SUFFIX)),
        resource: profile_dir.join(format!("resource-server{}", std::env::consts::EXE_SUFFIX)),
    };
    assert!(
        binaries.auth.is_file() && binaries.resource.is_file(),
        "no binaries in {}",
        profile_dir.display()
    );
    binaries
}

/// The example services of `shared/examples` as built by cargo.
pub struct Examples {
    pub orders: PathBuf,
    pub inventory: PathBuf,
}

/// The `example-orders` and `example-inventory` executables, built once per test run the way
/// [`binaries`] builds the servers.
pub async fn examples() -> &'static Examples {
    static EXAMPLES: OnceLock<Examples> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        EXAMPLES.get_or_init(|| {
            let profile_dir = cargo_build_bins(&["example-orders", "example-inventory"]);
            let examples = Examples {
                orders: profile_dir.join(format!("example-orders{}", std::env::consts::EXE_SUFFIX)),
                inventory: profile_dir
                    .join(format!("example-inventory{}", std::env::consts::EXE_SUFFIX)),
            };
            assert!(
                examples.orders.is_file() && examples.inventory.is_file(),
                "no example binaries in {}",
                profile_dir.display()
            );
            examples
        })
    })
    .await
    .unwrap()
}

/// Runs `cargo build --bins` for `packages` (with `system-tests`, for its feature
/// unification) into this test binary's target directory and profile; returns the directory
/// the binaries land in.
fn cargo_build_bins(packages: &[&str]) -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut build = std::process::Command::new(cargo);
    // What the outer cargo set for this test binary must not leak into the nested build: build
    // scripts watch some of it (ring reruns when CARGO_MANIFEST_DIR changes), and a changed
    // value would rebuild half the dependency tree, then again for the outer build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_the_test = [
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_MANIFEST_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix));
        if set_for_the_test || key == "OUT_DIR" || key == "CARGO_RUSTC_CURRENT_DIR" {
            build.env_remove(key.as_ref());
        }
    }
    let output = build
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "system-tests", "--bins"])
        .args(packages.iter().flat_map(|package| ["-p", package]))
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "building {packages:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    profile_dir
}

/// The variables a server reads its settings from, which a child must not take from the
/// caller's environment.
pub const SETTINGS: &[&str] = &["AUTH_", "RS_", "RUST_LOG"];

/// A command for `binary` with `env` and none of the caller's [`SETTINGS`].
pub fn command(binary: &Path, env: &[(String, String)]) -> std::process::Command {
    test_kit::process::command(binary, SETTINGS, env)
}

/// Starts `binary` as a server on a free port (`listen_env`, such as `AUTH_LISTEN`) with the
/// settings `env(addr)`, logging to `log`, and waits until `/readyz` answers 200.
pub async fn start_server(
    binary: &Path,
    log: PathBuf,
    listen_env: &str,
    env: impl Fn(SocketAddr) -> Vec<(String, String)>,
) -> Server {
    Server::start(log, "/readyz", |addr| {
        let mut settings = env(addr);
        settings.push((listen_env.to_owned(), addr.to_string()));
        command(binary, &settings)
    })
    .await
}

/// The settings of an auth-server in `dir` (listen address and issuer aside).
pub fn auth_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "AUTH_STORE".to_owned(),
            format!("sqlite://{}", dir.join("auth.db").display()),
        ),
        (
            "AUTH_KEYS_DIR".to_owned(),
            dir.join("keys").display().to_string(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// Runs an auth-server CLI command with `stdin`; it must succeed. Returns stdout and stderr.
pub async fn cli(binary: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> String {
    let run = run_cli(binary, env, args, stdin).await;
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(run.success(), "{args:?}: {text}");
    text
}

/// What a command-line run printed, and how it ended.
pub use test_kit::process::Run as CliRun;

/// Runs an auth-server CLI command with `stdin`, succeed or fail.
pub async fn run_cli(
    binary: &Path,
    env: &[(String, String)],
    args: &[&str],
    stdin: &str,
) -> CliRun {
    let mut command = command(binary, env);
    command.args(args);
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || test_kit::process::run(&mut command, Some(&stdin)))
        .await
        .unwrap()
}

/// The settings a CLI needs to work on the store and keys of `settings`' server.
pub fn cli_env(settings: &auth_server::Settings) -> Vec<(String, String)> {
    vec![
        ("AUTH_STORE".to_owned(), settings.store.0.clone()),
        (
            "AUTH_KEYS_DIR".to_owned(),
            settings.keys_dir.display().to_string(),
        ),
        // What sets how far ahead a client change's cut-off lies (`cli::client`).
        (
            "AUTH_CLIENT_CACHE".to_owned(),
            settings.client_cache.to_string(),
        ),
        (
            "AUTH_KEY_SYNC_INTERVAL".to_owned(),
            settings.key_sync_interval.to_string(),
        ),
    ]
}
