//! `auth-server user …`, including the import of users in the FastAPI tutorial's shape.
//!
//! A new password, disabling and removing a user each end every session of that user in the
//! same store write (a new stamp and access-token cut-off; see `store::UserRecord::stamp`), so
//! that the answer to a stolen password or a departed user needs no second step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::Deserialize;

use crate::oauth::clock::unix_now;
use crate::store::{Store, StoreError, UserRecord};
use crate::{passwords, tokens, Settings};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user; the password is read from stdin.
    Add {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// A scope the user may be granted; repeat for several.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
    },
    /// Set a user's password from stdin; ends every session of the user.
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Refuse all logins of a user; ends every session of the user.
    Disable {
        name: String,
    },
    /// Allow logins again; sessions ended by `disable` stay ended.
    Enable {
        name: String,
    },
    /// Replace the scopes a user may be granted; refresh tokens narrow at their next refresh.
    Update {
        name: String,
        /// A scope the user may be granted; repeat for several.
        #[arg(long = "scope", value_name = "S", required_unless_present = "no_scope")]
        scopes: Vec<String>,
        /// Take every scope away.
        #[arg(long, conflicts_with = "scopes")]
        no_scope: bool,
    },
    /// Remove a user; ends every session of the user. The name, added again, is a new account.
    Remove {
        name: String,
    },
    List,
    /// Import users from JSON in the FastAPI tutorial's shape (bcrypt hashes are kept and
    /// replaced by Argon2id at each user's first good login).
    Import {
        file: PathBuf,
        /// Scopes given to every imported user.
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
    },
}

pub async fn run(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let store = settings.open_store().await?;
    let store = store.as_ref();
    match command {
        UserCommand::Add {
            name,
            full_name,
            email,
            scopes,
            ..
        } => {
            check_username(&name)?;
            let scopes = super::scopes(&scopes)?;
            refuse_client_id(store, &name).await?;
            let password = super::read_secret_from_stdin("password")?;
            let password_hash =
                tokio::task::spawn_blocking(move || passwords::hash_blocking(&password)).await??;
            let user = UserRecord {
                username: name.clone(),
                full_name,
                email,
                password_hash,
                disabled: false,
                scopes,
                stamp: tokens::new_stamp(),
                not_before: 0,
            };
            store.insert_user(&user).await.map_err(|err| match err {
                StoreError::Conflict(_) => anyhow::anyhow!(
                    "user {name:?} already exists, or the name is a client id or was one within the last access-token lifetime"
                ),
                other => other.into(),
            })?;
            println!("added user {name}");
        }
        UserCommand::Passwd { name, .. } => {
            let password = super::read_secret_from_stdin("password")?;
            let password_hash =
                tokio::task::spawn_blocking(move || passwords::hash_blocking(&password)).await??;
            let cut = announce_cut(store, settings, &name, tokens::session_cut(unix_now())).await?;
            found(
                store.set_password_hash(&name, &password_hash, &cut).await?,
                &name,
            )?;
            println!("password of {name} changed; every session of {name} ended");
        }
        UserCommand::Disable { name } => {
            let cut = announce_cut(store, settings, &name, tokens::session_cut(unix_now())).await?;
            found(
                store.set_user_disabled(&name, true, Some(&cut)).await?,
                &name,
            )?;
            println!("disabled {name}; every session of {name} ended");
        }
        UserCommand::Enable { name } => {
            found(store.set_user_disabled(&name, false, None).await?, &name)?;
            println!("enabled {name}");
        }
        UserCommand::Update {
            name,
            scopes,
            no_scope: _,
        } => {
            let scopes = super::scopes(&scopes)?;
            found(store.set_user_scopes(&name, &scopes).await?, &name)?;
            println!("updated {name}: scope={scopes}");
        }
        UserCommand::Remove { name } => {
            let mut removal = tokens::removal(unix_now(), settings.access_token_ttl);
            let cut = crate::store::SessionCut {
                stamp: String::new(),
                not_before: removal.not_before,
            };
            removal.not_before = announce_cut(store, settings, &name, cut).await?.not_before;
            found(store.remove_user(&name, removal).await?, &name)?;
            println!("removed {name}; every session of {name} ended");
        }
        UserCommand::List => {
            for user in store.list_users().await? {
                println!(
                    "{}\t{}\tscope={}\tname={}\temail={}",
                    user.username,
                    if user.disabled { "disabled" } else { "enabled" },
                    user.scopes,
                    user.full_name.unwrap_or_default(),
                    user.email.unwrap_or_default()
                );
            }
        }
        UserCommand::Import { file, scopes } => {
            import(store, &file, &super::scopes(&scopes)?).await?
        }
    }
    Ok(())
}

/// Puts the cut-off that `cut` will give the user `name` into the revocation feed, before the
/// change writes it (see `oauth::revocation`), and returns `cut` with that cut-off: the store
/// raises a cut-off to one past the current one, and the feed must name the same time.
async fn announce_cut(
    store: &dyn Store,
    settings: &Settings,
    name: &str,
    mut cut: crate::store::SessionCut,
) -> anyhow::Result<crate::store::SessionCut> {
    let Some(user) = store.user(name).await? else {
        bail!("unknown user {name:?}");
    };
    cut.not_before = tokens::next_cut_off(cut.not_before, user.not_before);
    store
        .record_revocation(&tokens::subject_revocation(
            name,
            cut.not_before,
            settings.access_token_ttl,
        ))
        .await?;
    Ok(cut)
}

fn found(found: bool, name: &str) -> anyhow::Result<()> {
    if found {
        Ok(())
    } else {
        bail!("unknown user {name:?}")
    }
}

/// A client's tokens carry its id as `sub` (RFC 9068 §5): a username may not be one.
async fn refuse_client_id(store: &dyn Store, name: &str) -> anyhow::Result<()> {
    if store.client(name).await?.is_some() {
        bail!("{name:?} is a client id; a username may not be the same as a client id");
    }
    Ok(())
}

fn check_username(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        bail!("a username is 1 to 256 bytes without control characters");
    }
    if name == crate::oauth::client_auth::PUBLIC_CLIENT_ID {
        bail!("{name:?} is the default public client's id; a username may not be one");
    }
    Ok(())
}

/// A user as the tutorial's `fake_users_db` holds it.
#[derive(Deserialize)]
struct TutorialUser {
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    hashed_password: String,
    #[serde(default)]
    disabled: bool,
}

/// The tutorial keeps a dict keyed by username; a list of the same objects is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum TutorialUsers {
    ByName(BTreeMap<String, TutorialUser>),
    List(Vec<TutorialUser>),
}

/// Parses and checks the whole file before writing anything.
fn parse_import(text: &str) -> anyhow::Result<Vec<TutorialUser>> {
    let users = match serde_json::from_str::<TutorialUsers>(text)
        .context("expected a JSON object of users keyed by username, or a list of users")?
    {
        TutorialUsers::ByName(map) => map.into_values().collect(),
        TutorialUsers::List(list) => list,
    };
    for user in &users {
        check_username(&user.username)?;
        // A hash the server would refuse to run at login is refused here, naming its user.
        if let Err(refusal) = passwords::check_stored_hash(&user.hashed_password) {
            bail!("user {:?}: hashed_password: {refusal}", user.username);
        }
    }
    Ok(users)
}

/// Parses and checks an import file as `auth-server user import` does, writing nothing; returns
/// the number of users it holds. Public for fuzzing and for tools that validate a file first.
pub fn parse_import_file(text: &str) -> anyhow::Result<usize> {
    parse_import(text).map(|users| users.len())
}

async fn import(
    store: &dyn Store,
    file: &std::path::Path,
    scopes: &oauth2_jwt_verifier::Scope,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let users = parse_import(&text).with_context(|| format!("importing {}", file.display()))?;
    let (mut added, mut skipped) = (0, 0);
    for user in users {
        let record = UserRecord {
            username: user.username.clone(),
            full_name: user.full_name,
            email: user.email,
            password_hash: user.hashed_password,
            disabled: user.disabled,
            scopes: scopes.clone(),
            stamp: tokens::new_stamp(),
            not_before: 0,
        };
        match store.insert_user(&record).await {
            Ok(()) => added += 1,
            Err(StoreError::Conflict(_)) => {
                eprintln!(
                    "skipped {:?}: already exists as a user or a client id",
                    user.username
                );
                skipped += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
    println!("imported {added} users, skipped {skipped}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_shape_parses_by_name_and_as_a_list() {
        let by_name = r#"{"johndoe": {"username": "johndoe", "full_name": "John Doe", "email": "j@example.com",
            "hashed_password": "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW", "disabled": false}}"#;
        assert_eq!(parse_import(by_name).unwrap().len(), 1);
        let list = r#"[{"username": "a", "hashed_password": "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"}]"#;
        assert!(!parse_import(list).unwrap()[0].disabled);
    }

    #[test]
    fn a_fake_hash_refuses_the_whole_file() {
        let fake = r#"{"user1": {"username": "user1", "hashed_password": "fakehashedsecret"}}"#;
        let err = parse_import(fake).err().unwrap();
        assert!(err.to_string().contains("user1"));
        assert!(err.to_string().contains("neither a bcrypt"), "{err}");
    }

    #[test]
    fn a_bcrypt_cost_above_the_bound_refuses_the_whole_file() {
        let costly = r#"[{"username": "ok", "hashed_password": "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"},
            {"username": "slow", "hashed_password": "$2b$14$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"}]"#;
        let err = parse_import(costly).err().unwrap().to_string();
        assert!(err.contains("\"slow\"") && err.contains("cost 14"), "{err}");
    }
}
