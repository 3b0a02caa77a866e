//! Swagger UI as a person uses it: open the resource server's `/docs` in a real browser, log in
//! through the OAuth2 password flow (the page posts to the auth-server's `/token` from its own
//! origin, so this also proves the auth-server's CORS), then "Try it out" on `GET /users/me`.
//!
//! Drives Debian's Chromium through ChromeDriver, both installed by `.ci/install-browser`.
//! Without them the browser test fails with that advice; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::{Client, ClientBuilder, Locator};
use system_tests::{http_client, wait_ready, TestAuth, TestResource};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Flags this machine needs: no sandbox as root, and no calls to Google's hosts.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1400",
];
/// How long one step may take: starting the browser, a dialog, a request.
const STEP_DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn swagger_ui_password_login_then_try_it_out_on_users_me_returns_200() {
    require_browser();
    // The page's origin must be in the auth-server's CORS list before the auth-server starts,
    // so the resource server's port is bound first.
    let docs_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let docs_origin = format!("http://{}", docs_listener.local_addr().unwrap());
    let auth =
        TestAuth::spawn_with(|settings| settings.cors_origins = vec![docs_origin.clone()]).await;
    auth.add_user("alice", PASSWORD, "read").await;
    let docs = DocsServer::start(docs_listener, &auth.url).await;
    assert_eq!(docs.url, docs_origin);

    let browser_dir = tempfile::tempdir().unwrap();
    let driver = ChromeDriver::start(browser_dir.path()).await;
    let client = driver
        .open_browser(&browser_dir.path().join("profile"))
        .await;

    let outcome = log_in_and_try_users_me(&client, &docs.url).await;
    let failure_screenshot = match &outcome {
        Ok(_) => None,
        Err(_) => save_screenshot(&client, "swagger_ui_failure.png").await,
    };
    client.close().await.unwrap();
    let (status, body) = outcome.unwrap_or_else(|err| {
        let console = driver.console_messages().join("\n  ");
        panic!("Swagger UI flow failed: {err:#}\nscreenshot: {failure_screenshot:?}\nbrowser console:\n  {console}")
    });

    assert_eq!(status, "200", "live response status; body: {body}");
    let me: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("response body is not JSON ({err}): {body}"));
    assert_eq!(me["username"], "alice", "{body}");
    assert_eq!(me["scope"], "read", "{body}");
}

#[tokio::test]
async fn openapi_document_names_the_auth_servers_token_url_for_the_password_flow() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    let document: serde_json::Value = api
        .http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let token_urls: Vec<&str> = schemes
        .values()
        .filter(|scheme| scheme["type"] == "oauth2")
        .filter_map(|scheme| scheme["flows"]["password"]["tokenUrl"].as_str())
        .collect();
    assert_eq!(token_urls, [auth.url("/token")], "{document:#}");

    let page = api
        .http
        .get(api.url("/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&auth.url("/token")),
        "the page embeds the document with the token URL"
    );
    assert!(
        !page.contains(resource_server::http::TOKEN_URL_PLACEHOLDER),
        "the page still has the compile-time placeholder"
    );
}

/// The steps a person takes; answers the live response's status and body.
async fn log_in_and_try_users_me(
    client: &Client,
    docs_url: &str,
) -> anyhow::Result<(String, String)> {
    client.goto(&format!("{docs_url}/docs")).await?;

    // The password-flow dialog: username and password; client credentials left empty.
    click(client, ".btn.authorize").await?;
    type_into(client, "#oauth_username", "alice").await?;
    type_into(client, "#oauth_password", PASSWORD).await?;
    let client_id = client
        .find(Locator::Css(".auth-container input[id^='client_id']"))
        .await?;
    anyhow::ensure!(
        client_id
            .prop("value")
            .await?
            .unwrap_or_default()
            .is_empty(),
        "client_id starts empty"
    );
    click(client, ".auth-btn-wrapper .authorize").await?;
    // Logged in when the dialog's Authorize button turns into Logout; an error shows instead.
    until("the dialog to show the login's outcome", || async move {
        if let Some(error) = text_of(client, ".auth-container .errors").await? {
            anyhow::bail!("the login failed in the dialog: {error}");
        }
        let button = text_of(client, ".auth-btn-wrapper .authorize").await?;
        Ok(button
            .is_some_and(|label| label.trim() == "Logout")
            .then_some(()))
    })
    .await?;
    click(client, ".auth-btn-wrapper .btn-done").await?;
    until("the dialog to close", || async move {
        Ok(client
            .find_all(Locator::Css(".modal-ux"))
            .await?
            .is_empty()
            .then_some(()))
    })
    .await?;

    click(client, r#".opblock-summary-path[data-path="/users/me"]"#).await?;
    let operation = r#".opblock.is-open:has(.opblock-summary-path[data-path="/users/me"])"#;
    click(client, &format!("{operation} .try-out__btn")).await?;
    click(client, &format!("{operation} .btn.execute")).await?;

    let responses = format!("{operation} .live-responses-table tr.response");
    let status_cell = format!("{responses} .response-col_status");
    let body_cell = format!("{responses} .response-col_description .highlight-code pre");
    let status = until("the live response", || text_of(client, &status_cell)).await?;
    let body = until("the response body", || text_of(client, &body_cell)).await?;
    Ok((status.trim().to_owned(), body))
}

/// Fails, not skips, when the browser is missing.
fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{} not installed: run `.ci/install-browser` (Debian packages chromium and chromium-driver)",
        missing.join(" and ")
    );
}

/// A resource server on a listener the test bound itself: `TestResource::spawn` binds its port
/// only when it starts, after the auth-server, whose CORS list must already name the page's
/// origin. Stopped when dropped.
struct DocsServer {
    url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DocsServer {
    async fn start(listener: std::net::TcpListener, issuer: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let settings = resource_server::Settings {
            listen: addr,
            issuer: issuer.parse().unwrap(),
            ..resource_server::Settings::default()
        };
        let app = resource_server::Application::build_on(settings, listener, |config| config)
            .await
            .unwrap();
        let task = tokio::spawn(app.run_until(std::future::pending()));
        let url = format!("http://{addr}");
        wait_ready(&http_client(), &format!("{url}/readyz")).await;
        Self { url, task }
    }
}

impl Drop for DocsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A chromedriver child process, killed when dropped, also when the test fails.
struct ChromeDriver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ChromeDriver {
    /// Starts on a port of its own choosing (`--port=0`), read from its log: no port race.
    async fn start(dir: &Path) -> Self {
        let log = dir.join("chromedriver.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg("--verbose") // records the browser console, CORS refusals among it
            .env("TMPDIR", dir) // Chromium's scratch files go with the test's directory
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("starting {CHROMEDRIVER}: {err}; run `.ci/install-browser`")
            });
        let mut driver = Self {
            child,
            url: String::new(),
            log,
        };
        let this = &driver;
        let port = until("chromedriver to report its port", || async move {
            Ok(this.log().lines().find_map(|line| {
                line.strip_prefix("ChromeDriver was started successfully on port ")?
                    .trim_end_matches('.')
                    .parse::<u16>()
                    .ok()
            }))
        })
        .await
        .unwrap_or_else(|err| panic!("{err:#}; log: {}", driver.log()));
        driver.url = format!("http://127.0.0.1:{port}");
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the browser console showed, as the verbose log records it (texts may be cut short).
    fn console_messages(&self) -> Vec<String> {
        let mut messages = Vec::new();
        let mut in_console_entry = false;
        for line in self.log().lines() {
            if line.starts_with('[') {
                in_console_entry = line.contains("Log.entryAdded");
            } else if let Some(text) = line.trim_start().strip_prefix("\"text\": ") {
                if in_console_entry {
                    messages.push(text.trim_end_matches(',').to_owned());
                }
            }
        }
        messages
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn open_browser(&self, profile: &Path) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS
            .iter()
            .map(|flag| (*flag).to_owned())
            .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "opening a Chromium session: {err}; chromedriver log: {}",
                    self.log()
                )
            })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it answers `Some`, for at most [`STEP_DEADLINE`].
async fn until<T, F, Fut>(what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "waited {STEP_DEADLINE:?} for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The text of the first element matching `css`, when there is one with text. Read in one
/// script, so that a re-render between finding and reading cannot fail it.
async fn text_of(client: &Client, css: &str) -> anyhow::Result<Option<String>> {
    let text = client
        .execute(
            "const element = document.querySelector(arguments[0]); return element ? element.textContent : null;",
            vec![css.into()],
        )
        .await?;
    Ok(text
        .as_str()
        .filter(|text| !text.trim().is_empty())
        .map(str::to_owned))
}

/// Clicks the element matching `css` once it is there and clickable.
async fn click(client: &Client, css: &str) -> anyhow::Result<()> {
    until(&format!("`{css}` to be clickable"), || async move {
        let result = match client.find(Locator::Css(css)).await {
            Ok(element) => element.click().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => Ok(Some(())),
            Err(err) if not_ready_yet(&err) => Ok(None),
            Err(err) => Err(anyhow::Error::new(err).context(format!("clicking `{css}`"))),
        }
    })
    .await
}

/// Types `text` into the field matching `css` once it is there.
async fn type_into(client: &Client, css: &str, text: &str) -> anyhow::Result<()> {
    let field = client
        .wait()
        .at_most(STEP_DEADLINE)
        .every(POLL_INTERVAL)
        .for_element(Locator::Css(css))
        .await?;
    field.send_keys(text).await?;
    Ok(())
}

/// Errors that mean the page has not caught up yet (rendering, an animation), worth a retry.
fn not_ready_yet(err: &CmdError) -> bool {
    matches!(
        err,
        CmdError::Standard(webdriver) if matches!(
            webdriver.error,
            ErrorStatus::NoSuchElement
                | ErrorStatus::StaleElementReference
                | ErrorStatus::ElementClickIntercepted
                | ErrorStatus::ElementNotInteractable
        )
    )
}

/// Saves what the browser shows to the temporary directory; answers where.
async fn save_screenshot(client: &Client, name: &str) -> Option<PathBuf> {
    let png = client.screenshot().await.ok()?;
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, png).ok()?;
    Some(path)
}
