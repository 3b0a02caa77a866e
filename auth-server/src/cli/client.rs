//! `auth-server client …`: registering the services and applications that obtain tokens.
//!
//! Every change here reaches the tokens already issued: removing a client ends its refresh
//! families (a client added again under the same id is another client), `update` narrows what
//! its families get at their next refresh, and `rotate-secret` replaces a secret with an overlap
//! during which both work, so that a fleet can roll the new one out without an outage.

use anyhow::bail;
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::oauth::client_auth::{self, MIN_SECRET_LEN, PUBLIC_CLIENT_ID, PUBLIC_GRANT_TYPES};
use crate::oauth::clock::unix_now;
use crate::store::{ClientRecord, ClientUpdate, GrantType, Store, StoreError};
use crate::{keys::files, tokens, Settings};

/// How long a rotated-out secret keeps working unless `--overlap` says otherwise: a day.
pub const DEFAULT_OVERLAP: u64 = 86_400;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. Without --secret-stdin a secret is generated and printed once.
    Add {
        id: String,
        /// Read the secret (at least 32 characters) from stdin.
        #[arg(long, conflicts_with = "public")]
        secret_stdin: bool,
        /// A public client (RFC 6749 §2.1): no secret; it names itself with `client_id` and
        /// may use only the password and refresh_token grants.
        #[arg(long)]
        public: bool,
        /// May introspect any token (meant for resource servers); others learn only about
        /// their own tokens (RFC 7662 §4). Only a confidential client can introspect.
        #[arg(long, conflicts_with = "public")]
        introspect: bool,
        /// A grant type it may use; repeat for several (default: client_credentials, or
        /// password and refresh_token for a public client).
        #[arg(long = "grant", value_name = "G")]
        grants: Vec<String>,
        /// A scope it may be granted; repeat for several.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// An audience its tokens may have; the first is the default (else AUTH_AUDIENCE).
        #[arg(long = "audience", value_name = "A")]
        audiences: Vec<String>,
    },
    /// Change a client's grants, scopes, audiences or introspection right in place. Options
    /// not given keep their value; narrowing reaches refresh tokens at their next refresh.
    Update {
        id: String,
        /// The grant types it may use (replaces the list); repeat for several.
        #[arg(long = "grant", value_name = "G")]
        grants: Vec<String>,
        /// The scopes it may be granted (replaces the list); repeat for several.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Remove every scope.
        #[arg(long, conflicts_with = "scopes")]
        no_scope: bool,
        /// The audiences its tokens may have (replaces the list); repeat for several.
        #[arg(long = "audience", value_name = "A")]
        audiences: Vec<String>,
        /// Remove every audience of its own (AUTH_AUDIENCE applies).
        #[arg(long, conflicts_with = "audiences")]
        no_audience: bool,
        /// Whether it may introspect any token.
        #[arg(long, value_name = "BOOL")]
        introspect: Option<bool>,
    },
    /// Give a confidential client a new secret (printed once, or read from stdin). The old one
    /// keeps working for the overlap, then stops; with --overlap 0 it stops at once, and access
    /// tokens issued to the client before the rotation are no longer active.
    RotateSecret {
        id: String,
        /// Read the new secret (at least 32 characters) from stdin.
        #[arg(long)]
        secret_stdin: bool,
        /// Seconds the old secret keeps working.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_OVERLAP)]
        overlap: u64,
        /// Rotate even though the secret before the current one still works: it stops now.
        #[arg(long)]
        force: bool,
    },
    /// Remove a client; ends every refresh token family minted for it.
    Remove {
        id: String,
    },
    List,
}

pub async fn run(settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    let store = settings.open_store().await?;
    let store = store.as_ref();
    match command {
        ClientCommand::Add {
            id,
            secret_stdin,
            public,
            introspect,
            grants,
            scopes,
            audiences,
        } => {
            check_client_id(&id)?;
            let grants = checked_grants(grants, public)?;
            let scopes = super::scopes(&scopes)?;
            if store.user(&id).await?.is_some() {
                bail!("{id:?} is a username; a client id may not be the same as a username");
            }
            let (secret, generated) = if public {
                (None, false)
            } else if secret_stdin {
                (Some(new_secret_from_stdin()?), false)
            } else {
                (Some(Zeroizing::new(tokens::random_token(32))), true)
            };
            let secret_hash = match &secret {
                Some(secret) => {
                    client_auth::hash_secret(&files::client_secret_key(&settings.keys_dir)?, secret)
                }
                None => String::new(),
            };
            let record = ClientRecord {
                client_id: id.clone(),
                secret_hash,
                previous_secret: None,
                public,
                introspect,
                grants,
                scopes,
                audiences,
                stamp: tokens::new_stamp(),
                not_before: 0,
            };
            store
                .insert_client(&record)
                .await
                .map_err(|err| match err {
                    StoreError::Conflict(_) => {
                        anyhow::anyhow!(
                        "client {id:?} already exists, or the id is a username or was one within the last access-token lifetime"
                    )
                    }
                    other => other.into(),
                })?;
            match secret {
                Some(secret) if generated => {
                    println!("client_id={id}");
                    println!("client_secret={}", secret.as_str());
                    eprintln!("the secret is shown once; store it now");
                }
                _ => println!("added {} client {id}", kind(&record)),
            }
        }
        ClientCommand::Update {
            id,
            grants,
            scopes,
            no_scope,
            audiences,
            no_audience,
            introspect,
        } => {
            let current = existing(store, &id).await?;
            if current.public && introspect == Some(true) {
                bail!("client {id:?} is public; only a confidential client can introspect");
            }
            let update = ClientUpdate {
                grants: if grants.is_empty() {
                    None
                } else {
                    Some(checked_grants(grants, current.public)?)
                },
                scopes: if no_scope {
                    Some(oauth2_jwt_verifier::Scope::default())
                } else if scopes.is_empty() {
                    None
                } else {
                    Some(super::scopes(&scopes)?)
                },
                audiences: if no_audience {
                    Some(Vec::new())
                } else if audiences.is_empty() {
                    None
                } else {
                    Some(audiences)
                },
                introspect,
            };
            if !store.update_client(&id, &update).await? {
                bail!("unknown client {id:?}");
            }
            let updated = existing(store, &id).await?;
            println!(
                "updated {id}: grants={} scope={} audience={} introspect={}",
                GrantType::join(&updated.grants, ","),
                updated.scopes,
                updated.audiences.join(","),
                updated.introspect
            );
        }
        ClientCommand::RotateSecret {
            id,
            secret_stdin,
            overlap,
            force,
        } => {
            let current = existing(store, &id).await?;
            if current.public {
                bail!("client {id:?} is public and has no secret to rotate");
            }
            let now = unix_now();
            if let Some(previous) = current
                .previous_secret
                .as_ref()
                .filter(|previous| now < previous.expires_at && !force)
            {
                bail!(
                    "client {id:?} still accepts its previous secret until {}; rotating again ends it now (a client has at most two secrets): wait, or add --force",
                    super::keys::rfc3339(previous.expires_at)
                );
            }
            let (secret, generated) = if secret_stdin {
                (new_secret_from_stdin()?, false)
            } else {
                (Zeroizing::new(tokens::random_token(32)), true)
            };
            let key = files::client_secret_key(&settings.keys_dir)?;
            let (previous_until, not_before) = if overlap == 0 {
                let not_before = tokens::next_cut_off(
                    tokens::session_cut(now)
                        .not_before
                        .saturating_add(cache_slack(settings)),
                    current.not_before,
                );
                // Into the revocation feed before the store writes it (see `oauth::revocation`).
                store
                    .record_revocation(&tokens::client_revocation(
                        &id,
                        not_before,
                        settings.access_token_ttl,
                    ))
                    .await?;
                (None, Some(not_before))
            } else {
                (Some(now.saturating_add(overlap)), None)
            };
            let rotated = store
                .rotate_client_secret(
                    &id,
                    &client_auth::hash_secret(&key, &secret),
                    previous_until,
                    not_before,
                )
                .await?;
            if !rotated {
                bail!("unknown client {id:?}");
            }
            if generated {
                println!("client_id={id}");
                println!("client_secret={}", secret.as_str());
                eprintln!("the secret is shown once; store it now");
            } else {
                println!("rotated the secret of {id}");
            }
            match previous_until {
                Some(until) => eprintln!(
                    "the old secret works until {}",
                    super::keys::rfc3339(until)
                ),
                None => eprintln!(
                    "the old secret no longer works; access tokens issued to {id} before now are no longer active"
                ),
            }
        }
        ClientCommand::Remove { id } => {
            let mut removal = tokens::removal(unix_now(), settings.access_token_ttl);
            let current = existing(store, &id).await?;
            removal.not_before = tokens::next_cut_off(
                removal.not_before.saturating_add(cache_slack(settings)),
                current.not_before,
            );
            // Into the revocation feed before the store removes it (see `oauth::revocation`).
            store
                .record_revocation(&tokens::client_revocation(
                    &id,
                    removal.not_before,
                    settings.access_token_ttl,
                ))
                .await?;
            if !store.remove_client(&id, removal).await? {
                bail!("unknown client {id:?}");
            }
            println!("removed {id}; every refresh token family minted for it ended");
        }
        ClientCommand::List => {
            let now = unix_now();
            for client in store.list_clients().await? {
                let mut line = format!(
                    "{}\tgrants={}\tscope={}\taudience={}",
                    client.client_id,
                    GrantType::join(&client.grants, ","),
                    client.scopes,
                    client.audiences.join(",")
                );
                if client.public {
                    line.push_str("\tpublic");
                }
                if client.introspect {
                    line.push_str("\tintrospect");
                }
                if let Some(previous) = client
                    .previous_secret
                    .as_ref()
                    .filter(|previous| now < previous.expires_at)
                {
                    line.push_str(&format!(
                        "\told-secret-ends={}",
                        super::keys::rfc3339(previous.expires_at)
                    ));
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// How far past the next second a removal's or an emergency rotation's cut-off is set: with
/// `AUTH_CLIENT_CACHE` on, a replica may serve the client as it was for up to
/// `AUTH_KEY_SYNC_INTERVAL`, and every token it mints meanwhile must fall below the cut-off (see
/// `oauth::client_cache`); one more second for this command's own store writes.
fn cache_slack(settings: &Settings) -> u64 {
    if settings.client_cache {
        settings.key_sync_interval.saturating_add(1)
    } else {
        0
    }
}

fn kind(client: &ClientRecord) -> &'static str {
    if client.public {
        "public"
    } else {
        "confidential"
    }
}

async fn existing(store: &dyn Store, id: &str) -> anyhow::Result<ClientRecord> {
    match store.client(id).await? {
        Some(client) => Ok(client),
        None => bail!("unknown client {id:?}"),
    }
}

fn check_client_id(id: &str) -> anyhow::Result<()> {
    if id == PUBLIC_CLIENT_ID {
        bail!("{PUBLIC_CLIENT_ID:?} is the default public client's id; choose another");
    }
    if !client_auth::is_valid_client_id(id) || id.contains(':') {
        bail!(
            "invalid client id {id:?}: 1 to {} bytes, no control characters and no ':'",
            client_auth::MAX_CLIENT_ID_BYTES
        );
    }
    Ok(())
}

/// The grants given, or the default for the kind of client; a public client may have only the
/// grants that need no secret. The words are parsed here rather than by clap, so that an
/// unknown one is the CLI's usual one-line error with exit status 1.
fn checked_grants(words: Vec<String>, public: bool) -> anyhow::Result<Vec<GrantType>> {
    let grants = match (words.is_empty(), public) {
        (false, _) => words
            .iter()
            .map(|word| match GrantType::parse(word) {
                Some(grant) => Ok(grant),
                None => Err(anyhow::anyhow!(
                    "unknown grant {word:?}; use one of {}",
                    GrantType::join(GrantType::ALL, ", ")
                )),
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        (true, false) => vec![GrantType::ClientCredentials],
        (true, true) => PUBLIC_GRANT_TYPES.to_vec(),
    };
    if public {
        if let Some(refused) = grants.iter().find(|g| !PUBLIC_GRANT_TYPES.contains(g)) {
            bail!(
                "a public client may not use {:?}; only {}",
                refused.as_str(),
                GrantType::join(PUBLIC_GRANT_TYPES, ", ")
            );
        }
    }
    Ok(grants)
}

fn new_secret_from_stdin() -> anyhow::Result<Zeroizing<String>> {
    let secret = super::read_secret_from_stdin("secret")?;
    if secret.chars().count() < MIN_SECRET_LEN {
        bail!("a client secret must have at least {MIN_SECRET_LEN} characters");
    }
    Ok(secret)
}
