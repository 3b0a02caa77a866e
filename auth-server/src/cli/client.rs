//! `auth-server client …`: registering the services that obtain their own tokens.

use anyhow::bail;
use clap::Subcommand;

use crate::client_auth::{self, MIN_SECRET_LEN};
use crate::grants::GRANT_TYPES;
use crate::store::{ClientRecord, StoreError};
use crate::{keys::files, tokens, Settings};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client. Without --secret-stdin a secret is generated and printed once.
    Add {
        id: String,
        /// Read the secret (at least 32 characters) from stdin.
        #[arg(long)]
        secret_stdin: bool,
        /// A grant type it may use; repeat for several (default: client_credentials).
        #[arg(long = "grant", value_name = "G")]
        grants: Vec<String>,
        /// A scope it may be granted; repeat for several.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// An audience its tokens may have; the first is the default (else AUTH_AUDIENCE).
        #[arg(long = "audience", value_name = "A")]
        audiences: Vec<String>,
    },
    Remove {
        id: String,
    },
    List,
}

pub async fn run(settings: &Settings, command: ClientCommand) -> anyhow::Result<()> {
    let store = crate::store::open(&settings.store.0).await?;
    match command {
        ClientCommand::Add {
            id,
            secret_stdin,
            grants,
            scopes,
            audiences,
        } => {
            if id.is_empty()
                || id == client_auth::PUBLIC_CLIENT_ID
                || id.chars().any(|c| c.is_control() || c == ':')
            {
                bail!("invalid client id {id:?}");
            }
            let grants = if grants.is_empty() {
                vec!["client_credentials".to_owned()]
            } else {
                grants
            };
            if let Some(unknown) = grants.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
                bail!(
                    "unknown grant {unknown:?}; use one of {}",
                    GRANT_TYPES.join(", ")
                );
            }
            let (secret, generated) = if secret_stdin {
                (super::read_secret_from_stdin("secret")?, false)
            } else {
                (zeroize::Zeroizing::new(tokens::random_token(32)), true)
            };
            if secret.chars().count() < MIN_SECRET_LEN {
                bail!("a client secret must have at least {MIN_SECRET_LEN} characters");
            }
            let key = files::client_secret_key(&settings.keys_dir)?;
            let record = ClientRecord {
                client_id: id.clone(),
                secret_hash: client_auth::hash_secret(&key, &secret),
                grants,
                scopes: super::scopes(&scopes)?,
                audiences,
            };
            store
                .insert_client(&record)
                .await
                .map_err(|err| match err {
                    StoreError::Conflict(_) => anyhow::anyhow!("client {id:?} already exists"),
                    other => other.into(),
                })?;
            if generated {
                println!("client_id={id}");
                println!("client_secret={}", secret.as_str());
                eprintln!("the secret is shown once; store it now");
            } else {
                println!("added client {id}");
            }
        }
        ClientCommand::Remove { id } => {
            if !store.remove_client(&id).await? {
                bail!("unknown client {id:?}");
            }
            println!("removed {id}");
        }
        ClientCommand::List => {
            for client in store.list_clients().await? {
                println!(
                    "{}\tgrants={}\tscope={}\taudience={}",
                    client.client_id,
                    client.grants.join(","),
                    client.scopes,
                    client.audiences.join(",")
                );
            }
        }
    }
    Ok(())
}
